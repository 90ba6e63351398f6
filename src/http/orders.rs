//! The order routes: `GET /orders/{id}`, `GET /orders/uid/{order_uid}` and `GET /orders?..`,
//! looked up in memory first, then in PostgreSQL.

use std::borrow::Cow;

use actix_web::{web, HttpRequest, HttpResponse};

use super::error::HttpError;
use super::routes::{ORDER_BY_ID, ORDER_BY_UID};
use super::{is_reading, mime_json, no_such_route, HttpState, NO_SNIFF};
use crate::order::is_order_uid;

/// An order looked up by one of its keys.
#[derive(Debug, Clone, Copy)]
enum OrderKey<'a> {
    Id(i64),
    Uid(&'a str),
}

/// `GET /orders/{id}` and `GET /orders/uid/{order_uid}`, and 404 for any other path. These
/// two routes, most of the traffic, are told apart here by [`route_label`] instead of by
/// actix's router, which matches every path parameter with a regular expression on every
/// request (its cost is in README, Performance, and docs/performance-history.md).
pub(super) async fn order_by_path(
    request: &HttpRequest,
    state: &HttpState,
    route: &'static str,
) -> Result<HttpResponse, HttpError> {
    let path = request.path();
    let by_id = route == ORDER_BY_ID;
    if !by_id && route != ORDER_BY_UID {
        return Err(no_such_route());
    }
    if !is_reading(request.method()) {
        return Err(HttpError::MethodNotAllowed);
    }
    // The key is the last segment; route_label has checked there is exactly one.
    let raw = path.rsplit('/').next().unwrap_or_default();
    let key = percent_decoded(raw);
    match (by_id, key.as_deref()) {
        (true, Some(raw)) => match parse_id(raw) {
            Some(id) => answer(state, OrderKey::Id(id)).await,
            None => Err(malformed_id()),
        },
        (true, None) => Err(malformed_id()),
        (false, Some(raw)) if is_order_uid(raw) => answer(state, OrderKey::Uid(raw)).await,
        (false, _) => Err(malformed_uid()),
    }
}

/// A path segment with its `%XX` escapes decoded, as a router would give it; `None` when an
/// escape is broken or the bytes are not UTF-8.
fn percent_decoded(raw: &str) -> Option<std::borrow::Cow<'_, str>> {
    if !raw.contains('%') {
        return Some(std::borrow::Cow::Borrowed(raw));
    }
    let mut bytes = Vec::with_capacity(raw.len());
    let mut rest = raw.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' {
            let hex = tail.get(..2)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            bytes.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(byte);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok().map(std::borrow::Cow::Owned)
}

/// `GET /orders?id={id}` and `GET /orders?order_uid={order_uid}`.
pub(super) async fn order_by_query(
    request: HttpRequest,
    state: web::Data<HttpState>,
) -> Result<HttpResponse, HttpError> {
    let Ok(pairs) = web::Query::<Vec<(String, String)>>::from_query(request.query_string()) else {
        return Err(bad_request("the query string is malformed"));
    };
    let mut id = None;
    let mut uid = None;
    for (name, value) in pairs.iter() {
        let slot = match name.as_str() {
            "id" => &mut id,
            "order_uid" => &mut uid,
            _ => {
                return Err(HttpError::BadRequest(Cow::Owned(format!(
                    "unknown query parameter {name:?}: use id or order_uid"
                ))))
            }
        };
        if slot.replace(value.as_str()).is_some() {
            return Err(HttpError::BadRequest(Cow::Owned(format!(
                "query parameter {name} is given more than once"
            ))));
        }
    }
    match (id, uid) {
        (Some(raw), None) => match parse_id(raw) {
            Some(id) => answer(&state, OrderKey::Id(id)).await,
            None => Err(malformed_id()),
        },
        (None, Some(raw)) if is_order_uid(raw) => answer(&state, OrderKey::Uid(raw)).await,
        (None, Some(_)) => Err(malformed_uid()),
        (Some(_), Some(_)) => Err(bad_request("give either id or order_uid, not both")),
        (None, None) => Err(bad_request(
            "give an order's id (?id=) or its order_uid (?order_uid=)",
        )),
    }
}

/// Looks the order up in memory, then in PostgreSQL.
async fn answer(state: &HttpState, key: OrderKey<'_>) -> Result<HttpResponse, HttpError> {
    let in_memory = match key {
        OrderKey::Id(id) => state.memory.get_by_id(id),
        OrderKey::Uid(uid) => state.memory.get_by_uid(uid),
    };
    if let Some(order) = in_memory {
        if let Some(json) = order.json() {
            return Ok(order_response(order.id(), json));
        }
    }
    // Not in memory, or (only if memory were corrupted) a frame that does not decompress: the
    // order is read from PostgreSQL.
    let stored = match key {
        OrderKey::Id(id) => state.database.order_by_id(id).await,
        OrderKey::Uid(uid) => state.database.order_by_uid(uid).await,
    };
    match stored {
        Ok(Some(order)) => match order.json.to_bytes() {
            Some(json) => Ok(order_response(order.id, json)),
            // PostgreSQL's orders are read plain (only memory compresses), so this cannot be.
            None => Err(HttpError::Unavailable(Cow::Borrowed(
                "the order could not be read; try again",
            ))),
        },
        Ok(None) => Err(HttpError::NotFound(Cow::Owned(match key {
            OrderKey::Id(id) => format!("no order with id {id}"),
            OrderKey::Uid(uid) => format!("no order with order_uid {uid}"),
        }))),
        Err(db_error) => Err(HttpError::read_failed(
            "order",
            &db_error,
            "the order is not in memory and PostgreSQL is unavailable; try again",
        )),
    }
}

fn order_response(id: i64, json: bytes::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(mime_json())
        .insert_header(NO_SNIFF)
        .insert_header(("X-Order-Id", id))
        .body(json)
}

/// An id is a positive decimal integer that fits in `i64`, written without sign or leading
/// zeros: the only form the service ever gives out.
fn parse_id(raw: &str) -> Option<i64> {
    let canonical = !raw.is_empty()
        && raw.len() <= 19
        && !raw.starts_with('0')
        && raw.bytes().all(|byte| byte.is_ascii_digit());
    if canonical {
        raw.parse().ok()
    } else {
        None
    }
}

fn malformed_id() -> HttpError {
    bad_request("malformed id: expected a positive integer such as 42")
}

fn malformed_uid() -> HttpError {
    bad_request("malformed order_uid: expected 1 to 64 ASCII letters, digits, '-' or '_'")
}

fn bad_request(message: &'static str) -> HttpError {
    HttpError::BadRequest(Cow::Borrowed(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_keys_are_percent_decoded() {
        assert_eq!(percent_decoded("abc-1").as_deref(), Some("abc-1"));
        assert_eq!(percent_decoded("abc%2D1").as_deref(), Some("abc-1"));
        assert_eq!(percent_decoded("%34%32").as_deref(), Some("42"));
        assert_eq!(percent_decoded("%C3%A9").as_deref(), Some("é"));
        for broken in ["%", "%4", "%zz", "%+1", "a%2", "%FF"] {
            assert_eq!(percent_decoded(broken), None, "{broken}");
        }
    }

    #[test]
    fn only_canonical_positive_ids_parse() {
        assert_eq!(parse_id("1"), Some(1));
        assert_eq!(parse_id("9223372036854775807"), Some(i64::MAX));
        for bad in [
            "",
            "0",
            "007",
            "-1",
            "+1",
            "1.0",
            "1e3",
            "abc",
            "9223372036854775808",
            " 1",
        ] {
            assert_eq!(parse_id(bad), None, "{bad:?} parsed");
        }
    }
}
