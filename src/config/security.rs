//! The security settings: how orderstore reaches Kafka (`KAFKA_SECURITY_PROTOCOL` and its
//! SASL and TLS variables) and how its HTTP API is locked (`HTTP_AUTH_TOKENS`) and served
//! (`HTTP_TLS_*`). Files are read here, so a missing or broken one stops start-up with its
//! variable's name; a setting that would be ignored (a SASL user without a SASL protocol)
//! is a problem too, rather than a silent plaintext connection.

use std::sync::Arc;

use rustls::ServerConfig;

use super::variables::VariableReader;
use super::Secret;
use crate::http::auth::HttpAuth;
use crate::kafka::security::{KafkaSecurity, SaslLogin, SaslMechanism, SecurityProtocol};
use crate::tls::{self, Identity, Roots, Verification};

/// `KAFKA_SECURITY_PROTOCOL` and what goes with it.
pub(super) fn kafka_security(reader: &mut VariableReader<'_>) -> KafkaSecurity {
    let protocol = reader.choice(
        "KAFKA_SECURITY_PROTOCOL",
        "plaintext",
        &[
            ("plaintext", SecurityProtocol::Plaintext),
            ("ssl", SecurityProtocol::Ssl),
            ("sasl_plaintext", SecurityProtocol::SaslPlaintext),
            ("sasl_ssl", SecurityProtocol::SaslSsl),
        ],
    );
    let protocol_word = format!("{protocol:?}").to_ascii_lowercase();
    let sasl_names = [
        "KAFKA_SASL_MECHANISM",
        "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD",
    ];
    let [mechanism, username, password] = sasl_names.map(|name| reader.raw(name));
    let sasl = if protocol.uses_sasl() {
        let mechanism = match mechanism.as_deref().map(str::to_ascii_uppercase).as_deref() {
            Some("PLAIN") => Some(SaslMechanism::Plain),
            Some("SCRAM-SHA-256") => Some(SaslMechanism::ScramSha256),
            Some("SCRAM-SHA-512") => Some(SaslMechanism::ScramSha512),
            _ => {
                reader.problem(
                    "KAFKA_SASL_MECHANISM",
                    "PLAIN|SCRAM-SHA-256|SCRAM-SHA-512 with a sasl_* KAFKA_SECURITY_PROTOCOL",
                );
                None
            }
        };
        if username.is_none() {
            reader.problem("KAFKA_SASL_USERNAME", "a user name with a sasl_* protocol");
        }
        if password.is_none() {
            reader.problem("KAFKA_SASL_PASSWORD", "a password with a sasl_* protocol");
        }
        match (mechanism, username, password) {
            (Some(mechanism), Some(username), Some(password)) => Some(SaslLogin {
                mechanism,
                username,
                password: Secret::new(password),
            }),
            _ => None,
        }
    } else {
        for (name, value) in sasl_names.iter().zip([mechanism, username, password]) {
            if value.is_some() {
                reader.problem(
                    name,
                    &format!(
                        "to be set only with KAFKA_SECURITY_PROTOCOL=sasl_plaintext or \
                         sasl_ssl, not {protocol_word}"
                    ),
                );
            }
        }
        None
    };

    let tls_names = [
        "KAFKA_TLS_CA_FILE",
        "KAFKA_TLS_CERT_FILE",
        "KAFKA_TLS_KEY_FILE",
    ];
    if !protocol.uses_tls() {
        for name in tls_names {
            if reader.raw(name).is_some() {
                reader.problem(
                    name,
                    &format!(
                        "to be set only with KAFKA_SECURITY_PROTOCOL=ssl or sasl_ssl, not \
                         {protocol_word}"
                    ),
                );
            }
        }
        return KafkaSecurity {
            protocol,
            sasl,
            tls: None,
        };
    }
    let roots = reader
        .file("KAFKA_TLS_CA_FILE", |file| {
            tls::read_certificates(file).map(|_| Roots::File(file.to_string()))
        })
        .unwrap_or(Roots::System);
    let identity = identity(reader, "KAFKA_TLS_CERT_FILE", "KAFKA_TLS_KEY_FILE");
    let has_identity = identity.is_some();
    let tls = match tls::client_config(&roots, Verification::Full, identity) {
        Ok(config) => Some(config),
        Err(error) => {
            let name = if has_identity && error.starts_with("the client certificate") {
                "KAFKA_TLS_KEY_FILE"
            } else {
                "KAFKA_TLS_CA_FILE"
            };
            reader.problem(name, &format!("a usable TLS setup: {error}"));
            None
        }
    };
    KafkaSecurity {
        protocol,
        sasl,
        tls,
    }
}

/// A certificate and key pair named by two variables: both or neither.
fn identity(reader: &mut VariableReader<'_>, cert_name: &str, key_name: &str) -> Option<Identity> {
    let chain = reader.file(cert_name, tls::read_certificates);
    let key = reader.file(key_name, tls::read_private_key);
    let cert_set = reader.raw(cert_name).is_some();
    let key_set = reader.raw(key_name).is_some();
    if cert_set && !key_set {
        reader.problem(key_name, &format!("the private key of {cert_name}"));
    }
    if key_set && !cert_set {
        reader.problem(cert_name, &format!("the certificate of {key_name}"));
    }
    Some(Identity::new(chain?, key?))
}

/// `HTTP_AUTH_TOKENS`: comma-separated; empty leaves the API open.
pub(super) fn http_auth(reader: &mut VariableReader<'_>) -> HttpAuth {
    let Some(value) = reader.raw("HTTP_AUTH_TOKENS") else {
        return HttpAuth::default();
    };
    let tokens = value
        .split(',')
        .map(str::trim)
        .filter(|token| !token.is_empty());
    HttpAuth::new(tokens).unwrap_or_else(|error| {
        reader.problem(
            "HTTP_AUTH_TOKENS",
            &format!("comma-separated bearer tokens: {error}"),
        );
        HttpAuth::default()
    })
}

/// `HTTP_TLS_CERT_FILE` and `HTTP_TLS_KEY_FILE`: HTTPS when both are set.
pub(super) fn http_tls(reader: &mut VariableReader<'_>) -> Option<Arc<ServerConfig>> {
    let identity = identity(reader, "HTTP_TLS_CERT_FILE", "HTTP_TLS_KEY_FILE")?;
    tls::server_config(identity)
        .map_err(|error| reader.problem("HTTP_TLS_KEY_FILE", &format!("a usable key: {error}")))
        .ok()
}
