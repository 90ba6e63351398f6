//! A small HTTP/1.1 client, enough to read status, headers and body from the service without
//! pulling an HTTP client crate into the tests.

use super::*;

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: HashMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "body is not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// A plain HTTP/1.1 GET (or other method) on 127.0.0.1:`port`.
pub async fn http(port: u16, method: &str, path: &str) -> Answer {
    http_with(port, method, path, &[]).await
}

/// A plain HTTP/1.1 request with extra `headers`.
pub async fn http_with(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|error| panic!("cannot connect to port {port}: {error}"));
    exchange(stream, method, path, headers).await
}

/// An HTTPS request to `localhost:port`, checking the server's certificate against `ca`.
pub async fn https_with(port: u16, ca: &Path, path: &str, headers: &[(&str, &str)]) -> Answer {
    let ca = ca.display().to_string();
    let config = orderstore::tls::client_config(
        &orderstore::tls::Roots::File(ca),
        orderstore::tls::Verification::Full,
        None,
    )
    .unwrap_or_else(|error| panic!("no TLS client: {error}"));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|error| panic!("cannot connect to port {port}: {error}"));
    let name = rustls::pki_types::ServerName::try_from("localhost")
        .unwrap_or_else(|error| panic!("{error}"));
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap_or_else(|error| panic!("TLS handshake with port {port} failed: {error}"));
    exchange(stream, "GET", path, headers).await
}

/// Sends one request on `stream` and reads the answer to the end.
async fn exchange<S>(mut stream: S, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .unwrap_or_else(|error| panic!("cannot send the request: {error}"));
    let mut raw = Vec::new();
    // A TLS peer may close without close_notify once the answer is sent.
    if let Err(error) = stream.read_to_end(&mut raw).await {
        assert!(!raw.is_empty(), "cannot read the answer: {error}");
    }
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .get("transfer-encoding")
        .is_some_and(|value| value == "chunked")
    {
        body = dechunk(&body);
    }
    Answer {
        status,
        headers,
        body,
    }
}

pub(crate) fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(end) = raw.windows(2).position(|window| window == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&raw[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        body.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[end + 2 + size + 2..];
    }
    body
}
