//! `GET /orders/latest`: the latest orders stored, which the search page lists so a newcomer
//! has something to open.

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::error::HttpError;
use super::{json_answer, HttpState};

/// Orders `/orders/latest` lists unless `?limit=` says otherwise.
const DEFAULT_LATEST_ORDERS: i64 = 10;
/// Most orders `/orders/latest` lists.
const MAX_LATEST_ORDERS: i64 = 100;

/// The answer of `GET /orders/latest`.
#[derive(Debug, Serialize)]
struct LatestOrdersAnswer {
    /// Newest first.
    orders: Vec<LatestOrderAnswer>,
}

#[derive(Debug, Serialize)]
struct LatestOrderAnswer {
    id: i64,
    order_uid: String,
    /// When PostgreSQL stored it (RFC 3339).
    stored_at: String,
}

/// `GET /orders/latest?limit=10`: the latest orders stored for the topic, newest first
/// (`limit` 1 to 100). Read from PostgreSQL, so every instance lists the same.
pub(super) async fn latest_orders(
    request: HttpRequest,
    state: web::Data<HttpState>,
) -> Result<HttpResponse, HttpError> {
    let limit = latest_limit(request.query_string()).map_err(HttpError::BadRequest)?;
    let orders = state
        .database
        .latest_orders(limit)
        .await
        .map_err(|db_error| {
            HttpError::read_failed(
                "latest orders",
                &db_error,
                "PostgreSQL is unavailable; try again",
            )
        })?;
    let answer = LatestOrdersAnswer {
        orders: orders
            .into_iter()
            .map(|order| LatestOrderAnswer {
                id: order.id,
                order_uid: order.order_uid,
                stored_at: order
                    .stored_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            })
            .collect(),
    };
    Ok(json_answer(StatusCode::OK, &answer))
}

/// `?limit=` of `/orders/latest`; no other parameter is known.
fn latest_limit(query: &str) -> Result<i64, Cow<'static, str>> {
    let mut limit = DEFAULT_LATEST_ORDERS;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        match pair.split_once('=') {
            Some(("limit", value)) => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|limit| (1..=MAX_LATEST_ORDERS).contains(limit))
                    .ok_or(Cow::Borrowed("limit must be a number from 1 to 100"))?;
            }
            _ => return Err(Cow::Borrowed("the only parameter is limit")),
        }
    }
    Ok(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_limit_takes_one_to_a_hundred() {
        assert_eq!(latest_limit(""), Ok(10));
        assert_eq!(latest_limit("limit=3"), Ok(3));
        assert_eq!(latest_limit("limit=100"), Ok(100));
        for bad in ["limit=0", "limit=101", "limit=x", "other=1"] {
            assert!(latest_limit(bad).is_err(), "{bad}");
        }
    }
}
