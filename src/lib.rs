//! orderstore: orders from a Kafka topic, checked against the contract, kept in memory for fast
//! reads and in PostgreSQL (JSONB) for durability, served over HTTP.
//!
//! The modules, in the order data flows through them:
//!
//! - [`config`]: every setting, in sections, read from the environment and checked before
//!   anything starts;
//! - [`order`]: the contract, turning raw bytes into an [`order::ValidOrder`] or a rejection,
//!   and the served JSON form;
//! - [`kafka`]: the readers, which fetch partitions with rskafka into a bounded channel;
//! - [`ingest`]: batch writer tasks that check, store and acknowledge records in batches;
//! - [`store`]: memory (the orders held, in DashSets by id and by uid) and PostgreSQL (the only
//!   module with SQL), and the [`store::ServedOrder`] handed between them and HTTP;
//! - [`offsets`]: which offsets are durable, and the committer that stores them;
//! - [`consumer_group`]: the stored offsets mirrored to a Kafka consumer group for Kafka's
//!   own tools, and the group's offsets to start from;
//! - [`rejects`]: what happens to rejected records: the halt policy, the dead-letter
//!   publisher, and the API and command line that show them;
//! - [`restore`]: memory following the leases: the orders of partitions taken loaded from
//!   PostgreSQL, those of partitions given up evicted;
//! - [`sweeper`]: evicts orders from memory by count and age;
//! - [`http`]: the read-only HTTP API (actix-web);
//! - [`fleet`]: how live instances share the partitions (the lease keeper and its
//!   arithmetic);
//! - [`app`]: the one place that starts every component, in start-up order, and stops them;
//! - [`cli`]: the commands of the `orderstore` binary.
//!
//! Around them: [`state`] (what the service is doing now: Kafka health, owned and halted
//! partitions, the restore), [`events`] (one typed event per happening: counts, metrics and
//! logs), [`observer`] (gauges and the progress log), [`status`] (what the status page
//! shows: per-second samples, HTTP latency, the PostgreSQL part), [`shutdown`] (named
//! components under one shutdown root, and the signals), [`backoff`] (retries with jitter),
//! [`telemetry`] (logs), [`fake_data`] (random orders and invalid records, and the writer that
//! produces them to the topic), [`tls`] (rustls configurations from PEM files, for Kafka,
//! PostgreSQL and HTTPS) and [`secret`] (values never printed).

#![warn(missing_docs)]

pub mod config;

pub mod order;

pub mod kafka;

pub mod ingest;

pub mod store;

pub mod offsets;

pub mod consumer_group;

pub mod rejects;

pub mod restore;

pub mod sweeper;

pub mod http;

pub mod fleet;

pub mod app;

pub mod cli;

pub mod state;

pub mod events;

pub mod observer;

pub mod status;

pub mod shutdown;

pub mod backoff;

pub mod telemetry;

pub mod fake_data;

pub mod tls;

pub mod secret;
