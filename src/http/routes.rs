//! Which route a path is served by: the metric label of every request, and how the two
//! order routes with a key in the path are told apart without actix's router.

/// The route of `GET /orders/{id}`, as [`route_label`] names it.
pub(super) const ORDER_BY_ID: &str = "/orders/{id}";
/// The route of `GET /orders/uid/{order_uid}`, as [`route_label`] names it.
pub(super) const ORDER_BY_UID: &str = "/orders/uid/{order_uid}";
/// The route of `GET /rejects/{id}`, as [`route_label`] names it.
pub(super) const REJECT_BY_ID: &str = "/rejects/{id}";

/// The route pattern a path is served by, as a metric label. actix can say it too
/// (`match_pattern`), but it matches the path again and allocates a string on every request;
/// the routes are few and fixed, and a test keeps this table in step with them.
pub(super) fn route_label(path: &str) -> &'static str {
    match path {
        "/" => "/",
        "/orders" => "/orders",
        "/metrics" => "/metrics",
        "/health/live" => "/health/live",
        "/health/ready" => "/health/ready",
        "/app.js" => "/app.js",
        "/app.css" => "/app.css",
        "/rejects" => "/rejects",
        "/rejects/summary" => "/rejects/summary",
        "/status" => "/status",
        "/status.json" => "/status.json",
        "/status.js" => "/status.js",
        "/status.css" => "/status.css",
        "/orders/latest" => "/orders/latest",
        _ if path.starts_with("/rejects/") => {
            let id = &path["/rejects/".len()..];
            if id.is_empty() || id.contains('/') {
                "unmatched"
            } else {
                REJECT_BY_ID
            }
        }
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

/// Whether a route needs the bearer token when tokens are set: the orders, the rejects,
/// `/metrics`, and unmatched paths, which would otherwise tell which routes exist. The token
/// is checked before the method, so on these a client without one gets 401 whatever it sends.
/// The probes and the pages' files stay open: the pages hold no data, and ask for the token
/// when their data answers 401.
pub(super) fn needs_token(route: &'static str) -> bool {
    !matches!(
        route,
        "/" | "/health/live"
            | "/health/ready"
            | "/app.js"
            | "/app.css"
            | "/status"
            | "/status.js"
            | "/status.css"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
            ("/rejects", "/rejects"),
            ("/rejects/summary", "/rejects/summary"),
            ("/status", "/status"),
            ("/status.json", "/status.json"),
            ("/status.js", "/status.js"),
            ("/status.css", "/status.css"),
            ("/orders/latest", "/orders/latest"),
            ("/rejects/12", "/rejects/{id}"),
            ("/rejects/", "unmatched"),
            ("/rejects/12/x", "unmatched"),
            ("/nothing", "unmatched"),
        ];
        for (path, label) in cases {
            assert_eq!(route_label(path), label, "{path}");
        }
    }
}
