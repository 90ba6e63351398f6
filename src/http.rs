//! The HTTP API (actix-web), exactly the contract's table:
//!
//! | request | answer |
//! |---|---|
//! | `GET /orders/{id}`, `GET /orders?id={id}` | the order with that id |
//! | `GET /orders/uid/{order_uid}`, `GET /orders?order_uid={order_uid}` | the order with that uid |
//!
//! 200 carries the order's JSON and `X-Order-Id`; 400 (malformed id or uid) and 404 carry
//! `{"error": "..."}`. Also `/` (a search page), `/metrics` (Prometheus), `/health/live` and
//! `/health/ready`. Memory answers first; an order that the sweeper evicted, or that is not
//! restored, is read from PostgreSQL. HTTP only reads: it never changes memory or PostgreSQL.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{Server, Service};
use actix_web::http::{header, Method, StatusCode};
use actix_web::{guard, web, App, HttpRequest, HttpResponse, HttpServer};

use crate::order::is_order_uid;
use crate::stats::{names, Stats};
use crate::store::memory::{MemoryStore, StoredOrder};
use crate::store::postgres::Database;

/// What request handlers read.
#[derive(Debug, Clone)]
pub struct HttpState {
    /// Orders in memory.
    pub memory: Arc<MemoryStore>,
    /// PostgreSQL, for orders not in memory.
    pub database: Database,
    /// The pipeline's counters; readiness reads whether Kafka answers.
    pub stats: Arc<Stats>,
}

/// How long readiness waits for PostgreSQL to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// An order looked up by one of its keys.
#[derive(Debug, Clone, Copy)]
enum OrderKey<'a> {
    Id(i64),
    Uid(&'a str),
}

/// Builds the server on an already bound listener; the caller runs and stops it.
pub fn build_server(
    listener: TcpListener,
    state: HttpState,
    workers: usize,
) -> std::io::Result<Server> {
    let state = web::Data::new(state);
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap_fn(|request, service| {
                let started = Instant::now();
                let route = route_label(request.path());
                let response = service.call(request);
                async move {
                    let response = response.await?;
                    observe_request(route, response.status().as_u16(), started);
                    Ok(response)
                }
            })
            .service(
                web::resource("/")
                    .route(reading().to(index_page))
                    .default_service(web::to(method_not_allowed)),
            )
            .route("/metrics", reading().to(metrics_text))
            .route("/health/live", reading().to(live))
            .route("/health/ready", reading().to(ready))
            .route("/app.js", reading().to(page_script))
            .route("/app.css", reading().to(page_style))
            .service(
                web::resource("/orders")
                    .route(reading().to(order_by_query))
                    .default_service(web::to(method_not_allowed)),
            )
            // `/orders/{id}` and `/orders/uid/{order_uid}`: see `order_by_path`.
            .default_service(web::to(order_by_path))
    })
    .listen(listener)?
    .disable_signals()
    .shutdown_timeout(5);
    if workers > 0 {
        server = server.workers(workers);
    }
    Ok(server.run())
}

fn reading() -> actix_web::Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// The route of `GET /orders/{id}`, as [`route_label`] names it.
const ORDER_BY_ID: &str = "/orders/{id}";
/// The route of `GET /orders/uid/{order_uid}`, as [`route_label`] names it.
const ORDER_BY_UID: &str = "/orders/uid/{order_uid}";

/// The route pattern a path is served by, as a metric label. actix can say it too
/// (`match_pattern`), but it matches the path again and allocates a string on every request;
/// the routes are few and fixed, and a test keeps this table in step with them.
fn route_label(path: &str) -> &'static str {
    match path {
        "/" => "/",
        "/orders" => "/orders",
        "/metrics" => "/metrics",
        "/health/live" => "/health/live",
        "/health/ready" => "/health/ready",
        "/app.js" => "/app.js",
        "/app.css" => "/app.css",
        _ => match path.strip_prefix("/orders/") {
            Some(rest)
                if rest.len() > 4 && rest.starts_with("uid/") && !rest[4..].contains('/') =>
            {
                ORDER_BY_UID
            }
            Some(rest) if !rest.is_empty() && !rest.contains('/') => ORDER_BY_ID,
            _ => "unmatched",
        },
    }
}

/// Counts a request and records its latency. Metric handles are looked up in the registry
/// once per worker thread and route/status, then kept: the registry lookup (hashing labels,
/// allocating keys) would otherwise be paid on every request.
fn observe_request(route: &'static str, status: u16, started: Instant) {
    type Handles = (metrics::Counter, metrics::Histogram);
    thread_local! {
        static HANDLES: std::cell::RefCell<std::collections::HashMap<(&'static str, u16), Handles>> =
            std::cell::RefCell::new(std::collections::HashMap::new());
    }
    let seconds = started.elapsed().as_secs_f64();
    HANDLES.with(|handles| {
        let mut handles = handles.borrow_mut();
        let (requests, latency) = handles.entry((route, status)).or_insert_with(|| {
            (
                metrics::counter!(names::HTTP_REQUESTS, "route" => route, "status" => status.to_string()),
                metrics::histogram!(names::HTTP_SECONDS, "route" => route),
            )
        });
        requests.increment(1);
        latency.record(seconds);
    });
}

/// The Prometheus text exposition of every metric.
async fn metrics_text() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::stats::prometheus().render())
}

/// The process is up and answering.
async fn live() -> HttpResponse {
    json_answer(StatusCode::OK, serde_json::json!({ "status": "live" }))
}

/// Ready when memory is restored (always, once HTTP listens: it starts after the restore),
/// PostgreSQL answers and Kafka answered the last request. 503 says which is missing.
async fn ready(state: web::Data<HttpState>) -> HttpResponse {
    let postgres = matches!(
        tokio::time::timeout(READY_TIMEOUT, state.database.ping()).await,
        Ok(Ok(()))
    );
    let kafka = state.stats.is_kafka_reachable();
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

fn json_answer(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(mime_json())
        .insert_header(NO_SNIFF)
        .body(body.to_string())
}

/// The search page, its script and its style: static files compiled into the binary.
const INDEX_PAGE: &str = include_str!("../static/index.html");
const PAGE_SCRIPT: &str = include_str!("../static/app.js");
const PAGE_STYLE: &str = include_str!("../static/app.css");

/// The page shows untrusted order fields: only its own script and style may run, so a value
/// that slipped into the markup still could not execute.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

async fn index_page() -> HttpResponse {
    static_file(header::ContentType::html(), INDEX_PAGE)
}

async fn page_script() -> HttpResponse {
    static_file(header::ContentType(mime_javascript()), PAGE_SCRIPT)
}

async fn page_style() -> HttpResponse {
    static_file(header::ContentType(mime_css()), PAGE_STYLE)
}

fn mime_javascript() -> actix_web::mime::Mime {
    "text/javascript; charset=utf-8"
        .parse()
        .unwrap_or(actix_web::mime::TEXT_PLAIN_UTF_8)
}

fn mime_css() -> actix_web::mime::Mime {
    actix_web::mime::TEXT_CSS_UTF_8
}

fn static_file(content_type: header::ContentType, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(NO_SNIFF)
        .insert_header((header::CONTENT_SECURITY_POLICY, PAGE_POLICY))
        .body(body)
}

/// `GET /orders/{id}` and `GET /orders/uid/{order_uid}`, and 404 for any other path. These
/// two routes, most of the traffic, are told apart here by [`route_label`] instead of by
/// actix's router, which matches every path parameter with a regular expression: that was
/// 8 % of the server's CPU under load, more than looking the order up.
async fn order_by_path(request: HttpRequest, state: web::Data<HttpState>) -> HttpResponse {
    let path = request.path();
    let route = route_label(path);
    let by_id = route == ORDER_BY_ID;
    if !by_id && route != ORDER_BY_UID {
        return no_such_route().await;
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return method_not_allowed().await;
    }
    // The key is the last segment; route_label has checked there is exactly one.
    let raw = path.rsplit('/').next().unwrap_or_default();
    let key = percent_decoded(raw);
    match (by_id, key.as_deref()) {
        (true, Some(raw)) => match parse_id(raw) {
            Some(id) => answer(&state, OrderKey::Id(id)).await,
            None => malformed_id(),
        },
        (true, None) => malformed_id(),
        (false, Some(raw)) if is_order_uid(raw) => answer(&state, OrderKey::Uid(raw)).await,
        (false, _) => malformed_uid(),
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

async fn order_by_query(request: HttpRequest, state: web::Data<HttpState>) -> HttpResponse {
    let Ok(pairs) = web::Query::<Vec<(String, String)>>::from_query(request.query_string()) else {
        return error(StatusCode::BAD_REQUEST, "the query string is malformed");
    };
    let mut id = None;
    let mut uid = None;
    for (name, value) in pairs.iter() {
        let slot = match name.as_str() {
            "id" => &mut id,
            "order_uid" => &mut uid,
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("unknown query parameter {name:?}: use id or order_uid"),
                )
            }
        };
        if slot.replace(value.as_str()).is_some() {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("query parameter {name} is given more than once"),
            );
        }
    }
    match (id, uid) {
        (Some(raw), None) => match parse_id(raw) {
            Some(id) => answer(&state, OrderKey::Id(id)).await,
            None => malformed_id(),
        },
        (None, Some(raw)) if is_order_uid(raw) => answer(&state, OrderKey::Uid(raw)).await,
        (None, Some(_)) => malformed_uid(),
        (Some(_), Some(_)) => error(
            StatusCode::BAD_REQUEST,
            "give either id or order_uid, not both",
        ),
        (None, None) => error(
            StatusCode::BAD_REQUEST,
            "give an order's id (?id=) or its order_uid (?order_uid=)",
        ),
    }
}

/// Looks the order up in memory, then in PostgreSQL.
async fn answer(state: &HttpState, key: OrderKey<'_>) -> HttpResponse {
    let in_memory = match key {
        OrderKey::Id(id) => state.memory.get_by_id(id),
        OrderKey::Uid(uid) => state.memory.get_by_uid(uid),
    };
    if let Some(order) = in_memory {
        return order_response(&order);
    }
    let stored = match key {
        OrderKey::Id(id) => state.database.order_by_id(id).await,
        OrderKey::Uid(uid) => state.database.order_by_uid(uid).await,
    };
    match stored {
        Ok(Some(order)) => order_response(&order),
        Ok(None) => match key {
            OrderKey::Id(id) => error(StatusCode::NOT_FOUND, &format!("no order with id {id}")),
            OrderKey::Uid(uid) => error(
                StatusCode::NOT_FOUND,
                &format!("no order with order_uid {uid}"),
            ),
        },
        Err(db_error) => {
            tracing::warn!(error = %db_error, "order lookup in PostgreSQL failed");
            let mut response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the order is not in memory and PostgreSQL is unavailable; try again",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            response
        }
    }
}

fn order_response(order: &StoredOrder) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(mime_json())
        .insert_header(NO_SNIFF)
        .insert_header(("X-Order-Id", order.id))
        .body(order.json.clone())
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

fn malformed_id() -> HttpResponse {
    error(
        StatusCode::BAD_REQUEST,
        "malformed id: expected a positive integer such as 42",
    )
}

fn malformed_uid() -> HttpResponse {
    error(
        StatusCode::BAD_REQUEST,
        "malformed order_uid: expected 1 to 64 ASCII letters, digits, '-' or '_'",
    )
}

async fn no_such_route() -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        "no such route: see GET /orders/{id} and GET /orders/uid/{order_uid}",
    )
}

async fn method_not_allowed() -> HttpResponse {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "only GET and HEAD are allowed",
    );
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
    response
}

/// Order fields are untrusted: browsers must not guess that a JSON body is HTML.
const NO_SNIFF: (header::HeaderName, header::HeaderValue) = (
    header::X_CONTENT_TYPE_OPTIONS,
    header::HeaderValue::from_static("nosniff"),
);

fn mime_json() -> header::ContentType {
    header::ContentType::json()
}

fn error(status: StatusCode, message: &str) -> HttpResponse {
    json_answer(status, serde_json::json!({ "error": message }))
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
    fn route_labels_follow_the_routes() {
        let cases = [
            ("/", "/"),
            ("/orders", "/orders"),
            ("/orders/42", "/orders/{id}"),
            ("/orders/abc", "/orders/{id}"),
            ("/orders/uid", "/orders/{id}"),
            ("/orders/uid/b563feb7b2b84b6test", "/orders/uid/{order_uid}"),
            ("/orders/uid/", "unmatched"),
            ("/orders/42/", "unmatched"),
            ("/orders/", "unmatched"),
            ("/metrics", "/metrics"),
            ("/health/live", "/health/live"),
            ("/health/ready", "/health/ready"),
            ("/app.js", "/app.js"),
            ("/app.css", "/app.css"),
            ("/nothing", "unmatched"),
        ];
        for (path, label) in cases {
            assert_eq!(route_label(path), label, "{path}");
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
