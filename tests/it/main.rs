//! The integration tests, in one crate so that the library links once. Each module is one
//! area of behaviour; `common` is the harness (real PostgreSQL, tansu, stunnel, Chromium).

mod common;

mod architecture;
mod cli;
mod compose;
mod compression;
mod consumer_group;
mod crash;
mod dead_letters;
mod fenced_batch;
mod fleet;
mod halt;
mod http_auth;
mod http_methods;
mod kafka_outage;
mod kafka_security;
mod leases;
mod metrics_reference;
mod monitoring;
mod observability;
mod offsets;
mod outage;
mod pipeline;
mod rejects;
mod schema;
mod status;
mod targets;
mod tls_postgres;
mod toolchain;
mod top;
mod web_page;
mod web_page_token;
