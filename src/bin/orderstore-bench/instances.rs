//! The `orderstore` processes of a fleet run: started with their own `INSTANCE_ID` and HTTP
//! port, watched, killed, stopped. Dropping them kills whatever still runs, so no exit path of
//! the benchmark leaves an instance behind.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};

/// How often a stop checks whether the instances have exited.
const POLL: Duration = Duration::from_millis(10);

/// The `orderstore` processes of a run. Whatever still runs when this is dropped, on any exit
/// path (an error, a panic, Ctrl-C), is killed.
pub struct Fleet {
    /// The instances not killed yet, in the order they were started.
    pub instances: Vec<Instance>,
}

/// One `orderstore` process, killed when dropped.
pub struct Instance {
    /// Its `INSTANCE_ID`.
    pub id: String,
    process: Child,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Fleet {
    /// Starts `n_instances` of `binary` with `environment`, named `bench-1`, `bench-2`, ...
    /// (`INSTANCE_ID`), each with HTTP on a free port and logging to its file in `logs`. The
    /// rest of their settings come from this process's environment (and `.env`), as the ingest
    /// benchmark's do.
    pub fn start(
        binary: &Path,
        environment: &[(&str, String)],
        n_instances: usize,
        logs: &Path,
    ) -> anyhow::Result<Fleet> {
        let mut fleet = Fleet {
            instances: Vec::new(),
        };
        for index in 1..=n_instances {
            let id = format!("bench-{index}");
            let log = File::create(logs.join(format!("{id}.log")))?;
            let http_port = free_port()?;
            let process = Command::new(binary)
                .envs(environment.iter().map(|(name, value)| (name, value)))
                .env("HTTP_ADDR", format!("127.0.0.1:{http_port}"))
                .env("INSTANCE_ID", &id)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("cannot start {}", binary.display()))?;
            fleet.instances.push(Instance { id, process });
        }
        Ok(fleet)
    }

    /// Fails if an instance has exited: none may stop on its own.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        for instance in &mut self.instances {
            if let Some(status) = instance.process.try_wait()? {
                bail!("{} exited by itself with {status}", instance.id);
            }
        }
        Ok(())
    }

    /// Kills the instance at `index` with SIGKILL and returns when the signal was sent.
    pub fn kill(&mut self, index: usize) -> anyhow::Result<Instant> {
        let mut instance = self.instances.remove(index);
        instance.process.kill()?;
        let killed_at = Instant::now();
        instance.process.wait()?;
        Ok(killed_at)
    }

    /// Stops every instance with SIGTERM; each must exit with status 0 within `lease_ttl` and
    /// 30 s more.
    pub async fn stop(mut self, lease_ttl: Duration) -> anyhow::Result<()> {
        for instance in &self.instances {
            let pid = instance.process.id().to_string();
            let status = Command::new("kill").args(["-TERM", &pid]).status()?;
            ensure!(status.success(), "kill -TERM {pid} failed with {status}");
        }
        let deadline = Instant::now() + lease_ttl + Duration::from_secs(30);
        for instance in &mut self.instances {
            let status = loop {
                if let Some(status) = instance.process.try_wait()? {
                    break status;
                }
                ensure!(
                    Instant::now() < deadline,
                    "{} did not stop after SIGTERM",
                    instance.id
                );
                tokio::time::sleep(POLL).await;
            };
            ensure!(
                status.success(),
                "{} exited with {status} after SIGTERM",
                instance.id
            );
        }
        Ok(())
    }
}

/// `config` as a libpq key/value string, for an instance's `DATABASE_URL`.
pub fn connection_string(config: &tokio_postgres::Config) -> String {
    let quote = |value: &str| format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"));
    let mut parts = Vec::new();
    match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => {
            parts.push(format!("host={}", quote(host)))
        }
        Some(tokio_postgres::config::Host::Unix(path)) => {
            parts.push(format!("host={}", quote(&path.display().to_string())));
        }
        None => {}
    }
    if let Some(port) = config.get_ports().first() {
        parts.push(format!("port={port}"));
    }
    if let Some(user) = config.get_user() {
        parts.push(format!("user={}", quote(user)));
    }
    if let Some(password) = config.get_password() {
        parts.push(format!(
            "password={}",
            quote(&String::from_utf8_lossy(password))
        ));
    }
    if let Some(dbname) = config.get_dbname() {
        parts.push(format!("dbname={}", quote(dbname)));
    }
    parts.join(" ")
}

/// A port free on the loopback now, for an instance's HTTP.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
