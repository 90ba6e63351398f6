//! The rejected records, as operators and producers triage them: `GET /rejects` (newest first,
//! `?reason=`, `?partition=`, `?limit=` up to 1,000, `?before=` the cursor a page gives as
//! `next`), `GET /rejects/summary` (a count per kind, first and last seen) and
//! `GET /rejects/{id}` (one reject whole: its value as text when it is UTF-8, and in hex).
//! Behind the same token as the orders. Read from PostgreSQL, as `orderstore rejects` reads.

use std::borrow::Cow;
use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use crate::http::error::HttpError;
use crate::http::{json_answer, HttpState};
use crate::store::postgres::rejects::{hex_text, RejectFilter, RejectRow};
use crate::store::postgres::DbError;

/// Most rejects a page holds.
pub const MAX_LIMIT: usize = 1000;
/// Rejects a page holds unless `?limit=` says otherwise.
const DEFAULT_LIMIT: usize = 100;

/// The answer of `GET /rejects`: a page, newest first.
#[derive(Debug, Serialize)]
struct RejectPage<'a> {
    /// The page's rejects.
    rejects: Vec<ListedReject<'a>>,
    /// The cursor of the next page (`?before=`), or `null` on the last one.
    next: Option<String>,
}

/// A reject as lists show it.
#[derive(Debug, Serialize)]
struct ListedReject<'a> {
    /// Its id in `rejected_records`.
    id: i64,
    /// Its source partition.
    partition: i32,
    /// Its source offset.
    offset: i64,
    /// The kind of rejection.
    reason: &'a str,
    /// The field the rule is about (`.` for the record as a whole).
    path: &'a str,
    /// The rule it broke.
    rule: &'a str,
    /// When it was recorded (RFC 3339).
    rejected_at: String,
    /// When the dead-letter topic acknowledged it (RFC 3339), or `null` while pending.
    published_at: Option<String>,
    /// Bytes of the record's value.
    size: i64,
}

/// The answer of `GET /rejects/{id}`: the list's fields and the record as it arrived.
#[derive(Debug, Serialize)]
struct WholeReject<'a> {
    /// What a list shows of it.
    #[serde(flatten)]
    listed: ListedReject<'a>,
    /// The value as text, or `null` when it is not UTF-8.
    value: Option<&'a str>,
    /// The value in hex, whatever it holds.
    value_hex: String,
    /// Whether PostgreSQL refused the bytes and they were kept as hex.
    kept_in_hex: bool,
    /// The key as text, or `null` when there is none or it is not UTF-8.
    key: Option<&'a str>,
    /// Each header's value as text, or `null` when it is not UTF-8.
    headers: BTreeMap<&'a str, Option<&'a str>>,
}

/// The answer of `GET /rejects/summary`.
#[derive(Debug, Serialize)]
struct RejectSummaryAnswer<'a> {
    /// Rejects recorded for the topic.
    total: i64,
    /// Rejects not yet in the dead-letter topic.
    pending: i64,
    /// A count per kind.
    reasons: Vec<KindAnswer<'a>>,
}

/// One kind of rejection in the summary.
#[derive(Debug, Serialize)]
struct KindAnswer<'a> {
    /// The kind.
    reason: &'a str,
    /// Rejects of that kind.
    count: i64,
    /// When the first was recorded (RFC 3339).
    first_seen: String,
    /// When the last was recorded (RFC 3339).
    last_seen: String,
}

/// `GET /rejects`.
pub(crate) async fn list(
    request: HttpRequest,
    state: web::Data<HttpState>,
) -> Result<HttpResponse, HttpError> {
    let filter = parse_filter(request.query_string())
        .map_err(|message| HttpError::BadRequest(Cow::Owned(message)))?;
    let rows = state
        .database
        .list_rejects(&filter)
        .await
        .map_err(|db_error| unavailable(&db_error))?;
    let next = (rows.len() == filter.limit)
        .then(|| rows.last().map(|row| row.id.to_string()))
        .flatten();
    let page = RejectPage {
        rejects: rows.iter().map(listed).collect(),
        next,
    };
    Ok(json_answer(StatusCode::OK, &page))
}

/// `GET /rejects/summary`.
pub(crate) async fn summary(state: web::Data<HttpState>) -> Result<HttpResponse, HttpError> {
    let summary = state
        .database
        .reject_summary()
        .await
        .map_err(|db_error| unavailable(&db_error))?;
    let answer = RejectSummaryAnswer {
        total: summary.total,
        pending: summary.pending,
        reasons: summary
            .kinds
            .iter()
            .map(|kind| KindAnswer {
                reason: &kind.kind,
                count: kind.count,
                first_seen: kind.first_seen.to_rfc3339(),
                last_seen: kind.last_seen.to_rfc3339(),
            })
            .collect(),
    };
    Ok(json_answer(StatusCode::OK, &answer))
}

/// `GET /rejects/{id}`; `raw` is the path's last segment.
pub(crate) async fn by_id(raw: &str, state: &HttpState) -> Result<HttpResponse, HttpError> {
    let Some(id) = raw.parse::<i64>().ok().filter(|id| *id > 0) else {
        return Err(HttpError::BadRequest(Cow::Borrowed(
            "a reject's id is a positive integer, as GET /rejects lists them",
        )));
    };
    let detail = state
        .database
        .reject_by_id(id)
        .await
        .map_err(|db_error| unavailable(&db_error))?
        .ok_or_else(|| HttpError::NotFound(Cow::Owned(format!("no reject with id {id}"))))?;
    let whole = WholeReject {
        listed: listed(&detail.row),
        value: text_of(&detail.value),
        value_hex: hex_text(&detail.value),
        kept_in_hex: detail.kept_in_hex,
        key: detail.key.as_deref().and_then(text_of),
        headers: detail
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), text_of(value)))
            .collect(),
    };
    Ok(json_answer(StatusCode::OK, &whole))
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

/// A reject as lists show it: its reason split into the field and the rule.
fn listed(row: &RejectRow) -> ListedReject<'_> {
    let (path, rule) = row.reason.split_once(": ").unwrap_or((".", &row.reason));
    ListedReject {
        id: row.id,
        partition: row.partition,
        offset: row.offset,
        reason: &row.kind,
        path,
        rule,
        rejected_at: row.rejected_at.to_rfc3339(),
        published_at: row.published_at.map(|at| at.to_rfc3339()),
        size: row.size,
    }
}

/// Bytes as text when they are UTF-8, else `None` (their hex is given beside them).
fn text_of(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

fn unavailable(db_error: &DbError) -> HttpError {
    HttpError::read_failed("rejects", db_error, "PostgreSQL is unavailable; try again")
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
        assert_eq!(text_of(b"abc"), Some("abc"));
        assert_eq!(text_of(b"\xff"), None);
    }
}
