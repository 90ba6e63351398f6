//! The rejected records, as operators and producers triage them: `GET /rejects` (newest first,
//! `?reason=`, `?partition=`, `?limit=` up to 1,000, `?before=` the cursor a page gives as
//! `next`), `GET /rejects/summary` (a count per kind, first and last seen) and
//! `GET /rejects/{id}` (one reject whole: its value as text when it is UTF-8, and in hex).
//! Behind the same token as the orders. Read from PostgreSQL, as `orderstore rejects` reads.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::{error, json_answer, HttpState};
use crate::store::postgres::rejects::{hex_text, RejectFilter, RejectRow};
use crate::store::postgres::DbError;

/// Most rejects a page holds.
pub const MAX_LIMIT: usize = 1000;
/// Rejects a page holds unless `?limit=` says otherwise.
const DEFAULT_LIMIT: usize = 100;

/// `GET /rejects`.
pub(super) async fn list(request: HttpRequest, state: web::Data<HttpState>) -> HttpResponse {
    let filter = match parse_filter(request.query_string()) {
        Ok(filter) => filter,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    match state.database.list_rejects(&filter).await {
        Ok(rows) => {
            let next = (rows.len() == filter.limit)
                .then(|| rows.last().map(|row| row.id.to_string()))
                .flatten();
            json_answer(
                StatusCode::OK,
                json!({
                    "rejects": rows.iter().map(row_json).collect::<Vec<Value>>(),
                    "next": next,
                }),
            )
        }
        Err(db_error) => unavailable(&db_error),
    }
}

/// `GET /rejects/summary`.
pub(super) async fn summary(state: web::Data<HttpState>) -> HttpResponse {
    match state.database.reject_summary().await {
        Ok(summary) => json_answer(
            StatusCode::OK,
            json!({
                "total": summary.total,
                "pending": summary.pending,
                "reasons": summary.kinds.iter().map(|kind| json!({
                    "reason": kind.kind,
                    "count": kind.count,
                    "first_seen": kind.first_seen.to_rfc3339(),
                    "last_seen": kind.last_seen.to_rfc3339(),
                })).collect::<Vec<Value>>(),
            }),
        ),
        Err(db_error) => unavailable(&db_error),
    }
}

/// `GET /rejects/{id}`; `raw` is the path's last segment.
pub(super) async fn by_id(raw: &str, state: &HttpState) -> HttpResponse {
    let Some(id) = raw.parse::<i64>().ok().filter(|id| *id > 0) else {
        return error(
            StatusCode::BAD_REQUEST,
            "a reject's id is a positive integer, as GET /rejects lists them",
        );
    };
    match state.database.reject_by_id(id).await {
        Ok(Some(detail)) => {
            let mut body = row_json(&detail.row);
            body["value"] = bytes_json(&detail.value);
            body["value_hex"] = Value::String(hex_text(&detail.value));
            body["kept_in_hex"] = Value::Bool(detail.kept_in_hex);
            body["key"] = detail.key.as_deref().map_or(Value::Null, bytes_json);
            body["headers"] = detail
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), bytes_json(value)))
                .collect::<serde_json::Map<String, Value>>()
                .into();
            json_answer(StatusCode::OK, body)
        }
        Ok(None) => error(StatusCode::NOT_FOUND, &format!("no reject with id {id}")),
        Err(db_error) => unavailable(&db_error),
    }
}

/// The filter of `GET /rejects`'s query string, or what is wrong with it.
pub fn parse_filter(query: &str) -> Result<RejectFilter, String> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|_| "the query string is malformed".to_string())?;
    let mut filter = RejectFilter {
        limit: DEFAULT_LIMIT,
        ..RejectFilter::default()
    };
    let mut seen = Vec::new();
    for (name, value) in pairs.iter() {
        if seen.contains(name) {
            return Err(format!("query parameter {name} is given more than once"));
        }
        seen.push(name.clone());
        match name.as_str() {
            "reason" => filter.kind = Some(value.clone()),
            "partition" => {
                filter.partition = Some(
                    value
                        .parse()
                        .ok()
                        .filter(|partition: &i32| *partition >= 0)
                        .ok_or_else(|| {
                            format!("partition must be a partition number, got {value:?}")
                        })?,
                )
            }
            "limit" => {
                filter.limit = value
                    .parse()
                    .ok()
                    .filter(|limit| (1..=MAX_LIMIT).contains(limit))
                    .ok_or_else(|| format!("limit must be from 1 to {MAX_LIMIT}, got {value:?}"))?
            }
            "before" => {
                filter.before = Some(value.parse().ok().filter(|id: &i64| *id > 0).ok_or_else(
                    || format!("before must be a reject's id (the page's next), got {value:?}"),
                )?)
            }
            _ => {
                return Err(format!(
                    "unknown query parameter {name:?}: use reason, partition, limit or before"
                ))
            }
        }
    }
    Ok(filter)
}

/// A reject as lists show it.
fn row_json(row: &RejectRow) -> Value {
    let (path, rule) = row.reason.split_once(": ").unwrap_or((".", &row.reason));
    json!({
        "id": row.id,
        "partition": row.partition,
        "offset": row.offset,
        "reason": row.kind,
        "path": path,
        "rule": rule,
        "rejected_at": row.rejected_at.to_rfc3339(),
        "published_at": row.published_at.map(|at| at.to_rfc3339()),
        "size": row.size,
    })
}

/// Bytes as text when they are UTF-8, else `null` (their hex is given beside them).
fn bytes_json(bytes: &[u8]) -> Value {
    std::str::from_utf8(bytes).map_or(Value::Null, |text| Value::String(text.to_string()))
}

fn unavailable(db_error: &DbError) -> HttpResponse {
    tracing::warn!(error = %db_error, "reading rejects from PostgreSQL failed");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "PostgreSQL is unavailable; try again",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_s_query_is_checked() {
        assert_eq!(
            parse_filter(""),
            Ok(RejectFilter {
                limit: 100,
                ..RejectFilter::default()
            })
        );
        assert_eq!(
            parse_filter("reason=not_json&partition=3&limit=1000&before=77"),
            Ok(RejectFilter {
                kind: Some("not_json".into()),
                partition: Some(3),
                before: Some(77),
                limit: 1000,
            })
        );
        for bad in [
            "limit=0",
            "limit=1001",
            "limit=x",
            "partition=-1",
            "before=0",
            "colour=red",
            "limit=5&limit=6",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn bytes_are_text_when_they_can_be() {
        assert_eq!(bytes_json(b"abc"), json!("abc"));
        assert_eq!(bytes_json(b"\xff"), Value::Null);
    }
}
