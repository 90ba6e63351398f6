//! Fake data: random valid orders and invalid records of every kind (`orders.rs`, built on
//! the `fake` crate) for tests, demos and benchmarks, and the writer that produces them to the
//! topic (`writer.rs`).

pub mod orders;
pub mod writer;

pub use orders::{
    invalid_record, invalid_record_of_kind, random_order, random_order_json, random_parsed_orders,
    INVALID_KINDS,
};
