//! The HTTP API (actix-web), exactly the contract's table:
//!
//! | request | answer |
//! |---|---|
//! | `GET /orders/{id}`, `GET /orders?id={id}` | the order with that id |
//! | `GET /orders/uid/{order_uid}`, `GET /orders?order_uid={order_uid}` | the order with that uid |
//!
//! 200 carries the order's JSON and `X-Order-Id`; 400 (malformed id or uid) and 404 carry
//! `{"error": "..."}`. Also `/` (a search page), `/metrics` (Prometheus), `/health/live` and
//! `/health/ready`, and the rejected records: `/rejects`, `/rejects/summary`, `/rejects/{id}`. Memory answers first; an order that the sweeper evicted, or that is not
//! restored, is read from PostgreSQL. HTTP only reads: it never changes memory or PostgreSQL.
//!
//! With `HTTP_AUTH_TOKENS` set, the order and reject routes and `/metrics` need a bearer token
//! (`auth.rs`); with `HTTP_TLS_CERT_FILE` and `HTTP_TLS_KEY_FILE`, the server speaks HTTPS.
//!
//! `routes.rs` names the route of a path, `orders.rs` answers the order routes, `rejects.rs`
//! the reject routes, `health.rs`
//! the probes and metrics, `pages.rs` the search page; every request is reported as an
//! [`HttpRequestServed`] event.

pub mod auth;
mod health;
mod orders;
mod pages;
pub mod rejects;
mod routes;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::{Server, Service};
use actix_web::http::{header, Method, StatusCode};
use actix_web::{guard, web, App, HttpRequest, HttpResponse, HttpServer};
use futures_util::future::Either;
use rustls::ServerConfig;

use crate::events::{Events, HttpRequestServed};
use crate::http::auth::HttpAuth;
use crate::store::memory::MemoryStore;
use crate::store::postgres::Database;

/// What the request handlers read.
#[derive(Debug, Clone)]
pub struct HttpState {
    /// Orders in memory.
    pub memory: Arc<MemoryStore>,
    /// PostgreSQL, for orders not in memory.
    pub database: Database,
    /// Readiness reads whether Kafka answers, and which partitions this instance holds.
    pub events: Arc<Events>,
    /// This instance's id, for readiness.
    pub instance: String,
}

/// How the server listens and whom it answers.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// The tokens the order routes and `/metrics` ask for.
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
                    let had_header = request.headers().contains_key(header::AUTHORIZATION);
                    Either::Left(std::future::ready(Ok(
                        request.into_response(auth::unauthorized(had_header))
                    )))
                } else {
                    Either::Right(service.call(request))
                };
                async move {
                    let response = response.await?;
                    HttpRequestServed {
                        route,
                        status: response.status().as_u16(),
                        seconds: started.elapsed().as_secs_f64(),
                    }
                    .record();
                    Ok(response)
                }
            })
            .service(
                web::resource("/")
                    .route(reading().to(pages::index_page))
                    .default_service(web::to(method_not_allowed)),
            )
            .route("/metrics", reading().to(health::metrics_text))
            .route("/health/live", reading().to(health::live))
            .route("/health/ready", reading().to(health::ready))
            .route("/app.js", reading().to(pages::page_script))
            .route("/app.css", reading().to(pages::page_style))
            .route("/rejects", reading().to(rejects::list))
            .route("/rejects/summary", reading().to(rejects::summary))
            .service(
                web::resource("/orders")
                    .route(reading().to(orders::order_by_query))
                    .default_service(web::to(method_not_allowed)),
            )
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
async fn keyed_route(request: HttpRequest, state: web::Data<HttpState>) -> HttpResponse {
    let route = routes::route_label(request.path());
    if route != routes::REJECT_BY_ID {
        return orders::order_by_path(&request, &state, route).await;
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return method_not_allowed().await;
    }
    let id = request.path().rsplit('/').next().unwrap_or_default();
    rejects::by_id(id, &state).await
}

fn reading() -> actix_web::Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

fn json_answer(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(mime_json())
        .insert_header(NO_SNIFF)
        .body(body.to_string())
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
