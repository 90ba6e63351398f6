//! The rejected records, everything done with them after the contract said no: the halt
//! policy a batch writer applies (`ON_REJECT`, `halt.rs`), the dead-letter publisher that
//! produces them from their outbox (`REJECTS_TOPIC`, `dead_letters.rs`), and the two ways an
//! operator reads them, the HTTP API (`/rejects*`, `http.rs`) and the command line
//! (`orderstore rejects`, `cli.rs`), which share their queries and limits. The rows themselves
//! and their SQL are `store/postgres/rejects.rs`; the reason a record is rejected is the
//! contract's (`order/rejection.rs`).

pub mod cli;
pub mod dead_letters;
pub mod halt;
pub mod http;
