//! One connection to a broker for the group mirror's requests, secured like the readers'
//! (`KAFKA_SECURITY_PROTOCOL`): TCP, then TLS with the same rustls configuration, then the
//! protocol versions (ApiVersions, allowed before a login), then the SASL login with the same mechanism and
//! credentials. rskafka does all of this for its own connections but lends none of them out,
//! so this is a second, small client; SCRAM's arithmetic is rsasl's, the crate rskafka uses,
//! which also checks the server's final message.
//!
//! Requests go one at a time: the mirror sends at most two a second.

use std::io::Cursor;
use std::sync::Arc;

use rsasl::prelude::{Mechname, SASLClient, SASLConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::messages;
use super::wire::{self, WireError};
use crate::kafka::security::KafkaSecurity;

/// The largest answer taken: the mirror's answers are a few bytes per partition.
const LARGEST_ANSWER: usize = 16 << 20;

/// The client id brokers see in their request logs and quotas.
const CLIENT_ID: &str = "orderstore-group-mirror";

/// Why a connection or a request failed. None of them carries the password.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The broker's address is not `host:port`.
    #[error("broker address {0:?} is not host:port")]
    BadAddress(String),
    /// TCP, or reading and writing on the connection.
    #[error("connection to {broker} failed: {source}")]
    Io {
        /// The broker.
        broker: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The TLS handshake.
    #[error("TLS handshake with {broker} failed: {source}")]
    Tls {
        /// The broker.
        broker: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The SASL login.
    #[error("SASL authentication ({mechanism} as user {user:?}) at {broker} failed: {reason}")]
    Sasl {
        /// The broker.
        broker: String,
        /// The mechanism.
        mechanism: &'static str,
        /// The user name.
        user: String,
        /// Why, in the broker's or rsasl's words.
        reason: String,
    },
    /// The broker speaks no version of a request that this client does.
    #[error("{broker} speaks no version of Kafka API {api_key} that orderstore can send (it needs {needs})")]
    NoCommonVersion {
        /// The broker.
        broker: String,
        /// The API.
        api_key: i16,
        /// The versions this client speaks.
        needs: String,
    },
    /// An answer that does not parse, or that answers another request.
    #[error("unreadable answer from {broker}: {reason}")]
    BadAnswer {
        /// The broker.
        broker: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Anything a connection can be carried on: TCP, or TLS over TCP.
trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

/// A connection ready for requests: secured, logged in, its versions known.
pub struct BrokerConnection {
    broker: String,
    stream: Box<dyn Transport>,
    next_correlation_id: i32,
    versions: wire::VersionRanges,
}

impl std::fmt::Debug for BrokerConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConnection")
            .field("broker", &self.broker)
            .finish_non_exhaustive()
    }
}

impl BrokerConnection {
    /// Connects to `broker` (`host:port`), secured by `security`.
    pub async fn open(broker: &str, security: &KafkaSecurity) -> Result<Self, ConnectionError> {
        let (host, _) = split_address(broker)?;
        let io = |source| ConnectionError::Io {
            broker: broker.to_string(),
            source,
        };
        let tcp = TcpStream::connect(broker).await.map_err(io)?;
        tcp.set_nodelay(true).map_err(io)?;
        let stream: Box<dyn Transport> =
            match &security.tls {
                Some(config) => {
                    let name = rustls::pki_types::ServerName::try_from(host.to_string())
                        .map_err(|_| ConnectionError::BadAddress(broker.to_string()))?;
                    let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
                    let tls = connector.connect(name, tcp).await.map_err(|source| {
                        ConnectionError::Tls {
                            broker: broker.to_string(),
                            source,
                        }
                    })?;
                    Box::new(tls)
                }
                None => Box::new(tcp),
            };
        let mut connection = Self {
            broker: broker.to_string(),
            stream,
            next_correlation_id: 0,
            versions: wire::VersionRanges::new(),
        };
        // Versions first, as Kafka's own clients do: SaslAuthenticate's version depends on them.
        connection.learn_versions().await?;
        if let Some(login) = &security.sasl {
            connection.log_in(login).await?;
        }
        Ok(connection)
    }

    /// The broker's address.
    pub fn broker(&self) -> &str {
        &self.broker
    }

    /// The version to send of `api_key`: the highest both sides speak.
    pub fn version(&self, api_key: i16) -> Result<i16, ConnectionError> {
        wire::pick_version(&self.versions, api_key).ok_or_else(|| {
            let (_, min, max) = wire::SPOKEN
                .iter()
                .find(|(key, _, _)| *key == api_key)
                .copied()
                .unwrap_or((api_key, 0, 0));
            ConnectionError::NoCommonVersion {
                broker: self.broker.clone(),
                api_key,
                needs: format!("v{min} to v{max}"),
            }
        })
    }

    /// Sends one request and returns its answer's body (after the response header).
    pub async fn request(
        &mut self,
        api_key: i16,
        version: i16,
        body: &[u8],
    ) -> Result<Vec<u8>, ConnectionError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let frame = wire::frame(api_key, version, correlation_id, CLIENT_ID, body);
        let broker = self.broker.clone();
        let io = |source| ConnectionError::Io {
            broker: broker.clone(),
            source,
        };
        self.stream.write_all(&frame).await.map_err(io)?;
        self.stream.flush().await.map_err(io)?;
        let size = self.stream.read_i32().await.map_err(io)?;
        let size = usize::try_from(size)
            .ok()
            .filter(|size| (4..=LARGEST_ANSWER).contains(size))
            .ok_or_else(|| self.bad_answer(format!("an answer of {size} bytes")))?;
        let mut answer = vec![0; size];
        self.stream.read_exact(&mut answer).await.map_err(io)?;
        let answered_id = wire::Reader::new(&answer)
            .i32("the response header")
            .map_err(|error| self.bad_answer(error.to_string()))?;
        if answered_id != correlation_id {
            return Err(self.bad_answer(format!(
                "correlation id {answered_id} for request {correlation_id}"
            )));
        }
        answer.drain(..4);
        Ok(answer)
    }

    /// An unreadable answer.
    pub fn bad_answer(&self, reason: impl Into<String>) -> ConnectionError {
        ConnectionError::BadAnswer {
            broker: self.broker.clone(),
            reason: reason.into(),
        }
    }

    /// A parse error of an answer.
    pub fn unreadable(&self, error: WireError) -> ConnectionError {
        self.bad_answer(error.to_string())
    }

    async fn learn_versions(&mut self) -> Result<(), ConnectionError> {
        let answer = self.request(wire::API_VERSIONS, 0, &[]).await?;
        let (error_code, versions) =
            messages::read_api_versions(&answer).map_err(|error| self.unreadable(error))?;
        if error_code != 0 {
            return Err(self.bad_answer(format!(
                "ApiVersions answered {}",
                wire::error_name(error_code)
            )));
        }
        self.versions = versions;
        Ok(())
    }

    async fn log_in(
        &mut self,
        login: &crate::kafka::security::SaslLogin,
    ) -> Result<(), ConnectionError> {
        let mechanism = login.mechanism.as_str();
        let failed = |broker: &str, reason: String| ConnectionError::Sasl {
            broker: broker.to_string(),
            mechanism,
            user: login.username.clone(),
            reason,
        };
        let answer = self
            .request(
                wire::SASL_HANDSHAKE,
                1,
                &messages::sasl_handshake(mechanism),
            )
            .await?;
        let (error_code, enabled) =
            messages::read_sasl_handshake(&answer).map_err(|error| self.unreadable(error))?;
        if error_code != 0 {
            return Err(failed(
                &self.broker,
                format!(
                    "the handshake answered {} (the broker enables {enabled:?})",
                    wire::error_name(error_code)
                ),
            ));
        }
        let config = SASLConfig::with_credentials(
            None,
            login.username.clone(),
            login.password.expose().to_string(),
        )
        .map_err(|error| failed(&self.broker, error.to_string()))?;
        let name = Mechname::parse(mechanism.as_bytes())
            .map_err(|error| failed(&self.broker, error.to_string()))?;
        let mut session = SASLClient::new(config)
            .start_suggested(&[name])
            .map_err(|error| failed(&self.broker, error.to_string()))?;
        // The client speaks first; each message goes in one SaslAuthenticate, whose answer is
        // the next input, until the mechanism says the exchange is complete.
        let mut received: Option<Vec<u8>> = None;
        loop {
            let mut to_send = Cursor::new(Vec::new());
            let state = session
                .step(received.as_deref(), &mut to_send)
                .map_err(|error| failed(&self.broker, error.to_string()))?;
            if state.has_sent_message() {
                let body = messages::sasl_authenticate(to_send.get_ref());
                let version = self.version(wire::SASL_AUTHENTICATE).unwrap_or(0);
                let answer = self
                    .request(wire::SASL_AUTHENTICATE, version, &body)
                    .await?;
                let answer = messages::read_sasl_authenticate(&answer)
                    .map_err(|error| self.unreadable(error))?;
                if answer.error_code != 0 {
                    return Err(failed(
                        &self.broker,
                        answer
                            .error_message
                            .unwrap_or_else(|| wire::error_name(answer.error_code)),
                    ));
                }
                received = Some(answer.auth_bytes);
            }
            if state.is_finished() {
                return Ok(());
            }
        }
    }
}

/// `host:port` split in two; the host of `[::1]:9092` is `::1`.
fn split_address(broker: &str) -> Result<(&str, u16), ConnectionError> {
    let bad = || ConnectionError::BadAddress(broker.to_string());
    let (host, port) = broker.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_into_host_and_port() {
        assert_eq!(split_address("kafka:9092").ok(), Some(("kafka", 9092)));
        assert_eq!(split_address("[::1]:9093").ok(), Some(("::1", 9093)));
        assert!(split_address("kafka").is_err());
        assert!(split_address(":9092").is_err());
        assert!(split_address("kafka:port").is_err());
    }
}
