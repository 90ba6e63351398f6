//! `orderstore top --once` as a script runs it: against a small HTTP server started here that
//! serves a fixed `/status.json` behind a bearer token, the binary prints the figures and exits
//! 0, and with a wrong token or no server it says why and exits non-zero.

use std::process::{Command, Output, Stdio};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The token the fake server accepts.
const TOKEN: &str = "top-test-token-0123456789";
/// What the fake server serves: the contract's example with a halted partition and Kafka down.
const STATUS: &str = include_str!("../../src/cli/top/sample_status.json");

/// Serves `/status.json` on a port of loopback, answering 401 without `Bearer TOKEN`, until
/// the test's runtime ends. Returns the base URL.
async fn status_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|error| panic!("cannot listen: {error}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|error| panic!("no address: {error}"))
        .port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut chunk = [0_u8; 1024];
                while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => request.extend_from_slice(&chunk[..read]),
                    }
                }
                let request = String::from_utf8_lossy(&request);
                let authorized = request
                    .lines()
                    .any(|line| line == format!("Authorization: Bearer {TOKEN}"));
                let answer = if !request.starts_with("GET /status.json HTTP/1.1\r\n") {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_owned()
                } else if authorized {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{STATUS}",
                        STATUS.len()
                    )
                } else {
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nContent-Length: 0\r\n\r\n"
                        .to_owned()
                };
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// Runs `orderstore top --once` with `args` off the runtime's threads, so that the server
/// keeps answering while the binary waits.
async fn top_once(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_orderstore"))
            .arg("top")
            .arg("--once")
            .args(&args)
            .env_remove("ORDERSTORE_TOKEN")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|error| panic!("cannot run orderstore: {error}"))
    })
    .await
    .unwrap_or_else(|error| panic!("the runner failed: {error}"))
}

#[tokio::test]
async fn top_once_prints_the_figures_of_status_json() {
    let url = status_server().await;
    let output = top_once(&["--url", &url, "--token", TOKEN]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "top failed: {stderr}\nstdout:\n{stdout}"
    );
    for figure in [
        "instance orderstore-1",
        "PostgreSQL ok",
        "Kafka error: broker 127.0.0.1:9092 refused the connection",
        "stored     990",
        "rejected   10",
        "stored/s 118",
        "HALTED",
        "265",
        "orders in memory 8200",
        "p99 1.2 ms",
        "field_rule: 7",
        "orderstore-2: 1",
    ] {
        assert!(stdout.contains(figure), "no {figure:?} in:\n{stdout}");
    }
    assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN));
}

#[tokio::test]
async fn top_once_with_a_wrong_token_says_so_and_fails() {
    let url = status_server().await;
    let output = top_once(&["--url", &url, "--token", "not-the-token"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(output.stdout.is_empty());
    assert!(
        stderr.contains("401 Unauthorized") && stderr.contains("bearer token"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-token"), "{stderr}");
}

#[tokio::test]
async fn top_once_without_a_server_names_the_address_and_fails() {
    // A port that was just free: bound, then released.
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|error| panic!("cannot listen: {error}"));
    let address = listener
        .local_addr()
        .unwrap_or_else(|error| panic!("no address: {error}"));
    drop(listener);
    let url = format!("http://{address}");
    let output = top_once(&["--url", &url]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains(&format!("cannot connect to {address}")),
        "{stderr}"
    );
}
