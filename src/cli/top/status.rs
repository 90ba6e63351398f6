//! What `/status.json` says, as `orderstore top` reads it (the contract is in issue 25). Every
//! field has a default, so that a server older or newer than this client, one that lacks a
//! field or says null where a number was expected, still gives a screen with the rest.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

/// The whole answer of `GET /status.json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Status {
    /// The instance that answered (`INSTANCE_ID`).
    pub instance: Option<String>,
    /// The same verdict as `/health/ready`.
    #[serde(deserialize_with = "null_as_default")]
    pub ready: bool,
    /// When the instance started, as the server wrote it (RFC 3339).
    pub started_at: Option<String>,
    /// Seconds since the instance started.
    pub uptime_seconds: Option<f64>,
    /// Whether the memory was restored from PostgreSQL at start-up.
    #[serde(deserialize_with = "null_as_default")]
    pub restore: Restore,
    /// Records consumed, stored and rejected: totals and per-second samples.
    #[serde(deserialize_with = "null_as_default")]
    pub ingest: Ingest,
    /// Every partition of the topic, as the lease table knows it.
    #[serde(deserialize_with = "null_as_default")]
    pub partitions: Vec<PartitionStatus>,
    /// The live instances and the partitions each holds.
    #[serde(deserialize_with = "null_as_default")]
    pub fleet: Vec<FleetMember>,
    /// What the memory holds.
    #[serde(deserialize_with = "null_as_default")]
    pub memory: Memory,
    /// Rejected records: counts by reason and the latest few.
    #[serde(deserialize_with = "null_as_default")]
    pub rejects: Rejects,
    /// The HTTP API's rate and latency over the last seconds.
    #[serde(deserialize_with = "null_as_default")]
    pub http: HttpFigures,
    /// Whether PostgreSQL answers, and why not.
    #[serde(deserialize_with = "null_as_default")]
    pub postgres: Health,
    /// Whether Kafka answers, and why not.
    #[serde(deserialize_with = "null_as_default")]
    pub kafka: Health,
}

/// Start-up progress.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Restore {
    /// True once the memory holds what PostgreSQL holds.
    #[serde(deserialize_with = "null_as_default")]
    pub restored: bool,
}

/// Ingest totals since the start and the samples of the last minutes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Ingest {
    /// Records the batch writers took off the channel.
    #[serde(deserialize_with = "null_as_default")]
    pub consumed_total: u64,
    /// Orders newly stored.
    #[serde(deserialize_with = "null_as_default")]
    pub stored_total: u64,
    /// Records rejected.
    #[serde(deserialize_with = "null_as_default")]
    pub rejected_total: u64,
    /// Records whose order was already stored.
    #[serde(deserialize_with = "null_as_default")]
    pub duplicates_total: u64,
    /// One sample per second, oldest first.
    #[serde(deserialize_with = "null_as_default")]
    pub per_second: Vec<IngestSample>,
}

/// What one second of ingest did.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct IngestSample {
    /// The end of the second, as the server wrote it.
    pub at: Option<String>,
    /// Records consumed in that second.
    #[serde(deserialize_with = "null_as_default")]
    pub consumed: u64,
    /// Orders stored in that second.
    #[serde(deserialize_with = "null_as_default")]
    pub stored: u64,
    /// Records rejected in that second.
    #[serde(deserialize_with = "null_as_default")]
    pub rejected: u64,
}

/// One partition of the topic.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PartitionStatus {
    /// The partition's number.
    #[serde(deserialize_with = "null_as_default")]
    pub partition: i32,
    /// The instance holding its lease, if any.
    pub owner: Option<String>,
    /// The last offset whose record is durable.
    pub stored_offset: Option<i64>,
    /// The broker's high watermark.
    pub high_watermark: Option<i64>,
    /// Records waiting: high watermark minus stored offset.
    pub lag: Option<i64>,
    /// True when a record stopped the partition until an operator acts.
    #[serde(deserialize_with = "null_as_default")]
    pub halted: bool,
    /// The offset of the rejected record it halted at (a number, as the server writes it).
    pub halted_at: Option<i64>,
    /// Seconds since the partition last stored a record.
    pub seconds_since_progress: Option<f64>,
    /// The consumer group's committed offset, where the instance asked reads the partition.
    pub group_committed_offset: Option<i64>,
    /// High watermark minus the group's committed offset: the lag Kafka's tools show.
    pub group_lag: Option<i64>,
}

/// A live instance of the fleet.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FleetMember {
    /// Its `INSTANCE_ID`.
    #[serde(deserialize_with = "null_as_default")]
    pub instance: String,
    /// The partitions whose leases it holds.
    #[serde(deserialize_with = "null_as_default")]
    pub partitions: Vec<i32>,
}

/// What the memory holds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Memory {
    /// Orders in memory.
    #[serde(deserialize_with = "null_as_default")]
    pub orders: u64,
}

/// Rejected records.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Rejects {
    /// Reason kind to count, over the last hour.
    #[serde(deserialize_with = "null_as_default")]
    pub by_reason: BTreeMap<String, u64>,
    /// The newest rejects first.
    #[serde(deserialize_with = "null_as_default")]
    pub latest: Vec<LatestReject>,
    /// The dead-letter topic, when one is configured.
    pub dead_letter_topic: Option<String>,
    /// Rejects not yet published to the dead-letter topic.
    pub pending: Option<u64>,
}

/// One recent reject.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LatestReject {
    /// Its id in the rejects table (`orderstore rejects show ID`).
    #[serde(deserialize_with = "null_as_default")]
    pub id: i64,
    /// Its reason kind.
    #[serde(deserialize_with = "null_as_default")]
    pub reason: String,
    /// Where the record was.
    #[serde(deserialize_with = "null_as_default")]
    pub partition: i32,
    /// Its offset.
    #[serde(deserialize_with = "null_as_default")]
    pub offset: i64,
    /// When it was rejected, as the server wrote it.
    pub rejected_at: Option<String>,
}

/// The HTTP API's figures.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HttpFigures {
    /// Requests per second.
    #[serde(deserialize_with = "null_as_default")]
    pub requests_per_second: f64,
    /// Median latency in milliseconds; none without requests.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency in milliseconds; none without requests.
    pub p99_ms: Option<f64>,
}

/// Whether a dependency answers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Health {
    /// True when it answers.
    #[serde(deserialize_with = "null_as_default")]
    pub ok: bool,
    /// Why not, when it does not.
    pub error: Option<String>,
}

/// Reads a null as the field's default, as a missing field is: the contract says null where a
/// figure is unknown, and an unknown figure must not cost the whole screen.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_missing_fields_or_with_nulls_still_parses() {
        let status: Status =
            serde_json::from_str(r#"{"instance": "a", "ingest": {"stored_total": 5}, "memory": {}, "ready": null, "http": {"requests_per_second": null}}"#)
                .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(status.instance.as_deref(), Some("a"));
        assert_eq!(status.ingest.stored_total, 5);
        assert!(status.partitions.is_empty());
        assert!(!status.kafka.ok);
    }
}
