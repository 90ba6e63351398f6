//! The Kafka wire format of the few requests the group mirror sends, in their non-flexible
//! versions: ApiVersions v0, SaslHandshake v1, SaslAuthenticate v0-v1, FindCoordinator
//! v1-v2, OffsetCommit v2-v7 and OffsetFetch v1-v5.
//!
//! Encoded here rather than with a codec crate: rskafka has none of these requests, and a
//! codec for the whole protocol (the `kafka-protocol` crate generates every message of every
//! version) would cost more to build on a small machine than the two hundred lines these
//! need. Every version chosen is non-flexible (no tagged fields, no compact strings), so the
//! format is the protocol's plain one: big-endian integers, strings with an `i16` length,
//! byte strings and arrays with an `i32` length. The versions chosen are within what Kafka 4
//! still accepts (KIP-896 removed OffsetCommit v0-v1 and OffsetFetch v0) and what Kafka 0.11
//! already had, and each is picked by [`pick_version`] from the broker's own ApiVersions.

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
    fn i8(&mut self, value: i8) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    fn i16(&mut self, value: i16) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    fn i32(&mut self, value: i32) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    fn i64(&mut self, value: i64) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// A length as the protocol writes it; lengths here are of names, ids and SASL messages,
    /// far below `i16::MAX`, so a longer one is cut at the maximum instead of wrapping.
    fn length16(&mut self, length: usize) -> &mut Self {
        self.i16(i16::try_from(length).unwrap_or(i16::MAX))
    }

    fn string(&mut self, value: &str) -> &mut Self {
        self.length16(value.len());
        self.bytes.extend_from_slice(value.as_bytes());
        self
    }

    fn nullable_string(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(value) => self.string(value),
            None => self.i16(-1),
        }
    }

    fn byte_string(&mut self, value: &[u8]) -> &mut Self {
        self.i32(i32::try_from(value.len()).unwrap_or(i32::MAX));
        self.bytes.extend_from_slice(value);
        self
    }

    fn array_length(&mut self, length: usize) -> &mut Self {
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

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if self.bytes.len() < n {
            return Err(WireError::Truncated(what));
        }
        let (taken, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(taken)
    }

    fn i16(&mut self, what: &'static str) -> Result<i16, WireError> {
        let bytes = self.take(2, what)?;
        Ok(i16::from_be_bytes([bytes[0], bytes[1]]))
    }

    /// An `i32`.
    pub fn i32(&mut self, what: &'static str) -> Result<i32, WireError> {
        let bytes = self.take(4, what)?;
        Ok(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn i64(&mut self, what: &'static str) -> Result<i64, WireError> {
        let bytes = self.take(8, what)?;
        let mut array = [0; 8];
        array.copy_from_slice(bytes);
        Ok(i64::from_be_bytes(array))
    }

    fn nullable_string(&mut self, what: &'static str) -> Result<Option<String>, WireError> {
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

    fn string(&mut self, what: &'static str) -> Result<String, WireError> {
        self.nullable_string(what)?
            .ok_or(WireError::InvalidLength(what))
    }

    fn byte_string(&mut self, what: &'static str) -> Result<Vec<u8>, WireError> {
        let length = self.i32(what)?;
        if length == -1 {
            return Ok(Vec::new());
        }
        let length = usize::try_from(length).map_err(|_| WireError::InvalidLength(what))?;
        Ok(self.take(length, what)?.to_vec())
    }

    /// An array's length; a null array reads as empty. The length is checked against what is
    /// left, so a hostile length cannot make the caller reserve memory it does not need.
    fn array_length(
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

/// ApiVersions v0's answer: the error code and each API's version range.
pub fn read_api_versions(body: &[u8]) -> Result<(i16, VersionRanges), WireError> {
    let mut reader = Reader::new(body);
    let error_code = reader.i16("ApiVersions error_code")?;
    let n_keys = reader.array_length("ApiVersions api_keys", 6)?;
    let mut ranges = BTreeMap::new();
    for _ in 0..n_keys {
        let key = reader.i16("ApiVersions api_key")?;
        let min = reader.i16("ApiVersions min_version")?;
        let max = reader.i16("ApiVersions max_version")?;
        ranges.insert(key, (min, max));
    }
    Ok((error_code, ranges))
}

/// SaslHandshake v1: the mechanism asked for.
pub fn sasl_handshake(mechanism: &str) -> Vec<u8> {
    let mut writer = Writer::default();
    writer.string(mechanism);
    writer.into_bytes()
}

/// SaslHandshake v1's answer: the error code and the mechanisms the broker enables.
pub fn read_sasl_handshake(body: &[u8]) -> Result<(i16, Vec<String>), WireError> {
    let mut reader = Reader::new(body);
    let error_code = reader.i16("SaslHandshake error_code")?;
    let n_mechanisms = reader.array_length("SaslHandshake mechanisms", 2)?;
    let mechanisms = (0..n_mechanisms)
        .map(|_| reader.string("SaslHandshake mechanism"))
        .collect::<Result<_, _>>()?;
    Ok((error_code, mechanisms))
}

/// SaslAuthenticate v0-v1: one message of the mechanism's exchange.
pub fn sasl_authenticate(auth_bytes: &[u8]) -> Vec<u8> {
    let mut writer = Writer::default();
    writer.byte_string(auth_bytes);
    writer.into_bytes()
}

/// SaslAuthenticate's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslAuthenticateAnswer {
    /// The error code.
    pub error_code: i16,
    /// The broker's reason, with an error.
    pub error_message: Option<String>,
    /// The mechanism's next message from the broker.
    pub auth_bytes: Vec<u8>,
}

/// SaslAuthenticate v0-v1's answer (v1 adds the session lifetime, not needed here).
pub fn read_sasl_authenticate(body: &[u8]) -> Result<SaslAuthenticateAnswer, WireError> {
    let mut reader = Reader::new(body);
    Ok(SaslAuthenticateAnswer {
        error_code: reader.i16("SaslAuthenticate error_code")?,
        error_message: reader.nullable_string("SaslAuthenticate error_message")?,
        auth_bytes: reader.byte_string("SaslAuthenticate auth_bytes")?,
    })
}

/// FindCoordinator v1-v2 for a consumer group (key type 0).
pub fn find_coordinator(group: &str) -> Vec<u8> {
    let mut writer = Writer::default();
    writer.string(group).i8(0);
    writer.into_bytes()
}

/// FindCoordinator's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordinator {
    /// The error code.
    pub error_code: i16,
    /// The broker's reason, with an error.
    pub error_message: Option<String>,
    /// The coordinator's host.
    pub host: String,
    /// The coordinator's port.
    pub port: i32,
}

/// FindCoordinator v1-v2's answer.
pub fn read_find_coordinator(body: &[u8]) -> Result<Coordinator, WireError> {
    let mut reader = Reader::new(body);
    reader.i32("FindCoordinator throttle_time_ms")?;
    let error_code = reader.i16("FindCoordinator error_code")?;
    let error_message = reader.nullable_string("FindCoordinator error_message")?;
    reader.i32("FindCoordinator node_id")?;
    Ok(Coordinator {
        error_code,
        error_message,
        host: reader.string("FindCoordinator host")?,
        port: reader.i32("FindCoordinator port")?,
    })
}

/// OffsetCommit v2-v7 for one topic, as a standalone commit: generation -1 and an empty
/// member id, which a group without members accepts from a client that is not one of them.
/// The retention (v2-v4) is the broker's own (-1), the leader epoch (v6+) unknown (-1).
pub fn offset_commit(
    version: i16,
    group: &str,
    topic: &str,
    offsets: &[(i32, i64)],
    metadata: &str,
) -> Vec<u8> {
    let mut writer = Writer::default();
    writer.string(group).i32(-1).string("");
    if version >= 7 {
        writer.nullable_string(None);
    }
    if version <= 4 {
        writer.i64(-1);
    }
    writer
        .array_length(1)
        .string(topic)
        .array_length(offsets.len());
    for (partition, offset) in offsets {
        writer.i32(*partition).i64(*offset);
        if version >= 6 {
            writer.i32(-1);
        }
        writer.nullable_string(Some(metadata));
    }
    writer.into_bytes()
}

/// OffsetCommit v2-v7's answer: the error code of each partition of `topic`.
pub fn read_offset_commit(
    version: i16,
    topic: &str,
    body: &[u8],
) -> Result<BTreeMap<i32, i16>, WireError> {
    let mut reader = Reader::new(body);
    if version >= 3 {
        reader.i32("OffsetCommit throttle_time_ms")?;
    }
    let mut answers = BTreeMap::new();
    let n_topics = reader.array_length("OffsetCommit topics", 6)?;
    for _ in 0..n_topics {
        let name = reader.string("OffsetCommit topic name")?;
        let n_partitions = reader.array_length("OffsetCommit partitions", 6)?;
        for _ in 0..n_partitions {
            let partition = reader.i32("OffsetCommit partition_index")?;
            let error_code = reader.i16("OffsetCommit error_code")?;
            if name == topic {
                answers.insert(partition, error_code);
            }
        }
    }
    Ok(answers)
}

/// OffsetFetch v1-v5 for `partitions` of one topic.
pub fn offset_fetch(group: &str, topic: &str, partitions: &[i32]) -> Vec<u8> {
    let mut writer = Writer::default();
    writer
        .string(group)
        .array_length(1)
        .string(topic)
        .array_length(partitions.len());
    for partition in partitions {
        writer.i32(*partition);
    }
    writer.into_bytes()
}

/// OffsetFetch's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupOffsets {
    /// The group-level error code (v2+; 0 before).
    pub error_code: i16,
    /// Per partition of the topic asked for: the committed offset (-1 for none) and the
    /// partition's error code. A partition the broker left out has no committed offset.
    pub partitions: BTreeMap<i32, (i64, i16)>,
}

/// OffsetFetch v1-v5's answer, for `topic`.
pub fn read_offset_fetch(
    version: i16,
    topic: &str,
    body: &[u8],
) -> Result<GroupOffsets, WireError> {
    let mut reader = Reader::new(body);
    if version >= 3 {
        reader.i32("OffsetFetch throttle_time_ms")?;
    }
    let mut answer = GroupOffsets::default();
    let n_topics = reader.array_length("OffsetFetch topics", 6)?;
    for _ in 0..n_topics {
        let name = reader.string("OffsetFetch topic name")?;
        let n_partitions = reader.array_length("OffsetFetch partitions", 16)?;
        for _ in 0..n_partitions {
            let partition = reader.i32("OffsetFetch partition_index")?;
            let offset = reader.i64("OffsetFetch committed_offset")?;
            if version >= 5 {
                reader.i32("OffsetFetch committed_leader_epoch")?;
            }
            reader.nullable_string("OffsetFetch metadata")?;
            let error_code = reader.i16("OffsetFetch error_code")?;
            if name == topic {
                answer.partitions.insert(partition, (offset, error_code));
            }
        }
    }
    if version >= 2 {
        answer.error_code = reader.i16("OffsetFetch error_code")?;
    }
    Ok(answer)
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

    /// The bytes of an answer, built with the request writer (the formats share primitives).
    fn bytes(build: impl FnOnce(&mut Writer)) -> Vec<u8> {
        let mut writer = Writer::default();
        build(&mut writer);
        writer.into_bytes()
    }

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
    fn a_standalone_commit_has_generation_minus_one_and_no_member_in_every_version() {
        // v2: group, generation, member, retention, topics.
        let v2 = offset_commit(2, "g", "t", &[(3, 42)], "m");
        let expected_v2 = bytes(|w| {
            w.string("g").i32(-1).string("").i64(-1);
            w.array_length(1).string("t").array_length(1);
            w.i32(3).i64(42).string("m");
        });
        assert_eq!(v2, expected_v2);
        // v7: no retention, a null group instance id, a leader epoch per partition.
        let v7 = offset_commit(7, "g", "t", &[(3, 42)], "m");
        let expected_v7 = bytes(|w| {
            w.string("g").i32(-1).string("").i16(-1);
            w.array_length(1).string("t").array_length(1);
            w.i32(3).i64(42).i32(-1).string("m");
        });
        assert_eq!(v7, expected_v7);
        // v5: neither retention nor leader epoch.
        let v5 = offset_commit(5, "g", "t", &[(0, 1)], "");
        let expected_v5 = bytes(|w| {
            w.string("g").i32(-1).string("");
            w.array_length(1).string("t").array_length(1);
            w.i32(0).i64(1).string("");
        });
        assert_eq!(v5, expected_v5);
    }

    #[test]
    fn offset_fetch_answers_are_read_per_version_and_other_topics_ignored() {
        let v5 = bytes(|w| {
            w.i32(0).array_length(2);
            w.string("orders").array_length(2);
            w.i32(0).i64(120).i32(-1).nullable_string(None).i16(0);
            w.i32(1).i64(-1).i32(-1).string("").i16(0);
            w.string("other").array_length(1);
            w.i32(0).i64(9).i32(-1).string("").i16(0);
            w.i16(0);
        });
        let answer = read_offset_fetch(5, "orders", &v5).expect("a valid v5 answer");
        assert_eq!(answer.error_code, 0);
        assert_eq!(
            answer.partitions,
            BTreeMap::from([(0, (120, 0)), (1, (-1, 0))])
        );
        let v1 = bytes(|w| {
            w.array_length(1).string("orders").array_length(1);
            w.i32(2).i64(7).string("").i16(0);
        });
        let answer = read_offset_fetch(1, "orders", &v1).expect("a valid v1 answer");
        assert_eq!(answer.partitions, BTreeMap::from([(2, (7, 0))]));
    }

    #[test]
    fn commit_answers_and_coordinators_are_read() {
        let answer = bytes(|w| {
            w.i32(0).array_length(1).string("orders").array_length(2);
            w.i32(0).i16(0).i32(1).i16(25);
        });
        assert_eq!(
            read_offset_commit(7, "orders", &answer),
            Ok(BTreeMap::from([(0, 0), (1, 25)]))
        );
        let coordinator = bytes(|w| {
            w.i32(0)
                .i16(0)
                .nullable_string(None)
                .i32(1)
                .string("kafka")
                .i32(9092);
        });
        assert_eq!(
            read_find_coordinator(&coordinator),
            Ok(Coordinator {
                error_code: 0,
                error_message: None,
                host: "kafka".into(),
                port: 9092
            })
        );
    }

    #[test]
    fn short_or_hostile_answers_are_errors_not_panics() {
        let whole = bytes(|w| {
            w.i32(0).array_length(1).string("orders").array_length(1);
            w.i32(0).i16(0);
        });
        for cut in 0..whole.len() {
            assert!(
                read_offset_commit(7, "orders", &whole[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let huge_array = bytes(|w| {
            w.i16(0).array_length(i32::MAX as usize);
        });
        assert_eq!(
            read_api_versions(&huge_array),
            Err(WireError::Truncated("ApiVersions api_keys"))
        );
        let negative = bytes(|w| {
            w.i32(0).array_length(1).i16(-5);
        });
        assert_eq!(
            read_offset_commit(7, "orders", &negative),
            Err(WireError::InvalidLength("OffsetCommit topic name"))
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
