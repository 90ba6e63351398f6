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
    /// No channel binding: SCRAM then runs without it, as libpq's `channel_binding=prefer`
    /// does with a server that does not offer it.
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
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
