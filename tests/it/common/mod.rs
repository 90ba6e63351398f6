//! The integration-test harness: real PostgreSQL and a real Kafka-protocol broker (tansu),
//! started here on free ports, or taken from `DATABASE_URL` / `KAFKA_BROKERS` when set.
//!
//! Services are started once per test binary and shared; every test gets its own database and
//! topic. A watchdog process stops the services and deletes their files when the test binary
//! exits, however it exits. A missing service is a failure that says what is missing, never a
//! skip.

// Each test binary compiles this harness and uses only part of it.
#![allow(dead_code, unused_imports)]

mod app;
mod certs;
mod chromium;
mod http;
mod kafka;
mod postgres;
mod process;
mod proxy;
mod secure_kafka;

pub use app::*;
pub use certs::*;
pub use chromium::*;
pub use http::*;
pub use kafka::*;
pub use postgres::*;
pub use process::*;
pub use proxy::*;
pub use secure_kafka::*;

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use orderstore::config::Settings;
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The canonical order of the contract.
pub const CANONICAL: &str = include_str!("../../data/canonical-order.json");

/// Services shared by every test of one test binary.
pub struct Services {
    /// A superuser connection string for the shared PostgreSQL server.
    pub admin_url: String,
    /// Kafka bootstrap address.
    pub kafka_brokers: String,
    _cluster: Option<PgCluster>,
    /// The broker process when the harness started it; the watchdog stops it.
    _broker: Option<std::process::Child>,
}

static SERVICES: OnceLock<Services> = OnceLock::new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The shared services, started on first use.
pub fn services() -> &'static Services {
    SERVICES.get_or_init(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            orderstore::telemetry::init(
                &std::env::var("TEST_LOG").unwrap_or_default(),
                orderstore::config::LogFormat::Text,
            );
        }
        let (admin_url, cluster) = match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => (url, None),
            _ => {
                let cluster = PgCluster::start();
                (cluster.admin_url(), Some(cluster))
            }
        };
        let (kafka_brokers, broker) = match std::env::var("KAFKA_BROKERS") {
            Ok(brokers) if !brokers.is_empty() => (brokers, None),
            _ => {
                let port = free_port();
                let child = start_tansu(port, port);
                (format!("127.0.0.1:{port}"), Some(child))
            }
        };
        Services {
            admin_url,
            kafka_brokers,
            _cluster: cluster,
            _broker: broker,
        }
    })
}
