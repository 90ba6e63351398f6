//! The requests the group mirror sends and the answers it reads, in the non-flexible
//! versions `wire.rs` lists, built from its primitives.

use std::collections::BTreeMap;

use super::wire::{Reader, VersionRanges, WireError, Writer};

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
            // A topic name of length -5, then bytes enough for the rest of a topic.
            w.i32(0).array_length(1).i16(-5).i32(0).i32(0);
        });
        assert_eq!(
            read_offset_commit(7, "orders", &negative),
            Err(WireError::InvalidLength("OffsetCommit topic name"))
        );
    }
}
