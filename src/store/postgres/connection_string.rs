//! `DATABASE_URL` with libpq's TLS parameters: `sslmode` (`disable`, `prefer` (the default),
//! `require`, `verify-ca`, `verify-full`), `sslrootcert` (a PEM file, or `system`), `sslcert`
//! and `sslkey`. tokio-postgres knows only the first three modes and none of the files, so
//! these are taken out of the string here, and the rest is tokio-postgres's to parse. Both
//! forms libpq accepts work: `postgres://...?sslmode=verify-full` and `host=... sslmode=...`.
//!
//! An error never repeats the string: it may hold a password.

use std::path::PathBuf;

use super::tls::{PostgresTls, SslMode};
use crate::tls::{self, Identity, Roots, Verification};

/// The connection settings and the TLS they call for.
#[derive(Debug, Clone)]
pub struct ConnectionString {
    /// Everything tokio-postgres reads: hosts, user, password, database, `sslmode` mapped to
    /// its three modes.
    pub config: tokio_postgres::Config,
    /// The handshake of each connection.
    pub tls: PostgresTls,
}

/// libpq's TLS parameters, as found.
#[derive(Debug, Default)]
struct TlsParameters {
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    sslcert: Option<String>,
    sslkey: Option<String>,
}

impl TlsParameters {
    /// Takes `key`'s value if it is one of ours.
    fn take(&mut self, key: &str, value: &str) -> bool {
        let slot = match key {
            "sslmode" => &mut self.sslmode,
            "sslrootcert" => &mut self.sslrootcert,
            "sslcert" => &mut self.sslcert,
            "sslkey" => &mut self.sslkey,
            _ => return false,
        };
        *slot = Some(value.to_string());
        true
    }
}

/// Reads a connection string; the error says what is wrong without quoting it.
pub fn parse(value: &str) -> Result<ConnectionString, String> {
    let (rest, parameters) = split_tls_parameters(value)?;
    let mut config = rest
        .parse::<tokio_postgres::Config>()
        .ok()
        .filter(|config| config.get_dbname().is_some() && !config.get_hosts().is_empty())
        .ok_or("a URL such as postgres://user:password@host:5432/database")?;
    let mode = match parameters.sslmode.as_deref().unwrap_or("prefer") {
        "disable" => SslMode::Disable,
        "prefer" => SslMode::Prefer,
        "require" => SslMode::Require,
        "verify-ca" => SslMode::VerifyCa,
        "verify-full" => SslMode::VerifyFull,
        _ => {
            return Err("sslmode to be one of disable|prefer|require|verify-ca|verify-full".into())
        }
    };
    let roots = match parameters.sslrootcert.as_deref() {
        Some("system") => Some(Roots::System),
        Some(file) => {
            tls::read_certificates(file)
                .map_err(|error| format!("a usable sslrootcert: {error}"))?;
            Some(Roots::File(file.to_string()))
        }
        None => default_root_file().map(Roots::File),
    };
    let verification = match mode {
        SslMode::Disable | SslMode::Prefer => Verification::None,
        // libpq: `require` with a root certificate at hand checks as `verify-ca` does.
        SslMode::Require if roots.is_some() => Verification::ChainOnly,
        SslMode::Require => Verification::None,
        SslMode::VerifyCa => Verification::ChainOnly,
        SslMode::VerifyFull => Verification::Full,
    };
    let roots = match roots {
        Some(roots) => roots,
        None if verification == Verification::None => Roots::System,
        None => {
            return Err(format!(
                "sslrootcert (a CA file, or 'system') with sslmode={}: ~/.postgresql/root.crt \
                 does not exist either",
                mode.as_str()
            ))
        }
    };
    let identity = match (parameters.sslcert, parameters.sslkey) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(
            Identity::from_files(&cert, &key)
                .map_err(|error| format!("a usable sslcert and sslkey: {error}"))?,
        ),
        (Some(_), None) => return Err("sslkey with sslcert (the client certificate's key)".into()),
        (None, Some(_)) => return Err("sslcert with sslkey (the key's certificate)".into()),
    };
    let client = tls::client_config(&roots, verification, identity)
        .map_err(|error| format!("a usable TLS setup: {error}"))?;
    config.ssl_mode(match mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    Ok(ConnectionString {
        config,
        tls: PostgresTls::new(mode, client),
    })
}

/// libpq's default root certificate file, when it exists.
fn default_root_file() -> Option<String> {
    let file = PathBuf::from(std::env::var_os("HOME")?).join(".postgresql/root.crt");
    file.is_file().then(|| file.display().to_string())
}

/// The string without libpq's TLS parameters, and those parameters.
fn split_tls_parameters(value: &str) -> Result<(String, TlsParameters), String> {
    let mut parameters = TlsParameters::default();
    if value.starts_with("postgres://") || value.starts_with("postgresql://") {
        let Some((base, query)) = value.split_once('?') else {
            return Ok((value.to_string(), parameters));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = percent_decode(raw).ok_or("a URL with valid %-escapes")?;
            if !parameters.take(key, &decoded) {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rest, parameters));
    }
    // `key=value key='quoted value'`, as libpq writes it.
    let mut kept = Vec::new();
    let mut chars = value.trim().chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        let key = key.trim().to_string();
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '\'' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err("a connection string whose quotes are closed".into());
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                value.push(c);
            }
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if !parameters.take(&key, &value) {
            let escaped = value.replace('\\', "\\\\").replace('\'', "\\'");
            kept.push(format!("{key}='{escaped}'"));
        }
    }
    Ok((kept.join(" "), parameters))
}

/// `%XX` escapes decoded; `None` for a broken one.
fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = raw.get(index + 1..index + 3)?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(value: &str) -> Result<SslMode, String> {
        parse(value).map(|parsed| parsed.tls.mode())
    }

    #[test]
    fn the_default_is_prefer_as_in_libpq() {
        assert_eq!(mode_of("postgres://u:p@db/orders"), Ok(SslMode::Prefer));
        assert_eq!(mode_of("host=db dbname=orders user=u"), Ok(SslMode::Prefer));
    }

    #[test]
    fn tls_parameters_are_taken_out_and_the_rest_kept() {
        let parsed = parse("postgres://u:p@db:5433/orders?application_name=os&sslmode=disable")
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(parsed.tls.mode(), SslMode::Disable);
        assert_eq!(parsed.config.get_application_name(), Some("os"));
        assert_eq!(parsed.config.get_ports(), &[5433]);
        let parsed = parse(r"host=db dbname='my orders' password='it\'s' sslmode=require")
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(parsed.tls.mode(), SslMode::Require);
        assert_eq!(parsed.config.get_dbname(), Some("my orders"));
    }

    #[test]
    fn verifying_modes_need_a_root_certificate() {
        // HOME without .postgresql/root.crt.
        let error =
            parse("postgres://u:secret@db/orders?sslmode=verify-full&sslrootcert=/nonexistent.pem")
                .err()
                .unwrap_or_default();
        assert!(
            error.contains("sslrootcert") && error.contains("/nonexistent.pem"),
            "{error}"
        );
        assert!(!error.contains("secret"), "{error}");
        let system = parse("postgres://u:p@db/orders?sslmode=verify-full&sslrootcert=system");
        // The machine may have no root certificates; either way the answer is about them.
        if let Err(error) = system {
            assert!(error.contains("root certificates"), "{error}");
        }
    }

    #[test]
    fn a_certificate_needs_its_key() {
        let error = parse("postgres://u:p@db/orders?sslcert=/a.pem")
            .err()
            .unwrap_or_default();
        assert!(error.starts_with("sslkey"), "{error}");
        let error = parse("postgres://u:p@db/orders?sslkey=/a.key")
            .err()
            .unwrap_or_default();
        assert!(error.starts_with("sslcert"), "{error}");
    }

    #[test]
    fn bad_values_are_named_without_echoing_the_string() {
        for value in [
            "postgres://u:secret@db/orders?sslmode=sometimes",
            "postgres://u:secret@db/orders?sslmode=%zz",
            "host=db password='secret",
            "not a url secret",
        ] {
            let error = parse(value).err().unwrap_or_default();
            assert!(
                !error.is_empty() && !error.contains("secret"),
                "{value}: {error}"
            );
        }
    }
}
