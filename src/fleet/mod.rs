//! Running as a fleet: several instances on one database and topic share the partitions
//! through leases in PostgreSQL (`store/postgres/leases.rs`). `share.rs` decides how many
//! partitions each live instance should own and what one round of the lease loop does;
//! `keeper.rs` is the task that runs the rounds and tells the readers what to read.

pub mod keeper;
pub mod share;
