//! Fetching `/status.json`: one HTTP/1.1 GET over tokio, through TLS when the URL says
//! `https`, with the bearer token. A request per refresh, each on a new connection closed
//! after the answer, so that a restarted server or a broken connection costs one refresh and
//! nothing has to notice it.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::secret::Secret;
use crate::tls::{Roots, Verification};

use super::status::Status;

/// How long one fetch, from connecting to the end of the answer, may take: a refresh that
/// waits longer would show the operator a frozen screen instead of the reason.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest answer read; `/status.json` holds at most 900 samples and the partitions.
const LARGEST_ANSWER: usize = 16 * 1024 * 1024;

/// Why a fetch gave no status. Each says what the operator can do about it.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL cannot be used.
    #[error("{url} is not a URL top can read ({reason})")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The TLS client could not be built, e.g. an unreadable CA file.
    #[error("no TLS client: {0}")]
    TlsSetup(String),
    /// Nothing accepted the connection.
    #[error("cannot connect to {address}: {source}")]
    Unreachable {
        /// Host and port.
        address: String,
        /// The socket's error.
        source: std::io::Error,
    },
    /// The TLS handshake failed, e.g. a certificate the CA did not sign.
    #[error("TLS handshake with {address} failed: {source}")]
    Handshake {
        /// Host and port.
        address: String,
        /// The handshake's error.
        source: std::io::Error,
    },
    /// The connection broke while asking or reading.
    #[error("the connection to {address} broke: {source}")]
    Broken {
        /// Host and port.
        address: String,
        /// The socket's error.
        source: std::io::Error,
    },
    /// The server did not answer in time.
    #[error("{address} did not answer within {} s", FETCH_TIMEOUT.as_secs())]
    Timeout {
        /// Host and port.
        address: String,
    },
    /// The server wants a token, or another one.
    #[error("401 Unauthorized: the bearer token is wrong or missing (--token, ORDERSTORE_TOKEN, HTTP_AUTH_TOKENS)")]
    Unauthorized,
    /// Any other status than 200.
    #[error("the server answered {status}: {body}")]
    Status {
        /// The status line's code and reason.
        status: String,
        /// The start of the body.
        body: String,
    },
    /// The answer is not HTTP.
    #[error("the answer is not HTTP/1.1: {0}")]
    NotHttp(&'static str),
    /// The body is not the status.
    #[error("/status.json is not the status JSON: {0}")]
    NotStatus(#[from] serde_json::Error),
}

/// Where and how to fetch: parsed once from the command line.
#[derive(Debug, Clone)]
pub struct StatusSource {
    /// The URL as given, for the screen's title.
    pub url: String,
    host: String,
    port: u16,
    /// The request's path: the URL's path (if any) followed by `/status.json`.
    path: String,
    /// Present for `https`.
    tls: Option<Arc<rustls::ClientConfig>>,
    token: Option<Secret>,
}

impl StatusSource {
    /// Reads `url` (`http://host[:port][/prefix]` or `https://…`), and for HTTPS builds the TLS
    /// client that checks the server's certificate against `ca_file`, or the system roots.
    pub fn new(
        url: &str,
        token: Option<Secret>,
        ca_file: Option<&str>,
    ) -> Result<StatusSource, FetchError> {
        let bad_url = |reason| FetchError::BadUrl {
            url: url.to_owned(),
            reason,
        };
        let (secure, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad_url("it must start with http:// or https://"));
        };
        let (authority, prefix) = match rest.find('/') {
            Some(slash) => (&rest[..slash], rest[slash..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let default_port = if secure { 443 } else { 80 };
        let (host, port) = split_host_port(authority, default_port)
            .ok_or_else(|| bad_url("the port is not a number"))?;
        if host.is_empty() {
            return Err(bad_url("it names no host"));
        }
        let tls = if secure {
            let roots = ca_file.map_or(Roots::System, |path| Roots::File(path.to_owned()));
            let config = crate::tls::client_config(&roots, Verification::Full, None)
                .map_err(FetchError::TlsSetup)?;
            Some(config)
        } else {
            None
        };
        Ok(StatusSource {
            url: url.to_owned(),
            host,
            port,
            path: format!("{prefix}/status.json"),
            tls,
            token,
        })
    }

    /// Fetches and reads the status once.
    pub async fn fetch(&self) -> Result<Status, FetchError> {
        let address = format!("{}:{}", self.host, self.port);
        let body = tokio::time::timeout(FETCH_TIMEOUT, self.fetch_body(&address))
            .await
            .map_err(|_| FetchError::Timeout {
                address: address.clone(),
            })??;
        Ok(serde_json::from_slice(&body)?)
    }

    /// Connects, asks and returns the body of a 200.
    async fn fetch_body(&self, address: &str) -> Result<Vec<u8>, FetchError> {
        let tcp = TcpStream::connect(address)
            .await
            .map_err(|source| FetchError::Unreachable {
                address: address.to_owned(),
                source,
            })?;
        let answer = match &self.tls {
            None => self.exchange(tcp, address).await?,
            Some(config) => {
                let host = self.host.trim_start_matches('[').trim_end_matches(']');
                let name =
                    rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|_| {
                        FetchError::BadUrl {
                            url: self.url.clone(),
                            reason: "the host is no name a certificate can hold",
                        }
                    })?;
                let stream = tokio_rustls::TlsConnector::from(Arc::clone(config))
                    .connect(name, tcp)
                    .await
                    .map_err(|source| FetchError::Handshake {
                        address: address.to_owned(),
                        source,
                    })?;
                self.exchange(stream, address).await?
            }
        };
        body_of_ok(&answer)
    }

    /// Sends the GET on `stream` and reads the answer to the end.
    async fn exchange<S>(&self, mut stream: S, address: &str) -> Result<Vec<u8>, FetchError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let broken = |source| FetchError::Broken {
            address: address.to_owned(),
            source,
        };
        let mut request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nConnection: close\r\n",
            self.path, address
        );
        if let Some(token) = &self.token {
            request.push_str("Authorization: Bearer ");
            request.push_str(token.expose());
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.map_err(broken)?;
        let mut answer = Vec::new();
        let mut limited = (&mut stream).take(LARGEST_ANSWER as u64);
        // A TLS server may close without close_notify once the answer is sent: what arrived
        // is the answer, and a short one fails as not HTTP below.
        if let Err(error) = limited.read_to_end(&mut answer).await {
            if answer.is_empty() {
                return Err(broken(error));
            }
        }
        Ok(answer)
    }
}

/// Splits `host[:port]`, keeping an IPv6 host's brackets; none when the port is not a number.
fn split_host_port(authority: &str, default_port: u16) -> Option<(String, u16)> {
    let port_colon = if authority.starts_with('[') {
        authority
            .find(']')
            .and_then(|end| authority[end..].find(':').map(|colon| end + colon))
    } else {
        authority.rfind(':')
    };
    match port_colon {
        Some(colon) => {
            let port = authority[colon + 1..].parse().ok()?;
            Some((authority[..colon].to_owned(), port))
        }
        None => Some((authority.to_owned(), default_port)),
    }
}

/// The body of a 200 answer, de-chunked when sent in chunks; the error that says why otherwise.
fn body_of_ok(answer: &[u8]) -> Result<Vec<u8>, FetchError> {
    let head_end = answer
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or(FetchError::NotHttp("no end of headers"))?;
    let head = String::from_utf8_lossy(&answer[..head_end]);
    let body = &answer[head_end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(2, ' ');
    if !parts.next().unwrap_or_default().starts_with("HTTP/1.") {
        return Err(FetchError::NotHttp("no HTTP/1 status line"));
    }
    let status = parts.next().unwrap_or_default().trim();
    let chunked = lines.any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("transfer-encoding")
                && value.trim().eq_ignore_ascii_case("chunked")
        })
    });
    let body = if chunked {
        dechunk(body).ok_or(FetchError::NotHttp("a broken chunked body"))?
    } else {
        body.to_vec()
    };
    if status.starts_with("200") {
        Ok(body)
    } else if status.starts_with("401") {
        Err(FetchError::Unauthorized)
    } else {
        let body = String::from_utf8_lossy(&body);
        Err(FetchError::Status {
            status: status.to_owned(),
            body: body.chars().take(200).collect(),
        })
    }
}

/// Joins the chunks of a chunked body; none when a chunk's size or length is wrong.
fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|window| window == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_gives_host_port_and_path() {
        let source = StatusSource::new("http://example.org:8081/orderstore/", None, None)
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(source.host, "example.org");
        assert_eq!(source.port, 8081);
        assert_eq!(source.path, "/orderstore/status.json");
        let source =
            StatusSource::new("http://[::1]", None, None).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!((source.host.as_str(), source.port), ("[::1]", 80));
        assert!(StatusSource::new("ftp://x", None, None).is_err());
        assert!(StatusSource::new("http://x:port", None, None).is_err());
    }

    #[test]
    fn a_chunked_answer_is_joined_and_a_401_says_so() {
        let answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n2\r\n\":\r\n2\r\n1}\r\n0\r\n\r\n";
        let body = body_of_ok(answer).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(body, b"{\"a\":1}");
        let unauthorized = body_of_ok(b"HTTP/1.1 401 Unauthorized\r\n\r\n");
        assert!(matches!(unauthorized, Err(FetchError::Unauthorized)));
        let not_found = body_of_ok(b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope");
        assert!(
            matches!(&not_found, Err(FetchError::Status { status, body }) if status == "404 Not Found" && body == "nope")
        );
    }
}
