//! What every phase reports (time, CPU of the machine and of this process, page faults, WAL),
//! and the PostgreSQL helpers the phases share.

use std::time::Instant;

use anyhow::bail;

/// What the machine and this process have used so far, to see who works in each phase.
#[derive(Clone, Copy)]
struct Usage {
    /// Busy time of all cores, in seconds.
    machine: f64,
    /// This process's user and system time, in seconds.
    own: f64,
    /// This process's minor page faults: pages the kernel had to map (and zero) for it.
    own_faults: f64,
}

fn usage() -> Usage {
    let ticks = 100.0; // USER_HZ on Linux
    let machine = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|stat| {
            let fields: Vec<f64> = stat
                .lines()
                .next()?
                .split_whitespace()
                .skip(1)
                .filter_map(|field| field.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal
            Some(fields.iter().take(8).sum::<f64>() - fields.get(3)? - fields.get(4)?)
        })
        .unwrap_or(0.0);
    // After the command name: state ppid pgrp session tty_nr tpgid flags minflt cminflt
    // majflt cmajflt utime stime ...
    let own: Vec<f64> = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            let after_name = stat.rsplit_once(')')?.1;
            Some(
                after_name
                    .split_whitespace()
                    .map(|field| field.parse().unwrap_or(0.0))
                    .collect(),
            )
        })
        .unwrap_or_default();
    let field = |index: usize| own.get(index).copied().unwrap_or(0.0);
    Usage {
        machine: machine / ticks,
        own: (field(11) + field(12)) / ticks,
        own_faults: field(7),
    }
}

/// A phase being measured: its start, the CPU used so far and the WAL position.
pub struct Phase {
    pub started: Instant,
    usage: Usage,
    wal: i64,
}

impl Phase {
    /// Starts measuring a phase.
    pub async fn start(admin: &tokio_postgres::Client) -> anyhow::Result<Self> {
        Ok(Self {
            wal: wal_position(admin).await?,
            usage: usage(),
            started: Instant::now(),
        })
    }

    /// Prints what the phase cost: time, CPU of the machine and of this process, the process's
    /// page faults and the WAL bytes per order; returns its seconds.
    pub async fn report(
        self,
        label: &str,
        admin: &tokio_postgres::Client,
        n_orders: u64,
    ) -> anyhow::Result<f64> {
        Ok(self.report_cost(label, admin, n_orders).await?.seconds)
    }

    /// [`Self::report`], returning the seconds and the WAL bytes per order.
    pub async fn report_cost(
        self,
        label: &str,
        admin: &tokio_postgres::Client,
        n_orders: u64,
    ) -> anyhow::Result<PhaseCost> {
        let seconds = self.started.elapsed().as_secs_f64();
        let now = usage();
        let wal = wal_position(admin).await? - self.wal;
        let n_orders = n_orders as f64;
        let wal_per_order = wal as f64 / n_orders;
        eprintln!(
            "{label}: {seconds:.2} s, machine busy {:.2} cpu-s, of which this process {:.2} \
             cpu-s and {:.2} page faults per order; WAL {wal_per_order:.0} bytes per order",
            now.machine - self.usage.machine,
            now.own - self.usage.own,
            (now.own_faults - self.usage.own_faults) / n_orders,
        );
        Ok(PhaseCost {
            seconds,
            wal_per_order,
        })
    }
}

/// What a phase cost.
#[derive(Debug, Clone, Copy)]
pub struct PhaseCost {
    /// Its seconds.
    pub seconds: f64,
    /// WAL written, per order.
    pub wal_per_order: f64,
}

/// PostgreSQL's current WAL position in bytes.
async fn wal_position(admin: &tokio_postgres::Client) -> anyhow::Result<i64> {
    let row = admin
        .query_one(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::int8",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// Puts PostgreSQL back in the same state before a phase: drops the last phase's database,
/// checkpoints, and has the kernel write out every dirty page.
pub async fn settle(admin: &tokio_postgres::Client, drop: Option<String>) -> anyhow::Result<()> {
    if let Some(name) = drop {
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .await?;
    }
    admin.batch_execute("CHECKPOINT").await?;
    let synced = std::process::Command::new("sync").status()?;
    if !synced.success() {
        bail!("sync failed: {synced}");
    }
    Ok(())
}

/// A connection to `config`'s database.
pub async fn connect(config: &tokio_postgres::Config) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

pub async fn create_database(
    admin: &tokio_postgres::Config,
    name: &str,
) -> anyhow::Result<tokio_postgres::Config> {
    let client = connect(admin).await?;
    // CREATE DATABASE cannot share an implicit transaction with another statement.
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .await?;
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    let mut config = admin.clone();
    config.dbname(name);
    Ok(config)
}
