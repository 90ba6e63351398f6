//! PostgreSQL for tests: a throwaway cluster (`initdb` + `pg_ctl`, as the `postgres` user when
//! root), a fresh database per test, and connections for the tests' own checks.

use super::*;

/// Runs a PostgreSQL tool, as the `postgres` user when the tests run as root (initdb refuses
/// to run as root).
pub(crate) fn pg_command(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// A throwaway PostgreSQL cluster in a temporary folder.
pub struct PgCluster {
    dir: PathBuf,
    port: u16,
    pg_ctl: PathBuf,
}

pub(crate) const PG_BIN_DIRS: &[&str] = &[
    "/usr/lib/postgresql/15/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/17/bin",
];

impl PgCluster {
    /// initdb + pg_ctl start on a free port.
    pub fn start() -> PgCluster {
        Self::start_configured(|_| {})
    }

    /// A cluster that speaks only TLS over TCP, with `server`'s certificate, and SCRAM
    /// passwords: `pg_hba.conf` has `hostssl ... scram-sha-256` and `hostnossl ... reject`,
    /// except for the user `certuser`, who logs in with a client certificate `ca` signed. The
    /// superuser connects over the Unix socket ([`PgCluster::socket_admin_url`]).
    pub fn start_tls(server: &ServerCert, ca: &Path) -> PgCluster {
        Self::start_configured(|data| {
            for (from, to) in [
                (&server.cert, "server.crt"),
                (&server.key, "server.key"),
                (&ca.to_path_buf(), "ca.crt"),
            ] {
                std::fs::copy(from, data.join(to))
                    .unwrap_or_else(|error| panic!("cannot copy {}: {error}", from.display()));
            }
            let mut conf = std::fs::OpenOptions::new()
                .append(true)
                .open(data.join("postgresql.conf"))
                .unwrap_or_else(|error| panic!("cannot open postgresql.conf: {error}"));
            std::io::Write::write_all(
                &mut conf,
                b"ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
                  ssl_ca_file = 'ca.crt'\n\
                  password_encryption = 'scram-sha-256'\n",
            )
            .unwrap_or_else(|error| panic!("cannot write postgresql.conf: {error}"));
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\n\
                 hostssl all certuser 127.0.0.1/32 cert\n\
                 hostssl all all 127.0.0.1/32 scram-sha-256\n\
                 hostnossl all all 127.0.0.1/32 reject\n",
            )
            .unwrap_or_else(|error| panic!("cannot write pg_hba.conf: {error}"));
            let mut permissions = Command::new("chmod");
            permissions.arg("600").arg(data.join("server.key"));
            run(permissions, "chmod of the server key");
            if is_root() {
                let mut owner = Command::new("chown");
                owner
                    .arg("postgres:postgres")
                    .arg(data.join("server.crt"))
                    .arg(data.join("server.key"))
                    .arg(data.join("ca.crt"));
                run(owner, "chown of the server certificate");
            }
        })
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A superuser connection string over the Unix socket (trusted, no TLS).
    pub fn socket_admin_url(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres",
            self.dir.display(),
            self.port
        )
    }

    /// initdb, then `configure` on the data folder, then pg_ctl start on a free port.
    fn start_configured(configure: impl FnOnce(&Path)) -> PgCluster {
        let initdb = find_program("initdb", PG_BIN_DIRS);
        let pg_ctl = find_program("pg_ctl", PG_BIN_DIRS);
        let dir = std::env::temp_dir().join(unique_name("orderstore-pg"));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", dir.display()));
        if is_root() {
            run(
                {
                    let mut command = Command::new("chown");
                    command.arg("postgres:postgres").arg(&dir);
                    command
                },
                "chown of the PostgreSQL folder",
            );
        }
        let data = dir.join("data");
        let mut init = pg_command(&initdb);
        init.args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "-D",
        ])
        .arg(&data);
        run(init, "initdb");
        configure(&data);
        let cluster = PgCluster {
            dir: dir.clone(),
            port: free_port(),
            pg_ctl: pg_ctl.clone(),
        };
        watchdog(&format!(
            "{} {} -D {} stop -m immediate; rm -rf {}",
            if is_root() {
                "runuser -u postgres --"
            } else {
                ""
            },
            pg_ctl.display(),
            data.display(),
            dir.display()
        ));
        cluster.start_server();
        cluster
    }

    /// Starts (again) the server and waits until it accepts connections.
    pub fn start_server(&self) {
        let mut start = pg_command(&self.pg_ctl);
        start
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
                self.port,
                self.dir.display()
            ))
            .args(["-w", "-t", "60", "start"]);
        run(start, "pg_ctl start");
    }

    /// Stops the server at once, as a crash or an outage would.
    pub fn stop_server(&self) {
        let mut stop = pg_command(&self.pg_ctl);
        stop.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "stop"]);
        run(stop, "pg_ctl stop");
    }

    /// A superuser URL.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

/// Creates a fresh database on `admin_url`'s server and returns its connection config.
pub async fn create_database(admin_url: &str) -> tokio_postgres::Config {
    let name = unique_name("orderstore_test");
    let admin = connect(admin_url).await;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap_or_else(|error| panic!("cannot create database {name}: {error}"));
    let mut config: tokio_postgres::Config = admin_url
        .parse()
        .unwrap_or_else(|error| panic!("bad admin URL: {error}"));
    config.dbname(&name);
    config
}

/// orderstore's own PostgreSQL layer on a test database, for `topic`.
pub fn orderstore_database(
    config: &tokio_postgres::Config,
    topic: &str,
) -> orderstore::store::postgres::Database {
    orderstore::store::postgres::Database::new(
        config.clone(),
        orderstore::store::postgres::PostgresTls::prefer(),
        1,
        topic,
    )
}

/// Creates orderstore's tables in a test database before the service starts.
pub async fn create_tables(config: &tokio_postgres::Config, topic: &str) {
    orderstore_database(config, topic)
        .migrate()
        .await
        .unwrap_or_else(|error| panic!("cannot create the tables: {error}"));
}

/// A plain connection for the test's own checks.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let config: tokio_postgres::Config = url
        .parse()
        .unwrap_or_else(|error| panic!("bad database URL: {error}"));
    connect_config(&config).await
}

/// A plain connection for the test's own checks.
pub async fn connect_config(config: &tokio_postgres::Config) -> tokio_postgres::Client {
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|error| panic!("cannot connect to PostgreSQL: {error}"));
    tokio::spawn(connection);
    client
}

/// The offsets orderstore stored for `topic`.
pub async fn stored_offsets(db: &tokio_postgres::Client, topic: &str) -> HashMap<i32, i64> {
    db.query(
        "SELECT kafka_partition, next_offset FROM kafka_offsets WHERE kafka_topic = $1",
        &[&topic],
    )
    .await
    .unwrap_or_else(|error| panic!("cannot read offsets: {error}"))
    .into_iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect()
}

/// Counts rows; 0 while the table does not exist yet.
pub async fn count_if_exists(db: &tokio_postgres::Client, sql: &str) -> i64 {
    match db.query_one(sql, &[]).await {
        Ok(row) => row.get(0),
        Err(_) => 0,
    }
}

/// Counts rows.
pub async fn count(db: &tokio_postgres::Client, sql: &str) -> i64 {
    db.query_one(sql, &[])
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
        .get(0)
}
