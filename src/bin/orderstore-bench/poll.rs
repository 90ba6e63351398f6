//! A small HTTP/1.1 client for the freshness benchmark: keep-alive connections to one server,
//! reused across requests, and the fetch counter read off `/metrics`.

use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// Longest wait for one answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Keep-alive connections to one `host:port`, opened as requests need them.
pub struct HttpPool {
    address: String,
    idle: Mutex<Vec<BufReader<TcpStream>>>,
}

impl HttpPool {
    /// A pool without connections yet.
    pub fn new(address: String) -> Self {
        Self {
            address,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// `GET path`: the status.
    pub async fn get(&self, path: &str) -> anyhow::Result<u16> {
        Ok(self.get_with_body(path).await?.0)
    }

    /// `GET path`: the status and the body. A kept connection the server has closed meanwhile
    /// (its keep-alive timeout) is replaced by a new one.
    pub async fn get_with_body(&self, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        let idle = self.idle.lock().await.pop();
        if let Some(mut connection) = idle {
            if let Ok(Ok(answer)) =
                tokio::time::timeout(ANSWER_TIMEOUT, exchange(&mut connection, path)).await
            {
                self.idle.lock().await.push(connection);
                return Ok(answer);
            }
        }
        let mut connection = BufReader::new(
            TcpStream::connect(&self.address)
                .await
                .with_context(|| format!("cannot connect to {}", self.address))?,
        );
        let answer = tokio::time::timeout(ANSWER_TIMEOUT, exchange(&mut connection, path))
            .await
            .with_context(|| format!("GET {path}: no answer in {ANSWER_TIMEOUT:?}"))??;
        self.idle.lock().await.push(connection);
        Ok(answer)
    }
}

async fn exchange(
    connection: &mut BufReader<TcpStream>,
    path: &str,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: orderstore\r\n\r\n");
    connection.get_mut().write_all(request.as_bytes()).await?;
    let mut line = String::new();
    connection.read_line(&mut line).await?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("GET {path}: not an HTTP answer: {line:?}"))?;
    let mut length = 0;
    loop {
        line.clear();
        if connection.read_line(&mut line).await? == 0 {
            bail!("GET {path}: the connection closed mid-answer");
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().context("a bad Content-Length")?;
            }
        }
    }
    let mut body = vec![0; length];
    connection.read_exact(&mut body).await?;
    Ok((status, body))
}

/// The sum of `orderstore_kafka_fetches_total` over its labels.
pub async fn fetches_total(pool: &HttpPool) -> anyhow::Result<f64> {
    let (status, body) = pool.get_with_body("/metrics").await?;
    if status != 200 {
        bail!("GET /metrics answered {status}");
    }
    let text = String::from_utf8_lossy(&body);
    let total = text
        .lines()
        .filter(|line| line.starts_with("orderstore_kafka_fetches_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    Ok(total)
}
