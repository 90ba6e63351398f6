//! Where orders live: in memory for fast reads, in PostgreSQL for durability.

pub mod memory;
pub mod postgres;
