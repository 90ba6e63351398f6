//! `/health/live`, `/health/ready` and `/metrics`: what orchestrators and Prometheus ask.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::error::HttpError;
use super::{json_answer, HttpState};
use crate::state::StateReadiness;

/// How long readiness waits for PostgreSQL to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The Prometheus text exposition of every metric.
pub(super) async fn metrics_text() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::events::prometheus::prometheus().render())
}

/// The answer of `/health/live`.
#[derive(Debug, Serialize)]
struct Liveness {
    /// Always `live`: answering at all is the news.
    status: &'static str,
}

/// The process is up and answering.
pub(super) async fn live() -> HttpResponse {
    json_answer(StatusCode::OK, &Liveness { status: "live" })
}

/// The answer of `/health/ready`, 200 or 503 alike, so a probe and an operator read the same
/// fields whichever it is.
#[derive(Debug, Serialize)]
pub struct Readiness {
    /// `ready` or `not ready`.
    pub(super) status: &'static str,
    /// Whether memory holds the orders of the partitions taken at start-up.
    pub(super) restored: bool,
    /// `ok` or `unreachable`.
    pub(super) postgres: &'static str,
    /// `ok` or `unreachable`.
    pub(super) kafka: &'static str,
    /// Orders held in memory.
    pub(super) orders_in_memory: usize,
    /// This instance's id.
    pub(super) instance: String,
    /// The partitions this instance holds leases on.
    pub(super) partitions: Vec<i32>,
    /// The owned partitions halted at a rejected record; left out when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) halted: Vec<HaltedPartition>,
    /// Why PostgreSQL did not answer; left out when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) postgres_error: Option<String>,
    /// Why Kafka did not answer; left out when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) kafka_error: Option<String>,
}

/// A partition stopped by `ON_REJECT=halt`, as readiness names it.
#[derive(Debug, Serialize)]
pub struct HaltedPartition {
    /// The partition.
    partition: i32,
    /// The offset of the rejected record it stopped at.
    offset: i64,
    /// Why the record was rejected.
    reason: String,
}

/// Names this instance and the partitions it holds leases on. Ready when memory holds the
/// orders of the partitions it took at start-up, PostgreSQL answers, Kafka answered the last
/// request, and no partition it owns is halted (`ON_REJECT=halt`: `halted` names each, with
/// the offset and reason). 503 says which is missing and why (the error, e.g. a refused login or a
/// certificate PostgreSQL's CA did not sign). Partitions taken later are loaded while the
/// instance stays ready: it answers for them from PostgreSQL meanwhile, so a rolling restart
/// never takes the whole fleet out of rotation.
pub(super) async fn ready(state: web::Data<HttpState>) -> Result<HttpResponse, HttpError> {
    let postgres_error = match tokio::time::timeout(READY_TIMEOUT, state.database.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(error.to_string()),
        Err(_) => Some(format!("no answer within {} s", READY_TIMEOUT.as_secs())),
    };
    let service = state.service.readiness();
    let is_ready = service.is_ready(postgres_error.as_deref());
    let StateReadiness {
        kafka_error,
        restored,
        owned,
        halted,
    } = service;
    let halted: Vec<HaltedPartition> = halted
        .into_iter()
        .map(|(partition, halt)| HaltedPartition {
            partition,
            offset: halt.offset,
            reason: halt.reason,
        })
        .collect();
    let word = |failure: &Option<String>| {
        if failure.is_none() {
            "ok"
        } else {
            "unreachable"
        }
    };
    let readiness = Readiness {
        status: if is_ready { "ready" } else { "not ready" },
        restored,
        postgres: word(&postgres_error),
        kafka: word(&kafka_error),
        orders_in_memory: state.memory.len(),
        instance: state.instance.clone(),
        partitions: owned,
        halted,
        postgres_error,
        kafka_error,
    };
    if is_ready {
        Ok(json_answer(StatusCode::OK, &readiness))
    } else {
        Err(HttpError::NotReady(Box::new(readiness)))
    }
}
