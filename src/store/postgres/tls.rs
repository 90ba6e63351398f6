//! TLS for every PostgreSQL connection (ingest, HTTP reads, restore: they share one pool),
//! through rustls. tokio-postgres negotiates TLS as `sslmode` says and hands the socket to
//! [`PostgresTls`] for the handshake; how much of the server's certificate is checked was
//! settled when the settings were read (`connection_string.rs`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_rustls::TlsConnector;

/// libpq's `sslmode`, as named in `DATABASE_URL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, without checking its certificate (libpq's default).
    Prefer,
    /// TLS always, without checking the certificate (unless `sslrootcert` is given, which
    /// makes it `verify-ca`, as in libpq).
    Require,
    /// TLS always, the certificate's chain checked against `sslrootcert`.
    VerifyCa,
    /// TLS always, the chain checked and the certificate naming the host.
    VerifyFull,
}

impl SslMode {
    /// The word `DATABASE_URL` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Makes the TLS session of each new connection.
#[derive(Clone)]
pub struct PostgresTls {
    mode: SslMode,
    config: Arc<ClientConfig>,
}

impl std::fmt::Debug for PostgresTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.mode.as_str())
    }
}

impl PostgresTls {
    /// Sessions in `mode`, made with `config`.
    pub fn new(mode: SslMode, config: Arc<ClientConfig>) -> Self {
        Self { mode, config }
    }

    /// libpq's default, `prefer`, without a root certificate: TLS when the server offers it,
    /// unverified.
    pub fn prefer() -> Self {
        let config = crate::tls::client_config(
            &crate::tls::Roots::System,
            crate::tls::Verification::None,
            None,
        )
        .unwrap_or_else(|error| unreachable!("an unverified configuration always builds: {error}"));
        Self::new(SslMode::Prefer, config)
    }

    /// The `sslmode` in force.
    pub fn mode(&self) -> SslMode {
        self.mode
    }
}

impl<S> MakeTlsConnect<S> for PostgresTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PostgresTlsStream<S>;
    type TlsConnect = PostgresTlsConnect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, host: &str) -> Result<PostgresTlsConnect, Self::Error> {
        Ok(PostgresTlsConnect {
            connector: TlsConnector::from(Arc::clone(&self.config)),
            server_name: ServerName::try_from(host.to_string())?,
        })
    }
}

/// One connection's handshake.
pub struct PostgresTlsConnect {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl<S> TlsConnect<S> for PostgresTlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PostgresTlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<PostgresTlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let stream = self.connector.connect(self.server_name, stream).await?;
            Ok(PostgresTlsStream(stream))
        })
    }
}

/// A connection's TLS session.
pub struct PostgresTlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S> tokio_postgres::tls::TlsStream for PostgresTlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// `tls-server-end-point` (RFC 5929), as libpq sends it: the hash of the server's
    /// certificate, so SCRAM-SHA-256-PLUS ties the password exchange to this TLS session and a
    /// machine in the middle cannot relay it. None for a certificate whose signature names no
    /// hash (Ed25519): SCRAM then runs without binding, as libpq's `channel_binding=prefer`.
    fn channel_binding(&self) -> ChannelBinding {
        let certificate = self
            .0
            .get_ref()
            .1
            .peer_certificates()
            .and_then(<[_]>::first);
        match certificate.and_then(|certificate| end_point_hash(certificate.as_ref())) {
            Some(hash) => ChannelBinding::tls_server_end_point(hash),
            None => ChannelBinding::none(),
        }
    }
}

/// The certificate's hash for `tls-server-end-point`: by the hash of its signature algorithm,
/// with SHA-256 for MD5 and SHA-1 (RFC 5929, section 4.1).
fn end_point_hash(certificate: &[u8]) -> Option<Vec<u8>> {
    use ring::digest::{digest, SHA256, SHA384, SHA512};
    let algorithm = match signature_algorithm(certificate)? {
        // sha1WithRSA, md5WithRSA, sha256WithRSA, ecdsa-with-SHA1, ecdsa-with-SHA256, RSASSA-PSS
        // (whose parameters PostgreSQL reads as SHA-256 too).
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04 | 0x05 | 0x0b | 0x0a]
        | [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01]
        | [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02] => &SHA256,
        // sha384WithRSA, ecdsa-with-SHA384.
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c]
        | [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03] => &SHA384,
        // sha512WithRSA, ecdsa-with-SHA512.
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d]
        | [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04] => &SHA512,
        _ => return None,
    };
    Some(digest(algorithm, certificate).as_ref().to_vec())
}

/// The OID of a DER certificate's `signatureAlgorithm`: `Certificate ::= SEQUENCE {
/// tbsCertificate, signatureAlgorithm AlgorithmIdentifier, signature }`.
fn signature_algorithm(certificate: &[u8]) -> Option<&[u8]> {
    let (tag, certificate, _) = der_element(certificate)?;
    if tag != 0x30 {
        return None;
    }
    let (_, _, after_tbs) = der_element(certificate)?;
    let (tag, algorithm, _) = der_element(after_tbs)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, oid, _) = der_element(algorithm)?;
    (tag == 0x06).then_some(oid)
}

/// One DER element: its tag, its contents, and what follows it.
fn der_element(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n_bytes = usize::from(first & 0x7f);
        if n_bytes == 0 || n_bytes > 4 || rest.len() < n_bytes {
            return None;
        }
        let (length_bytes, rest) = rest.split_at(n_bytes);
        let length = length_bytes
            .iter()
            .fold(0usize, |length, byte| (length << 8) | usize::from(*byte));
        (length, rest)
    };
    (rest.len() >= length).then(|| (tag, &rest[..length], &rest[length..]))
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for PostgresTlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for PostgresTlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_algorithm_is_read_from_the_certificate() {
        // SEQUENCE { SEQUENCE { INTEGER 1 }, SEQUENCE { OID ecdsa-with-SHA384 }, BIT STRING }
        let certificate = [
            0x30, 0x14, 0x30, 0x03, 0x02, 0x01, 0x01, 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48,
            0xce, 0x3d, 0x04, 0x03, 0x03, 0x03, 0x01, 0x00,
        ];
        assert_eq!(
            signature_algorithm(&certificate),
            Some(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03][..])
        );
        assert_eq!(
            end_point_hash(&certificate).map(|hash| hash.len()),
            Some(48)
        );
        assert_eq!(signature_algorithm(&certificate[..10]), None);
        assert_eq!(end_point_hash(&[0x30, 0x00]), None);
    }
}
