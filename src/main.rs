//! The `orderstore` binary: parses the command line and runs the command in the library
//! (`orderstore::cli`), so tests build the same application.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: less time in malloc and free than glibc's allocator on the ingest path, and less
/// fragmentation for a store that holds a million small allocations.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    orderstore::cli::run(orderstore::cli::Cli::parse()).await
}
