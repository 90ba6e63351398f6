//! TLS configurations from PEM files, for every peer orderstore talks to: the Kafka brokers and
//! PostgreSQL (orderstore as the client) and the HTTP API (orderstore as the server). rustls
//! with the ring provider, chosen explicitly so that no process-wide default is needed.
//!
//! Errors are one sentence naming the file and what is wrong with it; the settings put the
//! variable's name in front.

mod verifiers;

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// The certificates a client trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// The system's root certificates (`/etc/ssl/certs`, or `SSL_CERT_FILE`/`SSL_CERT_DIR`).
    System,
    /// The certificates of one PEM file.
    File(String),
}

/// How much of the server's certificate a client checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The chain up to a trusted root, and that the certificate names the host connected to.
    Full,
    /// The chain only (libpq's `verify-ca`).
    ChainOnly,
    /// Nothing: the connection is encrypted but the server is not authenticated (libpq's
    /// `prefer` and `require` without a root certificate).
    None,
}

/// A certificate chain and its private key: a client's (mutual TLS) or the HTTP server's.
#[derive(Debug)]
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Identity {
    /// A chain and its key.
    pub fn new(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Self {
        Self { chain, key }
    }

    /// Reads a chain from `cert_file` and its key from `key_file`.
    pub fn from_files(cert_file: &str, key_file: &str) -> Result<Identity, String> {
        Ok(Identity::new(
            read_certificates(cert_file)?,
            read_private_key(key_file)?,
        ))
    }
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn read_private_key(file: &str) -> Result<PrivateKeyDer<'static>, String> {
    if !Path::new(file).is_file() {
        return Err(format!("{file} does not exist or is not a file"));
    }
    PrivateKeyDer::from_pem_file(file)
        .map_err(|error| format!("{file} holds no readable PEM private key ({error})"))
}

/// The crypto provider of every configuration.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate of a PEM file; an error when there is none or the file cannot be read.
pub fn read_certificates(file: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    if !Path::new(file).is_file() {
        return Err(format!("{file} does not exist or is not a file"));
    }
    let certificates = CertificateDer::pem_file_iter(file)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|error| format!("{file} is not a readable PEM file ({error})"))?;
    if certificates.is_empty() {
        return Err(format!("{file} holds no PEM certificate"));
    }
    Ok(certificates)
}

/// The trusted roots.
fn root_store(roots: &Roots) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(file) => {
            let (_, unusable) = store.add_parsable_certificates(read_certificates(file)?);
            if store.is_empty() {
                return Err(format!(
                    "{file} holds {unusable} certificate(s), none usable as a root"
                ));
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err("no system root certificates were found (install the \
                            ca-certificates package, or name a CA file)"
                    .to_string());
            }
        }
    }
    Ok(store)
}

/// A client configuration: whom to trust, how much to check, and an optional client
/// certificate.
pub fn client_config(
    roots: &Roots,
    verification: Verification,
    identity: Option<Identity>,
) -> Result<Arc<ClientConfig>, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("no TLS version is available ({error})"))?;
    let builder = match verification {
        Verification::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifiers::Unverified::new(provider))),
        Verification::Full | Verification::ChainOnly => {
            let chain = WebPkiServerVerifier::builder_with_provider(
                Arc::new(root_store(roots)?),
                Arc::clone(&provider),
            )
            .build()
            .map_err(|error| format!("the root certificates cannot be used ({error})"))?;
            if verification == Verification::Full {
                builder.with_webpki_verifier(chain)
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(verifiers::ChainOnly::new(chain)))
            }
        }
    };
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(Identity { chain, key }) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|error| format!("the client certificate and key do not fit ({error})"))?,
    };
    Ok(Arc::new(config))
}

/// The HTTP server's configuration, with HTTP/1.1 offered by ALPN.
pub fn server_config(identity: Identity) -> Result<Arc<ServerConfig>, String> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("no TLS version is available ({error})"))?
        .with_no_client_auth()
        .with_single_cert(identity.chain, identity.key)
        .map_err(|error| format!("the certificate and key do not fit ({error})"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
