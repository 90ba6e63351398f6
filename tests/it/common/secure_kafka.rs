//! Brokers that want TLS or SASL, for the security tests. tansu 0.6 does SCRAM when built
//! with its `libsql` feature and run on `sqlite://` storage (users are created while
//! authentication is off, then the broker restarts with `--authentication`); it never applies
//! TLS itself, so stunnel terminates TLS in front of it, and tansu advertises the proxy as
//! `localhost:PORT`, a name the test certificate holds.

use super::*;

/// A SCRAM user: name, password, and tansu's mechanism word (`scram256` or `scram512`).
pub struct ScramUser<'a> {
    /// The user name.
    pub name: &'a str,
    /// The password.
    pub password: &'a str,
    /// `scram256` or `scram512`.
    pub mechanism: &'a str,
}

/// A broker for one security test, stopped when dropped.
pub struct SecureBroker {
    /// Where clients connect: `127.0.0.1:PORT` for plaintext, `localhost:PORT` behind TLS.
    pub bootstrap: String,
    _broker: KillOnDrop,
    _proxy: Option<KillOnDrop>,
}

/// TLS in front of a broker: the proxy's certificate, and the CA its clients must present
/// certificates from (mutual TLS) if any.
pub struct TlsFront<'a> {
    /// The proxy's certificate and key.
    pub server: &'a ServerCert,
    /// With `Some(ca)`, clients must present a certificate `ca` signed.
    pub client_ca: Option<&'a Path>,
}

impl SecureBroker {
    /// A tansu broker; with `users`, on SQLite storage with SCRAM authentication required;
    /// with `tls`, behind stunnel.
    pub fn start(users: &[ScramUser<'_>], tls: Option<TlsFront<'_>>) -> SecureBroker {
        let dir = std::env::temp_dir().join(unique_name("orderstore-broker"));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", dir.display()));
        watchdog(&format!("rm -rf {}", dir.display()));
        let port = free_port();
        let proxy_port = free_port();
        let (storage, extra): (&str, &[&str]) = if users.is_empty() {
            ("memory://tansu/", &[])
        } else {
            create_scram_users(port, users, &dir);
            ("sqlite://broker.db", &["--authentication"])
        };
        let advertised = match tls {
            Some(_) => format!("tcp://localhost:{proxy_port}"),
            None => format!("tcp://127.0.0.1:{port}"),
        };
        let broker = KillOnDrop(start_tansu_with(port, &advertised, storage, extra, &dir));
        let (bootstrap, proxy) = match tls {
            None => (format!("127.0.0.1:{port}"), None),
            Some(front) => (
                format!("localhost:{proxy_port}"),
                Some(start_stunnel(&dir, proxy_port, port, &front)),
            ),
        };
        SecureBroker {
            bootstrap,
            _broker: broker,
            _proxy: proxy,
        }
    }
}

/// Creates `users` on a broker run without authentication, then stops it; the users stay in
/// the SQLite file.
fn create_scram_users(port: u16, users: &[ScramUser<'_>], dir: &Path) {
    let mut setup = KillOnDrop(start_tansu_with(
        port,
        &format!("tcp://127.0.0.1:{port}"),
        "sqlite://broker.db",
        &[],
        dir,
    ));
    for user in users {
        let mut create = Command::new(tansu_program());
        create
            .args([
                "user",
                "create",
                "--broker",
                &format!("tcp://127.0.0.1:{port}"),
            ])
            .args([user.name, user.password, "--mechanism", user.mechanism])
            .current_dir(dir);
        run(
            create,
            "tansu user create (tansu must be built with --features dynostore,libsql)",
        );
    }
    let _ = setup.0.kill();
    let _ = setup.0.wait();
    // The port is free again once the process is gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "tansu did not release port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// stunnel terminating TLS on `accept` and forwarding to the broker on `connect`.
fn start_stunnel(dir: &Path, accept: u16, connect: u16, front: &TlsFront<'_>) -> KillOnDrop {
    let stunnel = find_program("stunnel4", &["/usr/bin"]);
    let mut config = format!(
        "foreground = yes\npid =\ndebug = 4\n\n[kafka]\naccept = 127.0.0.1:{accept}\n\
         connect = 127.0.0.1:{connect}\ncert = {}\nkey = {}\n",
        front.server.cert.display(),
        front.server.key.display()
    );
    if let Some(ca) = front.client_ca {
        config.push_str(&format!("verify = 2\nCAfile = {}\n", ca.display()));
    }
    let config_path = dir.join("stunnel.conf");
    std::fs::write(&config_path, config)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", config_path.display()));
    let log = LogFile::new("orderstore-stunnel");
    let child = Command::new(&stunnel)
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(log.stdio())
        .stderr(log.stdio())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {}: {error}", stunnel.display()));
    let mut proxy = KillOnDrop(child);
    watchdog(&format!("kill -9 {}", proxy.0.id()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", accept)).is_err() {
        let exited = proxy.0.try_wait().ok().flatten();
        assert!(
            exited.is_none() && Instant::now() < deadline,
            "stunnel did not listen on port {accept}:\n{}",
            log.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    proxy
}
