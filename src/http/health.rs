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

/// Ready when memory is restored (always, once HTTP listens: it starts after the restore),
/// PostgreSQL answers and Kafka answered the last request. 503 says which is missing.
pub(super) async fn ready(state: web::Data<HttpState>) -> HttpResponse {
    let postgres = matches!(
        tokio::time::timeout(READY_TIMEOUT, state.database.ping()).await,
        Ok(Ok(()))
    );
    let kafka = state.events.is_kafka_reachable();
    let status = if postgres && kafka {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |ok: bool| if ok { "ok" } else { "unreachable" };
    json_answer(
        status,
        serde_json::json!({
            "status": if status == StatusCode::OK { "ready" } else { "not ready" },
            "restored": true,
            "postgres": word(postgres),
            "kafka": word(kafka),
            "orders_in_memory": state.memory.len(),
        }),
    )
}
