//! How orderstore proves itself to the brokers, with the words of Kafka's own clients:
//! `security.protocol` (`KAFKA_SECURITY_PROTOCOL`) and `sasl.mechanism`
//! (`KAFKA_SASL_MECHANISM`). TLS and SASL are rskafka's own (rustls; rsasl, which checks the
//! server's final SCRAM message, so a broker that answers a bad password with error code 0
//! still fails the login).

use std::sync::Arc;

use rskafka::client::{ClientBuilder, Credentials, SaslConfig};
use rustls::ClientConfig;

use crate::secret::Secret;

/// `KAFKA_SECURITY_PROTOCOL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    /// Neither TLS nor SASL (the default).
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL without TLS.
    SaslPlaintext,
    /// SASL over TLS: what managed Kafka services require.
    SaslSsl,
}

impl SecurityProtocol {
    /// Whether the connection is TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether the client logs in with SASL.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// `KAFKA_SASL_MECHANISM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    /// `PLAIN`: the password in the clear, so only over TLS in earnest.
    Plain,
    /// `SCRAM-SHA-256`.
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
}

impl SaslMechanism {
    /// The mechanism's name, as Kafka spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// A SASL login: the mechanism, the user and the password (which `Debug` hides).
#[derive(Debug, Clone)]
pub struct SaslLogin {
    /// The mechanism.
    pub mechanism: SaslMechanism,
    /// The user name.
    pub username: String,
    /// The password.
    pub password: Secret,
}

/// Everything about how the connection to the brokers is secured.
#[derive(Clone)]
pub struct KafkaSecurity {
    /// The protocol.
    pub protocol: SecurityProtocol,
    /// The login, with a `sasl_*` protocol.
    pub sasl: Option<SaslLogin>,
    /// The TLS configuration, with `ssl` and `sasl_ssl`.
    pub tls: Option<Arc<ClientConfig>>,
}

impl std::fmt::Debug for KafkaSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSecurity")
            .field("protocol", &self.protocol)
            .field("sasl", &self.sasl)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl KafkaSecurity {
    /// Neither TLS nor SASL.
    pub fn plaintext() -> Self {
        Self {
            protocol: SecurityProtocol::Plaintext,
            sasl: None,
            tls: None,
        }
    }

    /// `builder` with this TLS and SASL.
    pub fn apply(&self, mut builder: ClientBuilder) -> ClientBuilder {
        if let Some(tls) = &self.tls {
            builder = builder.tls_config(Arc::clone(tls));
        }
        if let Some(login) = &self.sasl {
            let credentials =
                Credentials::new(login.username.clone(), login.password.expose().to_string());
            builder = builder.sasl_config(match login.mechanism {
                SaslMechanism::Plain => SaslConfig::Plain(credentials),
                SaslMechanism::ScramSha256 => SaslConfig::ScramSha256(credentials),
                SaslMechanism::ScramSha512 => SaslConfig::ScramSha512(credentials),
            });
        }
        builder
    }

    /// What failed, in one phrase, for a connection error: the login, the TLS handshake, or
    /// reaching the brokers at all. rskafka flattens the errors of every broker it tried into
    /// one message, so the phrase is read from the message's words.
    pub fn failure_kind(&self, message: &str) -> String {
        let lower = message.to_ascii_lowercase();
        if let Some(login) = self.sasl.as_ref().filter(|_| lower.contains("sasl")) {
            return format!(
                "SASL authentication ({} as user {:?}) failed",
                login.mechanism.as_str(),
                login.username
            );
        }
        let tls_words = [
            "certificate",
            "tls",
            "handshake",
            "alert",
            "corrupt message",
        ];
        if self.protocol.uses_tls() && tls_words.iter().any(|word| lower.contains(word)) {
            return "the TLS handshake failed".to_string();
        }
        "the brokers could not be reached".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_told_apart_and_the_password_is_hidden() {
        let security = KafkaSecurity {
            protocol: SecurityProtocol::SaslPlaintext,
            sasl: Some(SaslLogin {
                mechanism: SaslMechanism::ScramSha512,
                username: "orders".to_string(),
                password: Secret::new("hunter2".to_string()),
            }),
            tls: None,
        };
        assert!(!format!("{security:?}").contains("hunter2"));
        let kind = security.failure_kind("Sasl handshake failed: Sasl session error: bad proof");
        assert_eq!(
            kind,
            "SASL authentication (SCRAM-SHA-512 as user \"orders\") failed"
        );
        let kind = security.failure_kind("IO Error: Connection refused (os error 111)");
        assert_eq!(kind, "the brokers could not be reached");
        let tls = KafkaSecurity {
            protocol: SecurityProtocol::Ssl,
            ..KafkaSecurity::plaintext()
        };
        let kind = tls.failure_kind("IO Error: invalid peer certificate: UnknownIssuer");
        assert_eq!(kind, "the TLS handshake failed");
    }
}
