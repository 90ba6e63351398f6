//! Methods, route by route: every route answers GET and HEAD, and any other method with 405,
//! `Allow: GET, HEAD` and a JSON error; a path that is no route answers 404 (JSON) whatever
//! the method. With `HTTP_AUTH_TOKENS` set, the token is checked before the method: a client
//! without one gets 401 from the order and reject routes, `/metrics` and unknown paths
//! whatever it sends, so it learns no more than before (neither which paths exist nor which
//! methods they take); the probes and the page's files, open to all, answer 405.

use std::time::Duration;

use crate::common::*;

const TOKEN: &str = "methods-token-0123456789";

/// Every method the service refuses. OPTIONS too: the API serves only its own page, so it has
/// no cross-origin requests to answer.
const WRONG_METHODS: &[&str] = &["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"];

/// Paths that are no route, next to routes they resemble.
const UNKNOWN_PATHS: &[&str] = &[
    "/nothing/here",
    "/health",
    "/metrics/",
    "/app.js/x",
    "/orders/",
    "/orders/1/2",
    "/orders/uid/",
    "/rejects/",
    "/rejects/1/x",
];

/// A route as a request reaches it.
struct Route {
    /// A path it serves.
    path: String,
    /// Whether it needs the token when tokens are set.
    guarded: bool,
    /// What GET answers there.
    get_status: u16,
}

/// An app with `overrides` that has stored one order and recorded one reject, and every route
/// with a path that finds them. The routes with a malformed key are there to show that the
/// method is refused before the key is read.
async fn app_and_every_route(overrides: &[(&str, &str)]) -> (RunningApp, Vec<Route>) {
    let bed = TestBed::new(1).await;
    let orders = valid_orders(1);
    let (uid, order) = &orders[0];
    produce(
        &bed.partitions[0],
        vec![Some(order.clone()), Some(b"not json".to_vec())],
    )
    .await;
    let app = RunningApp::start(settings(&bed.database, &bed.topic, overrides)).await;
    bed.wait_until_caught_up().await;
    app.restored().await;
    let port = app.http_port();
    wait_for(
        "the instance to be ready",
        Duration::from_secs(60),
        || async { http(port, "GET", "/health/ready").await.status == 200 },
    )
    .await;
    let order_id: i64 = bed
        .db
        .query_one("SELECT id FROM orders WHERE order_uid = $1", &[uid])
        .await
        .unwrap_or_else(|error| panic!("the order was not stored: {error}"))
        .get(0);
    let reject_id: i64 = bed
        .db
        .query_one("SELECT id FROM rejected_records", &[])
        .await
        .unwrap_or_else(|error| panic!("the reject was not recorded: {error}"))
        .get(0);
    let route = |path: String, guarded: bool, get_status: u16| Route {
        path,
        guarded,
        get_status,
    };
    let routes = vec![
        route("/".into(), false, 200),
        route("/app.js".into(), false, 200),
        route("/app.css".into(), false, 200),
        route("/health/live".into(), false, 200),
        route("/health/ready".into(), false, 200),
        route("/metrics".into(), true, 200),
        route("/rejects".into(), true, 200),
        route("/rejects/summary".into(), true, 200),
        route(format!("/rejects/{reject_id}"), true, 200),
        route("/rejects/abc".into(), true, 400),
        route(format!("/orders?id={order_id}"), true, 200),
        route(format!("/orders?order_uid={uid}"), true, 200),
        route(format!("/orders/{order_id}"), true, 200),
        route(format!("/orders/uid/{uid}"), true, 200),
        route("/orders/abc".into(), true, 400),
        route("/orders/latest".into(), true, 200),
        route("/status".into(), false, 200),
        route("/status.js".into(), false, 200),
        route("/status.css".into(), false, 200),
        route("/status.json".into(), true, 200),
    ];
    (app, routes)
}

/// Checks that `answer` is an error with `status` and the contract's body,
/// `{"error": "<what went wrong>"}`.
fn assert_json_error(answer: &Answer, status: u16, request: &str) {
    assert_eq!(answer.status, status, "{request}");
    assert_eq!(
        answer.headers.get("content-type").map(String::as_str),
        Some("application/json"),
        "{request}"
    );
    let body = answer.json();
    assert!(
        body["error"].as_str().is_some_and(|text| !text.is_empty()),
        "{request}: {body}"
    );
}

/// Checks that `answer` is the 405 of a route that exists.
fn assert_method_not_allowed(answer: &Answer, request: &str) {
    assert_json_error(answer, 405, request);
    assert_eq!(
        answer.headers.get("allow").map(String::as_str),
        Some("GET, HEAD"),
        "{request}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_get_and_head_and_refuses_other_methods_with_405() {
    let (app, routes) = app_and_every_route(&[]).await;
    let port = app.http_port();
    for route in &routes {
        let path = route.path.as_str();
        for method in WRONG_METHODS {
            let answer = http(port, method, path).await;
            assert_method_not_allowed(&answer, &format!("{method} {path}"));
        }
        let got = http(port, "GET", path).await;
        assert_eq!(got.status, route.get_status, "GET {path}");
        assert!(!got.body.is_empty(), "GET {path} has no body");
        let head = http(port, "HEAD", path).await;
        assert_eq!(head.status, route.get_status, "HEAD {path}");
        assert!(head.body.is_empty(), "HEAD {path} has a body");
    }
    for path in UNKNOWN_PATHS {
        for method in WRONG_METHODS.iter().chain(&["GET"]) {
            let answer = http(port, method, path).await;
            assert_json_error(&answer, 404, &format!("{method} {path}"));
            assert!(!answer.headers.contains_key("allow"), "{method} {path}");
        }
        assert_eq!(http(port, "HEAD", path).await.status, 404, "HEAD {path}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_a_wrong_method_gets_401_before_405_on_guarded_routes() {
    let (app, routes) = app_and_every_route(&[("HTTP_AUTH_TOKENS", TOKEN)]).await;
    let port = app.http_port();
    let bearer = format!("Bearer {TOKEN}");
    let with_token = [("Authorization", bearer.as_str())];
    for route in &routes {
        let path = route.path.as_str();
        for method in WRONG_METHODS {
            let request = format!("{method} {path} without a token");
            let answer = http(port, method, path).await;
            if route.guarded {
                assert_json_error(&answer, 401, &request);
                assert_eq!(
                    answer.headers.get("www-authenticate").map(String::as_str),
                    Some("Bearer realm=\"orderstore\""),
                    "{request}"
                );
                assert!(!answer.headers.contains_key("allow"), "{request}");
            } else {
                assert_method_not_allowed(&answer, &request);
            }
            let answer = http_with(port, method, path, &with_token).await;
            assert_method_not_allowed(&answer, &format!("{method} {path} with the token"));
        }
        let got = http_with(port, "GET", path, &with_token).await;
        assert_eq!(got.status, route.get_status, "GET {path} with the token");
        let head = http_with(port, "HEAD", path, &with_token).await;
        assert_eq!(head.status, route.get_status, "HEAD {path} with the token");
        assert!(head.body.is_empty(), "HEAD {path} has a body");
    }
    for path in UNKNOWN_PATHS {
        for method in WRONG_METHODS.iter().chain(&["GET"]) {
            let answer = http(port, method, path).await;
            assert_json_error(&answer, 401, &format!("{method} {path} without a token"));
            let answer = http_with(port, method, path, &with_token).await;
            assert_json_error(&answer, 404, &format!("{method} {path} with the token"));
        }
    }
    app.stop().await;
}
