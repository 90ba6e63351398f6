//! The status page: `GET /status` (the page, its script and style, compiled in like the
//! search page) and `GET /status.json`, the shape `orderstore top` and scripts read
//! (the contract: docs/watching.md, "The status page").
//!
//! The JSON is put together from the observer's board (samples, positions, HTTP figures,
//! written once a second), the live counters and state, and the PostgreSQL reading the board
//! shares between pages for a second.

use std::collections::BTreeMap;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::pages::{mime_css, mime_javascript, static_file};
use super::{json_answer, HttpState};
use crate::state::StateReadiness;
use crate::status::IngestSample;

const STATUS_PAGE: &str = include_str!("../../static/status.html");
const STATUS_SCRIPT: &str = include_str!("../../static/status.js");
const STATUS_STYLE: &str = include_str!("../../static/status.css");

/// The answer of `GET /status.json`.
#[derive(Debug, Serialize)]
struct StatusAnswer {
    instance: String,
    /// The verdict of `/health/ready`.
    ready: bool,
    started_at: String,
    uptime_seconds: f64,
    restore: RestoreAnswer,
    ingest: IngestAnswer,
    partitions: Vec<PartitionAnswer>,
    /// The consumer group the offsets are mirrored to, once the mirror has run a round;
    /// `null` without one (`KAFKA_GROUP_ID` empty) or before.
    consumer_group: Option<GroupAnswer>,
    fleet: Vec<FleetAnswer>,
    memory: MemoryAnswer,
    rejects: RejectsAnswer,
    http: HttpAnswer,
    postgres: HealthAnswer,
    kafka: HealthAnswer,
}

#[derive(Debug, Serialize)]
struct RestoreAnswer {
    /// Whether memory holds the orders of the partitions taken at start-up.
    restored: bool,
}

#[derive(Debug, Serialize)]
struct IngestAnswer {
    consumed_total: u64,
    stored_total: u64,
    rejected_total: u64,
    duplicates_total: u64,
    /// One sample per second, oldest first, at most 900.
    per_second: Vec<SampleAnswer>,
}

#[derive(Debug, Serialize)]
struct SampleAnswer {
    at: String,
    consumed: u64,
    stored: u64,
    rejected: u64,
}

#[derive(Debug, Serialize)]
struct PartitionAnswer {
    partition: i32,
    owner: Option<String>,
    stored_offset: Option<i64>,
    high_watermark: Option<i64>,
    lag: Option<i64>,
    halted: bool,
    /// The offset of the reject the partition halted at.
    halted_at: Option<i64>,
    seconds_since_progress: Option<f64>,
    /// The consumer group's committed offset, where this instance reads the partition and the
    /// group has one.
    group_committed_offset: Option<i64>,
    /// High watermark minus the group's committed offset: the lag Kafka's tools show.
    group_lag: Option<i64>,
}

#[derive(Debug, Serialize)]
struct GroupAnswer {
    group: String,
    /// Whether the mirror's last round read and committed.
    ok: bool,
    /// Why it did not.
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct FleetAnswer {
    instance: String,
    partitions: Vec<i32>,
}

#[derive(Debug, Serialize)]
struct MemoryAnswer {
    orders: usize,
}

#[derive(Debug, Serialize)]
struct RejectsAnswer {
    /// Reason kind to count, over the last hour.
    by_reason: BTreeMap<String, i64>,
    /// Newest first, at most 10.
    latest: Vec<LatestRejectAnswer>,
    dead_letter_topic: Option<String>,
    /// Not yet published; `null` without a dead-letter topic (or PostgreSQL).
    pending: Option<i64>,
}

#[derive(Debug, Serialize)]
struct LatestRejectAnswer {
    id: i64,
    reason: String,
    partition: i32,
    offset: i64,
    rejected_at: String,
}

#[derive(Debug, Serialize)]
struct HttpAnswer {
    requests_per_second: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
struct HealthAnswer {
    ok: bool,
    error: Option<String>,
}

/// One partition as the answer is put together: its lease row and this instance's position.
#[derive(Debug, Default)]
struct PartitionParts {
    owner: Option<String>,
    stored_offset: Option<i64>,
    position: Option<crate::offsets::PartitionPosition>,
}

/// `GET /status.json`. PostgreSQL's part comes from the board's shared reading; when
/// PostgreSQL does not answer, the rest is still served, with `postgres.ok` false and the
/// partitions this instance reads.
pub(super) async fn status_json(state: web::Data<HttpState>) -> HttpResponse {
    let board = &state.status;
    let database = board.database_status(&state.database).await;
    let observed = board.observed_status();
    let service = &state.service;
    let counters = board.events.counters();

    let mut partitions: BTreeMap<i32, PartitionParts> = BTreeMap::new();
    if let Ok(database) = &database {
        for row in &database.partitions {
            partitions.insert(
                row.partition,
                PartitionParts {
                    owner: row.owner.clone(),
                    stored_offset: row.stored_offset,
                    position: None,
                },
            );
        }
    }
    for position in &observed.positions {
        partitions.entry(position.partition).or_default().position = Some(*position);
    }
    let halted: BTreeMap<i32, i64> = service
        .halted_partitions()
        .into_iter()
        .map(|(partition, halt)| (partition, halt.offset))
        .collect();
    let partitions: Vec<PartitionAnswer> = partitions
        .into_iter()
        .map(|(partition, parts)| partition_answer(partition, parts, &halted))
        .collect();
    let group = board.group_reading();
    let partitions = partitions
        .into_iter()
        .map(|mut answer| {
            if let Some((committed, lag)) = group
                .as_ref()
                .and_then(|group| group.readings.get(&answer.partition))
            {
                answer.group_committed_offset = Some(*committed);
                answer.group_lag = Some(*lag);
            }
            answer
        })
        .collect();

    let readiness = service.readiness();
    let postgres_error = database.as_ref().err().cloned();
    let ready = readiness.is_ready(postgres_error.as_deref());
    let StateReadiness {
        kafka_error,
        restored,
        ..
    } = readiness;

    let (fleet, rejects) = match &database {
        Ok(database) => (
            database
                .fleet
                .iter()
                .map(|member| FleetAnswer {
                    instance: member.instance.clone(),
                    partitions: member.partitions.clone(),
                })
                .collect(),
            RejectsAnswer {
                by_reason: database.rejects_by_kind.iter().cloned().collect(),
                latest: database
                    .latest_rejects
                    .iter()
                    .map(|reject| LatestRejectAnswer {
                        id: reject.id,
                        reason: reject.kind.clone(),
                        partition: reject.partition,
                        offset: reject.offset,
                        rejected_at: reject
                            .rejected_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    })
                    .collect(),
                dead_letter_topic: board.dead_letter_topic.clone(),
                pending: board
                    .dead_letter_topic
                    .as_ref()
                    .map(|_| database.pending_rejects),
            },
        ),
        Err(_) => (
            Vec::new(),
            RejectsAnswer {
                by_reason: BTreeMap::new(),
                latest: Vec::new(),
                dead_letter_topic: board.dead_letter_topic.clone(),
                pending: None,
            },
        ),
    };

    let answer = StatusAnswer {
        instance: board.instance.clone(),
        ready,
        started_at: board
            .started_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        uptime_seconds: board.uptime().as_secs_f64(),
        restore: RestoreAnswer { restored },
        ingest: IngestAnswer {
            consumed_total: counters.consumed(),
            stored_total: counters.stored(),
            rejected_total: counters.rejected(),
            duplicates_total: counters.duplicates(),
            per_second: observed.samples.iter().map(sample_answer).collect(),
        },
        partitions,
        consumer_group: group.map(|group| GroupAnswer {
            ok: group.error.is_none(),
            error: group.error,
            group: group.group,
        }),
        fleet,
        memory: MemoryAnswer {
            orders: state.memory.len(),
        },
        rejects,
        http: HttpAnswer {
            requests_per_second: observed.http.requests_per_second,
            p50_ms: observed.http.p50_ms,
            p99_ms: observed.http.p99_ms,
        },
        postgres: HealthAnswer {
            ok: postgres_error.is_none(),
            error: postgres_error,
        },
        kafka: HealthAnswer {
            ok: kafka_error.is_none(),
            error: kafka_error,
        },
    };
    let mut response = json_answer(StatusCode::OK, &answer);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// A partition's answer: this instance's position where it reads the partition (the offset
/// below which every record is durable, which the committer stores within
/// `OFFSET_COMMIT_INTERVAL`), otherwise the stored offset and nothing it cannot know.
fn partition_answer(
    partition: i32,
    parts: PartitionParts,
    halted: &BTreeMap<i32, i64>,
) -> PartitionAnswer {
    let halted_at = halted.get(&partition).copied();
    match parts.position {
        Some(position) => PartitionAnswer {
            partition,
            owner: parts.owner,
            stored_offset: Some(position.committable),
            high_watermark: Some(position.high_watermark),
            lag: Some((position.high_watermark - position.committable).max(0)),
            halted: halted_at.is_some(),
            halted_at,
            seconds_since_progress: Some(position.stalled.as_secs_f64()),
            group_committed_offset: None,
            group_lag: None,
        },
        None => PartitionAnswer {
            partition,
            owner: parts.owner,
            stored_offset: parts.stored_offset,
            high_watermark: None,
            lag: None,
            halted: halted_at.is_some(),
            halted_at,
            seconds_since_progress: None,
            group_committed_offset: None,
            group_lag: None,
        },
    }
}

fn sample_answer(sample: &IngestSample) -> SampleAnswer {
    SampleAnswer {
        at: sample.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        consumed: sample.consumed,
        stored: sample.stored,
        rejected: sample.rejected,
    }
}

pub(super) async fn status_page() -> HttpResponse {
    static_file(header::ContentType::html(), STATUS_PAGE)
}

pub(super) async fn status_script() -> HttpResponse {
    static_file(header::ContentType(mime_javascript()), STATUS_SCRIPT)
}

pub(super) async fn status_style() -> HttpResponse {
    static_file(header::ContentType(mime_css()), STATUS_STYLE)
}
