//! `orderstore healthcheck`: a container's health check without curl in the image. It asks
//! `GET /health/ready` of the service on this machine's `HTTP_ADDR` port, over HTTPS when the
//! server speaks it, with a blocking socket: one request, then the process exits.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::Context;

use crate::config::Settings;

/// How long connecting may take before the check fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the answer may take.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The request: readiness, and the connection closed after it, so the answer ends at EOF.
const REQUEST: &[u8] =
    b"GET /health/ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

/// Succeeds when readiness answers 200; otherwise fails with the status line and the body,
/// which names what is not ready.
pub fn healthcheck(settings: &Settings) -> anyhow::Result<()> {
    let address = SocketAddr::from(([127, 0, 0, 1], settings.http.addr.port()));
    let tcp = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT)
        .with_context(|| format!("nothing answers on {address}"))?;
    tcp.set_read_timeout(Some(READ_TIMEOUT))?;
    let answer = if settings.http.tls.is_some() {
        ask_over_tls(tcp)?
    } else {
        ask(tcp)?
    };
    let answer = String::from_utf8_lossy(&answer);
    let status_line = answer.lines().next().unwrap_or_default();
    if status_line.split(' ').nth(1) == Some("200") {
        Ok(())
    } else {
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        anyhow::bail!("not ready: {status_line} {body}")
    }
}

/// The answer over plain HTTP.
fn ask(mut tcp: TcpStream) -> anyhow::Result<Vec<u8>> {
    let mut answer = Vec::new();
    tcp.write_all(REQUEST)?;
    tcp.read_to_end(&mut answer)?;
    Ok(answer)
}

/// The answer over HTTPS. The server's certificate is not checked: the process asks the
/// service it runs beside, through loopback, whatever name its certificate holds.
fn ask_over_tls(tcp: TcpStream) -> anyhow::Result<Vec<u8>> {
    let config = crate::tls::client_config(
        &crate::tls::Roots::System,
        crate::tls::Verification::None,
        None,
    )
    .map_err(anyhow::Error::msg)?;
    let name = rustls::pki_types::ServerName::try_from("localhost")?;
    let session = rustls::ClientConnection::new(config, name)?;
    let mut stream = rustls::StreamOwned::new(session, tcp);
    stream.write_all(REQUEST)?;
    let mut answer = Vec::new();
    // A server may close without TLS's close_notify; what arrived is the answer.
    if let Err(error) = stream.read_to_end(&mut answer) {
        anyhow::ensure!(!answer.is_empty(), error);
    }
    Ok(answer)
}
