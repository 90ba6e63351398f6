//! orderstore: orders from a Kafka topic, checked against the contract, kept in memory for fast
//! reads and in PostgreSQL (JSONB) for durability, served over HTTP.
//!
//! The modules, in the order data flows through them:
//!
//! - [`config`]: every setting, read from the environment and checked before anything starts;
//! - [`order`]: the contract, turning raw bytes into an [`order::Order`] or a rejection;
//! - [`kafka`]: reader tasks fetching partitions with rskafka into a bounded channel;
//! - [`offsets`]: which offsets are durable, so the stored offset never passes a lost record;
//! - [`handler`]: handler tasks that check, store and acknowledge records in batches;
//! - [`store`]: the in-memory DashMaps and PostgreSQL, the only module with SQL;
//! - [`sweeper`]: evicts orders from memory by count and age;
//! - [`http`]: the read-only HTTP API (actix-web);
//! - [`app`]: wiring, start-up and ordered shutdown.
//!
//! Helpers: [`jsonb`] (the served JSON form), [`backoff`] (retries with jitter), [`stats`]
//! (counters), [`telemetry`] (logs), [`generate`] (valid random orders for tests, demos and
//! benchmarks).

pub mod app;
pub mod config;
pub mod handler;
pub mod http;
pub mod kafka;
pub mod offsets;
pub mod order;
pub mod store;
pub mod sweeper;

pub mod backoff;
pub mod generate;
pub mod jsonb;
pub mod stats;
pub mod telemetry;
pub mod writer;
