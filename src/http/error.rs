//! Every way an HTTP request can fail, as one enum, [`HttpError`], which actix turns into the
//! answer through [`ResponseError`]. The status, the headers a status needs (`Allow` on 405,
//! `WWW-Authenticate` on 401, `Retry-After` on 503) and the contract's error body,
//! `{"error": "<what went wrong>"}`, are decided here and only here: a handler says what went
//! wrong, and cannot answer a 503 without `Retry-After` or an error in another shape.

use std::borrow::Cow;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use super::health::Readiness;
use super::json_answer;
use crate::events::HttpReadFailed;

/// The seconds every 503 asks a client to wait before it asks again. A 503 means PostgreSQL
/// (or, for readiness, Kafka or a restore) cannot answer now: one second would let every
/// client knock again before readiness itself, which waits up to 2 s for PostgreSQL, could
/// have seen it come back, and five would keep a client waiting long after a short restart
/// of PostgreSQL is over. Two seconds is the readiness check's own wait.
pub const RETRY_AFTER_SECONDS: &str = "2";

/// The methods every route answers, as the `Allow` header of a 405 names them.
const ALLOWED_METHODS: &str = "GET, HEAD";

/// Why a request got no answer but an error. The text of each variant is the `error` of the
/// body (readiness excepted, whose 503 says what is missing in its own fields).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A malformed key or query string: 400.
    #[error("{0}")]
    BadRequest(Cow<'static, str>),
    /// No such order, reject or route: 404.
    #[error("{0}")]
    NotFound(Cow<'static, str>),
    /// A method other than GET or HEAD on a route that exists: 405, with `Allow: GET, HEAD`.
    #[error("only GET and HEAD are allowed")]
    MethodNotAllowed,
    /// Tokens are set and the request sent no `Authorization` header: 401, with the
    /// challenge.
    #[error("this route needs Authorization: Bearer <token>")]
    MissingToken,
    /// Tokens are set and the request's `Authorization` is not one of them: 401, with the
    /// challenge naming `invalid_token` (RFC 6750).
    #[error("the bearer token is not accepted")]
    TokenNotAccepted,
    /// PostgreSQL cannot answer now: 503, with `Retry-After`.
    #[error("{0}")]
    Unavailable(Cow<'static, str>),
    /// The instance is not ready: 503, with `Retry-After` and the readiness report, which
    /// names what is missing.
    #[error("not ready")]
    NotReady(Box<Readiness>),
}

impl HttpError {
    /// PostgreSQL failed a read that an answer needed: the failure is an event (a WARN line
    /// and `orderstore_http_read_failures_total{read}`), the answer a 503 saying `message`.
    pub fn read_failed(
        read: &'static str,
        error: &dyn std::fmt::Display,
        message: &'static str,
    ) -> HttpError {
        HttpReadFailed { read, error }.record();
        HttpError::Unavailable(Cow::Borrowed(message))
    }
}

/// The body of every error answer but readiness: `{"error": "<what went wrong>"}`.
#[derive(Debug, Serialize)]
struct ErrorBody {
    error: String,
}

impl ResponseError for HttpError {
    fn status_code(&self) -> StatusCode {
        match self {
            HttpError::BadRequest(_) => StatusCode::BAD_REQUEST,
            HttpError::NotFound(_) => StatusCode::NOT_FOUND,
            HttpError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            HttpError::MissingToken | HttpError::TokenNotAccepted => StatusCode::UNAUTHORIZED,
            HttpError::Unavailable(_) | HttpError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut response = match self {
            HttpError::NotReady(readiness) => json_answer(status, readiness),
            _ => json_answer(
                status,
                &ErrorBody {
                    error: self.to_string(),
                },
            ),
        };
        let extra_header = match self {
            HttpError::MethodNotAllowed => Some((header::ALLOW, ALLOWED_METHODS)),
            HttpError::MissingToken => {
                Some((header::WWW_AUTHENTICATE, "Bearer realm=\"orderstore\""))
            }
            HttpError::TokenNotAccepted => Some((
                header::WWW_AUTHENTICATE,
                "Bearer realm=\"orderstore\", error=\"invalid_token\"",
            )),
            HttpError::Unavailable(_) | HttpError::NotReady(_) => {
                Some((header::RETRY_AFTER, RETRY_AFTER_SECONDS))
            }
            HttpError::BadRequest(_) | HttpError::NotFound(_) => None,
        };
        if let Some((name, value)) = extra_header {
            response
                .headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header's name and value.
    type Header = (&'static str, &'static str);

    /// One of each variant, with its status and the header its answer must carry.
    fn every_error() -> Vec<(HttpError, u16, Option<Header>)> {
        vec![
            (HttpError::BadRequest("malformed id".into()), 400, None),
            (HttpError::NotFound("no order with id 42".into()), 404, None),
            (
                HttpError::MethodNotAllowed,
                405,
                Some(("allow", "GET, HEAD")),
            ),
            (
                HttpError::MissingToken,
                401,
                Some(("www-authenticate", "Bearer realm=\"orderstore\"")),
            ),
            (
                HttpError::TokenNotAccepted,
                401,
                Some((
                    "www-authenticate",
                    "Bearer realm=\"orderstore\", error=\"invalid_token\"",
                )),
            ),
            (
                HttpError::Unavailable("PostgreSQL is unavailable; try again".into()),
                503,
                Some(("retry-after", "2")),
            ),
            (
                HttpError::NotReady(Box::new(Readiness {
                    status: "not ready",
                    restored: true,
                    postgres: "unreachable",
                    kafka: "ok",
                    orders_in_memory: 0,
                    instance: "instance-1".to_string(),
                    partitions: vec![0],
                    halted: Vec::new(),
                    postgres_error: Some("connection refused".to_string()),
                    kafka_error: None,
                })),
                503,
                Some(("retry-after", "2")),
            ),
        ]
    }

    #[test]
    fn each_error_has_its_status_its_header_and_a_json_body() {
        for (error, status, header) in every_error() {
            let response = error.error_response();
            assert_eq!(response.status().as_u16(), status, "{error:?}");
            assert_eq!(
                response
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|value| value.to_str().ok()),
                Some("application/json"),
                "{error:?}"
            );
            assert_eq!(
                response
                    .headers()
                    .get(header::X_CONTENT_TYPE_OPTIONS)
                    .and_then(|value| value.to_str().ok()),
                Some("nosniff"),
                "{error:?}"
            );
            if let Some((name, value)) = header {
                assert_eq!(
                    response
                        .headers()
                        .get(name)
                        .and_then(|value| value.to_str().ok()),
                    Some(value),
                    "{error:?}"
                );
            }
            let body = body_json(response);
            if let HttpError::NotReady(_) = error {
                assert_eq!(body["status"], "not ready");
                assert_eq!(body["postgres"], "unreachable");
            } else {
                assert_eq!(body["error"], error.to_string(), "{error:?}");
                assert_eq!(body.as_object().map(|body| body.len()), Some(1));
            }
        }
    }

    #[test]
    fn every_503_says_when_to_ask_again() {
        for (error, status, _) in every_error() {
            let response = error.error_response();
            assert_eq!(
                response.headers().contains_key(header::RETRY_AFTER),
                status == 503,
                "{error:?}"
            );
        }
    }

    fn body_json(response: HttpResponse) -> serde_json::Value {
        let bytes = actix_web::body::to_bytes(response.into_body());
        let bytes = futures_util::FutureExt::now_or_never(bytes)
            .and_then(Result::ok)
            .unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or_else(|error| panic!("not JSON ({error})"))
    }
}
