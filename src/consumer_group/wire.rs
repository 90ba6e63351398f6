//! The Kafka wire format of the few requests the group mirror sends (`messages.rs`), in
//! their non-flexible versions: ApiVersions v0, SaslHandshake v1, SaslAuthenticate v0-v1,
//! FindCoordinator v1-v2, OffsetCommit v2-v7 and OffsetFetch v1-v5.
//!
//! Encoded here rather than with a codec crate: rskafka has none of these requests, and a
//! codec for the whole protocol (the `kafka-protocol` crate generates every message of every
//! version) would cost more to build on a small machine than the few hundred lines these
//! need. Every version chosen is non-flexible (no tagged fields, no compact strings), so the
//! format is the protocol's plain one: big-endian integers, strings with an `i16` length,
//! byte strings and arrays with an `i32` length. The versions span Kafka 1.0 (the first with
//! SaslAuthenticate) to Kafka 4 (KIP-896 removed OffsetCommit v0-v1 and OffsetFetch v0), and
//! each request's version is picked by [`pick_version`] from the broker's own ApiVersions.

use std::collections::BTreeMap;

/// ApiVersions.
pub const API_VERSIONS: i16 = 18;
/// SaslHandshake.
pub const SASL_HANDSHAKE: i16 = 17;
/// SaslAuthenticate.
pub const SASL_AUTHENTICATE: i16 = 36;
/// FindCoordinator.
pub const FIND_COORDINATOR: i16 = 10;
/// OffsetCommit.
pub const OFFSET_COMMIT: i16 = 8;
/// OffsetFetch.
pub const OFFSET_FETCH: i16 = 9;

/// The versions of each request this module can encode, lowest and highest.
pub const SPOKEN: [(i16, i16, i16); 4] = [
    (SASL_AUTHENTICATE, 0, 1),
    (FIND_COORDINATOR, 1, 2),
    (OFFSET_COMMIT, 2, 7),
    (OFFSET_FETCH, 1, 5),
];

/// A response that ends early or holds a length or text that cannot be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The response ended inside a field.
    #[error("the response ended inside {0}")]
    Truncated(&'static str),
    /// A length below -1, or -1 where null is not allowed.
    #[error("the response holds an invalid length for {0}")]
    InvalidLength(&'static str),
    /// A string that is not UTF-8.
    #[error("the response holds a string that is not UTF-8 in {0}")]
    NotUtf8(&'static str),
}

/// Each API's lowest and highest version a broker speaks, by API key.
pub type VersionRanges = BTreeMap<i16, (i16, i16)>;

/// The highest version both sides speak of `api_key`, from the broker's ApiVersions ranges;
/// `None` when the ranges do not meet.
pub fn pick_version(broker: &VersionRanges, api_key: i16) -> Option<i16> {
    let (_, ours_min, ours_max) = SPOKEN.iter().find(|(key, _, _)| *key == api_key)?;
    let (broker_min, broker_max) = broker.get(&api_key)?;
    let version = (*ours_max).min(*broker_max);
    (version >= (*ours_min).max(*broker_min)).then_some(version)
}

/// A request body being written.
#[derive(Debug, Default)]
pub struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    pub(super) fn i8(&mut self, value: i8) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(super) fn i16(&mut self, value: i16) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(super) fn i32(&mut self, value: i32) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(super) fn i64(&mut self, value: i64) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// A length as the protocol writes it; lengths here are of names, ids and SASL messages,
    /// far below `i16::MAX`, so a longer one is cut at the maximum instead of wrapping.
    pub(super) fn length16(&mut self, length: usize) -> &mut Self {
        self.i16(i16::try_from(length).unwrap_or(i16::MAX))
    }

    pub(super) fn string(&mut self, value: &str) -> &mut Self {
        self.length16(value.len());
        self.bytes.extend_from_slice(value.as_bytes());
        self
    }

    pub(super) fn nullable_string(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(value) => self.string(value),
            None => self.i16(-1),
        }
    }

    pub(super) fn byte_string(&mut self, value: &[u8]) -> &mut Self {
        self.i32(i32::try_from(value.len()).unwrap_or(i32::MAX));
        self.bytes.extend_from_slice(value);
        self
    }

    pub(super) fn array_length(&mut self, length: usize) -> &mut Self {
        self.i32(i32::try_from(length).unwrap_or(i32::MAX))
    }

    /// The body written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// A whole request frame: the size, request header v1 (api key, version, correlation id,
/// client id) and `body`.
pub fn frame(
    api_key: i16,
    api_version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut header = Writer::default();
    header
        .i16(api_key)
        .i16(api_version)
        .i32(correlation_id)
        .string(client_id);
    let header = header.into_bytes();
    let size = i32::try_from(header.len() + body.len()).unwrap_or(i32::MAX);
    let mut frame = Vec::with_capacity(4 + header.len() + body.len());
    frame.extend_from_slice(&size.to_be_bytes());
    frame.extend_from_slice(&header);
    frame.extend_from_slice(body);
    frame
}

/// A response body being read.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub(super) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if self.bytes.len() < n {
            return Err(WireError::Truncated(what));
        }
        let (taken, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(taken)
    }

    pub(super) fn i16(&mut self, what: &'static str) -> Result<i16, WireError> {
        let bytes = self.take(2, what)?;
        Ok(i16::from_be_bytes([bytes[0], bytes[1]]))
    }

    /// An `i32`.
    pub fn i32(&mut self, what: &'static str) -> Result<i32, WireError> {
        let bytes = self.take(4, what)?;
        Ok(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    pub(super) fn i64(&mut self, what: &'static str) -> Result<i64, WireError> {
        let bytes = self.take(8, what)?;
        let mut array = [0; 8];
        array.copy_from_slice(bytes);
        Ok(i64::from_be_bytes(array))
    }

    pub(super) fn nullable_string(
        &mut self,
        what: &'static str,
    ) -> Result<Option<String>, WireError> {
        let length = self.i16(what)?;
        if length == -1 {
            return Ok(None);
        }
        let length = usize::try_from(length).map_err(|_| WireError::InvalidLength(what))?;
        let bytes = self.take(length, what)?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| WireError::NotUtf8(what))
    }

    pub(super) fn string(&mut self, what: &'static str) -> Result<String, WireError> {
        self.nullable_string(what)?
            .ok_or(WireError::InvalidLength(what))
    }

    pub(super) fn byte_string(&mut self, what: &'static str) -> Result<Vec<u8>, WireError> {
        let length = self.i32(what)?;
        if length == -1 {
            return Ok(Vec::new());
        }
        let length = usize::try_from(length).map_err(|_| WireError::InvalidLength(what))?;
        Ok(self.take(length, what)?.to_vec())
    }

    /// An array's length; a null array reads as empty. The length is checked against what is
    /// left, so a hostile length cannot make the caller reserve memory it does not need.
    pub(super) fn array_length(
        &mut self,
        what: &'static str,
        least_item_bytes: usize,
    ) -> Result<usize, WireError> {
        let length = self.i32(what)?;
        if length == -1 {
            return Ok(0);
        }
        let length = usize::try_from(length).map_err(|_| WireError::InvalidLength(what))?;
        if length.saturating_mul(least_item_bytes) > self.bytes.len() {
            return Err(WireError::Truncated(what));
        }
        Ok(length)
    }
}

/// The name Kafka gives an error code, for the codes these requests can answer; the number
/// itself for any other.
pub fn error_name(code: i16) -> String {
    let name = match code {
        -1 => "UNKNOWN_SERVER_ERROR",
        0 => "NONE",
        3 => "UNKNOWN_TOPIC_OR_PARTITION",
        12 => "OFFSET_METADATA_TOO_LARGE",
        14 => "COORDINATOR_LOAD_IN_PROGRESS",
        15 => "COORDINATOR_NOT_AVAILABLE",
        16 => "NOT_COORDINATOR",
        22 => "ILLEGAL_GENERATION",
        25 => "UNKNOWN_MEMBER_ID",
        27 => "REBALANCE_IN_PROGRESS",
        28 => "INVALID_COMMIT_OFFSET_SIZE",
        29 => "TOPIC_AUTHORIZATION_FAILED",
        30 => "GROUP_AUTHORIZATION_FAILED",
        31 => "CLUSTER_AUTHORIZATION_FAILED",
        33 => "UNSUPPORTED_SASL_MECHANISM",
        34 => "ILLEGAL_SASL_STATE",
        35 => "UNSUPPORTED_VERSION",
        58 => "SASL_AUTHENTICATION_FAILED",
        69 => "GROUP_ID_NOT_FOUND",
        82 => "FENCED_INSTANCE_ID",
        110 => "FENCED_MEMBER_EPOCH",
        113 => "STALE_MEMBER_EPOCH",
        other => return format!("error code {other}"),
    };
    name.to_string()
}

/// Whether `code` says the group has members of its own (a consumer group in use under this
/// name), which refuse a standalone commit.
pub fn is_group_in_use(code: i16) -> bool {
    matches!(code, 22 | 25 | 27 | 82 | 110 | 113)
}

/// Whether `code` says this broker is not (or not yet) the group's coordinator, so the
/// coordinator is looked up again.
pub fn is_coordinator_moved(code: i16) -> bool {
    matches!(code, 14..=16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_is_sized_and_carries_header_v1() {
        let frame = frame(OFFSET_FETCH, 5, 7, "os", &[0xAB]);
        assert_eq!(
            frame,
            [
                0, 0, 0, 13, // size: 2 + 2 + 4 + (2 + 2) + 1
                0, 9, 0, 5, 0, 0, 0, 7, 0, 2, b'o', b's', 0xAB
            ]
        );
    }

    #[test]
    fn the_version_is_the_highest_both_speak() {
        let broker = BTreeMap::from([(OFFSET_COMMIT, (0, 9)), (OFFSET_FETCH, (6, 9))]);
        assert_eq!(pick_version(&broker, OFFSET_COMMIT), Some(7));
        // The broker speaks only flexible versions of OffsetFetch: no version in common.
        assert_eq!(pick_version(&broker, OFFSET_FETCH), None);
        assert_eq!(pick_version(&broker, FIND_COORDINATOR), None);
    }
}
