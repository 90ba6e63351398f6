//! The search page, its script and its style: static files compiled into the binary.

use actix_web::http::header;
use actix_web::HttpResponse;

use super::NO_SNIFF;

const INDEX_PAGE: &str = include_str!("../../static/index.html");
const PAGE_SCRIPT: &str = include_str!("../../static/app.js");
const PAGE_STYLE: &str = include_str!("../../static/app.css");

/// The page shows untrusted order fields: only its own script and style may run, so a value
/// that slipped into the markup still could not execute.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

pub(super) async fn index_page() -> HttpResponse {
    static_file(header::ContentType::html(), INDEX_PAGE)
}

pub(super) async fn page_script() -> HttpResponse {
    static_file(header::ContentType(mime_javascript()), PAGE_SCRIPT)
}

pub(super) async fn page_style() -> HttpResponse {
    static_file(header::ContentType(mime_css()), PAGE_STYLE)
}

pub(super) fn mime_javascript() -> actix_web::mime::Mime {
    "text/javascript; charset=utf-8"
        .parse()
        .unwrap_or(actix_web::mime::TEXT_PLAIN_UTF_8)
}

pub(super) fn mime_css() -> actix_web::mime::Mime {
    actix_web::mime::TEXT_CSS_UTF_8
}

pub(super) fn static_file(content_type: header::ContentType, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(NO_SNIFF)
        .insert_header((header::CONTENT_SECURITY_POLICY, PAGE_POLICY))
        .body(body)
}
