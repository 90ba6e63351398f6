//! Running as a fleet: several instances on one database and topic share the partitions
//! through leases in PostgreSQL (`store/postgres/leases.rs`). `share.rs` decides how many
//! partitions each live instance should own and what one round of the lease loop does.

pub mod share;
