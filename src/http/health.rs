//! `/health/live`, `/health/ready` and `/metrics`: what orchestrators and Prometheus ask.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::{json_answer, HttpState};

/// How long readiness waits for PostgreSQL to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The Prometheus text exposition of every metric.
pub(super) async fn metrics_text() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::events::prometheus::prometheus().render())
}

/// The process is up and answering.
pub(super) async fn live() -> HttpResponse {
    json_answer(StatusCode::OK, serde_json::json!({ "status": "live" }))
}

/// Names this instance and the partitions it holds leases on. Ready when memory holds the
/// orders of the partitions it took at start-up, PostgreSQL answers, Kafka answered the last
/// request, and no partition it owns is halted (`ON_REJECT=halt`: `halted` names each, with
/// the offset and reason). 503 says which is missing and why (the error, e.g. a refused login or a
/// certificate PostgreSQL's CA did not sign). Partitions taken later are loaded while the
/// instance stays ready: it answers for them from PostgreSQL meanwhile, so a rolling restart
/// never takes the whole fleet out of rotation.
pub(super) async fn ready(state: web::Data<HttpState>) -> HttpResponse {
    let postgres = match tokio::time::timeout(READY_TIMEOUT, state.database.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(error.to_string()),
        Err(_) => Some(format!("no answer within {} s", READY_TIMEOUT.as_secs())),
    };
    let kafka = if state.events.is_kafka_reachable() {
        None
    } else {
        Some(
            state
                .events
                .kafka_failure()
                .unwrap_or_else(|| "not answered yet".to_string()),
        )
    };
    let restored = state.events.is_restored();
    let owned = state.events.owned_partitions();
    let halted: Vec<serde_json::Value> = state
        .events
        .halted_partitions()
        .into_iter()
        .filter(|(partition, _, _)| owned.contains(partition))
        .map(|(partition, offset, reason)| {
            serde_json::json!({ "partition": partition, "offset": offset, "reason": reason })
        })
        .collect();
    let status = if postgres.is_none() && kafka.is_none() && restored && halted.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |failure: &Option<String>| {
        if failure.is_none() {
            "ok"
        } else {
            "unreachable"
        }
    };
    let mut body = serde_json::json!({
        "status": if status == StatusCode::OK { "ready" } else { "not ready" },
        "restored": restored,
        "postgres": word(&postgres),
        "kafka": word(&kafka),
        "orders_in_memory": state.memory.len(),
        "instance": state.instance,
        "partitions": owned,
    });
    if !halted.is_empty() {
        body["halted"] = serde_json::Value::Array(halted);
    }
    for (key, failure) in [("postgres_error", postgres), ("kafka_error", kafka)] {
        if let Some(failure) = failure {
            body[key] = serde_json::Value::String(failure);
        }
    }
    json_answer(status, body)
}
