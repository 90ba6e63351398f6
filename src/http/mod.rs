//! The HTTP API (actix-web), exactly the contract's table:
//!
//! | request | answer |
//! |---|---|
//! | `GET /orders/{id}`, `GET /orders?id={id}` | the order with that id |
//! | `GET /orders/uid/{order_uid}`, `GET /orders?order_uid={order_uid}` | the order with that uid |
//!
//! 200 carries the order's JSON and `X-Order-Id`; 400 (malformed id or uid) and 404 carry
//! `{"error": "..."}`. Also `/` (a search page), `/metrics` (Prometheus), `/health/live` and
//! `/health/ready`, the rejected records: `/rejects`, `/rejects/summary`, `/rejects/{id}`, the
//! status page (`/status`, its data `/status.json`) and the latest orders (`/orders/latest`).
//! Memory answers first; an order that the sweeper evicted, or that is not restored, is read
//! from PostgreSQL. HTTP only reads: it never changes memory or PostgreSQL.
//!
//! Every route answers GET and HEAD, and any other method with 405, `Allow: GET, HEAD` and a
//! JSON error; a path that is no route answers 404. With `HTTP_AUTH_TOKENS` set, the order and
//! reject routes, `/metrics` and every unknown path need a bearer token (`auth.rs`), and the
//! token is checked first, before the method: without an accepted token those answer 401
//! whatever the method, so a client without one learns neither which paths exist nor which
//! methods they take. With `HTTP_TLS_CERT_FILE` and `HTTP_TLS_KEY_FILE`, the server speaks HTTPS.
//!
//! `routes.rs` names the route of a path, `orders.rs` answers the order routes, `rejects.rs`
//! the reject routes, `health.rs` the probes and metrics, `pages.rs` the search page,
//! `status.rs` the status page, `latest.rs` `/orders/latest`;
//! `error.rs` is every error answer ([`HttpError`](error::HttpError)); every request is
//! reported as an [`HttpRequestServed`] event.

pub mod auth;
pub mod error;
mod health;
mod latest;
mod orders;
mod pages;
mod routes;
mod status;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::{Server, Service};
use actix_web::http::{header, Method, StatusCode};
use actix_web::{
    guard, web, App, FromRequest, Handler, HttpRequest, HttpResponse, HttpServer, Responder,
    ResponseError,
};
use futures_util::future::Either;
use rustls::ServerConfig;
use serde::Serialize;

use crate::events::HttpRequestServed;
use crate::http::auth::HttpAuth;
use crate::http::error::HttpError;
use crate::rejects::http as rejects_api;
use crate::store::memory::MemoryStore;
use crate::store::postgres::Database;

/// What the request handlers read.
#[derive(Debug, Clone)]
pub struct HttpState {
    /// Orders in memory.
    pub memory: Arc<MemoryStore>,
    /// PostgreSQL, for orders not in memory.
    pub database: Database,
    /// Readiness reads whether Kafka answers, the restore, and the partitions held and
    /// halted.
    pub service: Arc<crate::state::ServiceState>,
    /// This instance's id, for readiness.
    pub instance: String,
    /// What the status page shows, kept by the observer.
    pub status: Arc<crate::status::StatusBoard>,
}

/// How the server listens and whom it answers.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// The tokens the order and reject routes and `/metrics` ask for.
    pub auth: HttpAuth,
    /// HTTPS instead of HTTP.
    pub tls: Option<Arc<ServerConfig>>,
}

/// Builds the server on an already bound listener; the caller runs and stops it.
pub fn build_server(
    listener: TcpListener,
    state: HttpState,
    options: ServerOptions,
) -> std::io::Result<Server> {
    let state = web::Data::new(state);
    let auth = options.auth;
    let server = HttpServer::new(move || {
        let auth = auth.clone();
        App::new()
            .app_data(state.clone())
            .wrap_fn(move |request, service| {
                let started = Instant::now();
                let route = routes::route_label(request.path());
                let response = if auth.is_on()
                    && routes::needs_token(route)
                    && !auth.allows(request.headers().get(header::AUTHORIZATION))
                {
                    let refusal =
                        auth::refusal(request.headers().contains_key(header::AUTHORIZATION));
                    Either::Left(std::future::ready(Ok(
                        request.into_response(refusal.error_response())
                    )))
                } else {
                    Either::Right(service.call(request))
                };
                async move {
                    let response = response.await?;
                    let latency = started.elapsed();
                    crate::status::latency::record_http_latency(latency);
                    HttpRequestServed {
                        route,
                        status: response.status().as_u16(),
                        seconds: latency.as_secs_f64(),
                    }
                    .record();
                    Ok(response)
                }
            })
            .service(read_only("/", pages::index_page))
            .service(read_only("/metrics", health::metrics_text))
            .service(read_only("/health/live", health::live))
            .service(read_only("/health/ready", health::ready))
            .service(read_only("/app.js", pages::page_script))
            .service(read_only("/app.css", pages::page_style))
            .service(read_only("/rejects", rejects_api::list))
            .service(read_only("/rejects/summary", rejects_api::summary))
            .service(read_only("/status", status::status_page))
            .service(read_only("/status.json", status::status_json))
            .service(read_only("/status.js", status::status_script))
            .service(read_only("/status.css", status::status_style))
            .service(read_only("/orders/latest", latest::latest_orders))
            .service(read_only("/orders", orders::order_by_query))
            // `/orders/{id}` and `/orders/uid/{order_uid}`: see `orders::order_by_path`.
            .default_service(web::to(keyed_route))
    })
    .disable_signals()
    .shutdown_timeout(5);
    let server = if options.workers > 0 {
        server.workers(options.workers)
    } else {
        server
    };
    let server = match options.tls {
        Some(tls) => server.listen_rustls_0_23(listener, Arc::unwrap_or_clone(tls))?,
        None => server.listen(listener)?,
    };
    Ok(server.run())
}

/// Every other path: the order routes and `/rejects/{id}`, which have a key in the path and
/// are told apart by [`routes::route_label`] (see `orders.rs`), and 404 for the rest.
async fn keyed_route(
    request: HttpRequest,
    state: web::Data<HttpState>,
) -> Result<HttpResponse, HttpError> {
    let route = routes::route_label(request.path());
    if route != routes::REJECT_BY_ID {
        return orders::order_by_path(&request, &state, route).await;
    }
    if !is_reading(request.method()) {
        return Err(HttpError::MethodNotAllowed);
    }
    let id = request.path().rsplit('/').next().unwrap_or_default();
    rejects_api::by_id(id, &state).await
}

/// A route at a fixed `path` that answers GET and HEAD with `handler`, and every other method
/// with 405. (`App::route` would put the method guard on the path itself, and a POST would
/// fall through to the default service as if the path did not exist.)
fn read_only<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    web::resource(path)
        .route(
            web::route()
                .guard(guard::Any(guard::Get()).or(guard::Head()))
                .to(handler),
        )
        .default_service(web::to(method_not_allowed))
}

/// Whether a request only reads: the methods every route answers.
fn is_reading(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
}

async fn method_not_allowed() -> Result<HttpResponse, HttpError> {
    Err(HttpError::MethodNotAllowed)
}

/// `body` as a JSON answer with `status`.
pub(crate) fn json_answer(status: StatusCode, body: &impl Serialize) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(NO_SNIFF)
        .json(body)
}

/// The 404 of a path that is no route.
fn no_such_route() -> HttpError {
    HttpError::NotFound(std::borrow::Cow::Borrowed(
        "no such route: see GET /orders/{id} and GET /orders/uid/{order_uid}",
    ))
}

/// Order fields are untrusted: browsers must not guess that a JSON body is HTML.
const NO_SNIFF: (header::HeaderName, header::HeaderValue) = (
    header::X_CONTENT_TYPE_OPTIONS,
    header::HeaderValue::from_static("nosniff"),
);

fn mime_json() -> header::ContentType {
    header::ContentType::json()
}
