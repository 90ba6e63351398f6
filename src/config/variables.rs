//! Reading one variable at a time, each checked against what it may hold, every problem
//! collected instead of stopping at the first.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use crate::store::postgres::connection_string::{self, ConnectionString};

/// Reads and checks one variable at a time, collecting every problem instead of stopping at
/// the first.
pub(super) struct VariableReader<'a> {
    pub(super) lookup: &'a dyn Fn(&str) -> Option<String>,
    pub(super) problems: Vec<String>,
}

impl VariableReader<'_> {
    pub(super) fn problem(&mut self, name: &str, expected: &str) {
        let line = format!("{name}: expected {expected}");
        if !self.problems.contains(&line) {
            self.problems.push(line);
        }
    }

    pub(super) fn raw(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|value| value.trim().to_string())
            .filter(|value| !value.is_empty())
    }

    pub(super) fn get(&self, name: &str, default: &str) -> String {
        self.raw(name).unwrap_or_else(|| default.to_string())
    }

    /// Like [`Self::get`], except that a variable set to the empty string is read as empty,
    /// not as unset: for a setting whose default is on and which empty turns off.
    pub(super) fn get_or_empty(&self, name: &str, default: &str) -> String {
        (self.lookup)(name)
            .map(|value| value.trim().to_string())
            .unwrap_or_else(|| default.to_string())
    }

    pub(super) fn address(&mut self, name: &str, default: SocketAddr) -> SocketAddr {
        let value = self.get(name, &default.to_string());
        value.parse().unwrap_or_else(|_| {
            self.problem(
                name,
                &format!("an address such as {default}, got {value:?}"),
            );
            default
        })
    }

    pub(super) fn number<T>(
        &mut self,
        name: &str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> T
    where
        T: FromStr + PartialOrd + Copy + fmt::Display,
    {
        let Some(value) = self.raw(name) else {
            return default;
        };
        match value.parse::<T>() {
            Ok(number) if range.contains(&number) => number,
            _ => {
                self.problem(
                    name,
                    &format!(
                        "an integer from {} to {}, got {value:?}",
                        range.start(),
                        range.end()
                    ),
                );
                default
            }
        }
    }

    pub(super) fn fraction(
        &mut self,
        name: &str,
        default: f64,
        range: std::ops::RangeInclusive<f64>,
    ) -> f64 {
        let Some(value) = self.raw(name) else {
            return default;
        };
        match value.parse::<f64>() {
            Ok(number) if range.contains(&number) => number,
            _ => {
                self.problem(
                    name,
                    &format!(
                        "a number from {} to {}, got {value:?}",
                        range.start(),
                        range.end()
                    ),
                );
                default
            }
        }
    }

    pub(super) fn choice<T: Copy>(
        &mut self,
        name: &str,
        default: &str,
        choices: &[(&str, T)],
    ) -> T {
        let value = self.get(name, default).to_ascii_lowercase();
        match choices.iter().find(|(word, _)| *word == value) {
            Some((_, choice)) => *choice,
            None => {
                let words: Vec<&str> = choices.iter().map(|(word, _)| *word).collect();
                self.problem(name, &format!("one of {}, got {value:?}", words.join("|")));
                choices[0].1
            }
        }
    }

    pub(super) fn duration(&mut self, name: &str, default: &str, zero_allowed: bool) -> Duration {
        let value = self.get(name, default);
        let parsed = if value == "0" {
            Ok(Duration::ZERO)
        } else {
            humantime::parse_duration(&value)
        };
        match parsed {
            Ok(duration) if zero_allowed || !duration.is_zero() => duration,
            _ => {
                let zero = if zero_allowed {
                    " (0 turns it off)"
                } else {
                    ""
                };
                self.problem(
                    name,
                    &format!(
                        "a duration such as 500ms, 10s, 15m, 24h or 30days{zero}, got {value:?}"
                    ),
                );
                Duration::from_secs(1)
            }
        }
    }

    /// `INSTANCE_ID`: 1 to 64 ASCII letters, digits, '.', '_' or '-'; unset is `None`.
    pub(super) fn instance_id(&mut self) -> Option<String> {
        let value = self.raw("INSTANCE_ID")?;
        let valid = value.len() <= 64
            && value
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"._-".contains(&byte));
        if !valid {
            self.problem(
                "INSTANCE_ID",
                &format!("1 to 64 ASCII letters, digits, '.', '_' or '-', got {value:?}"),
            );
        }
        valid.then_some(value)
    }

    /// `DATABASE_URL`, with libpq's TLS parameters.
    pub(super) fn database_url(&mut self) -> ConnectionString {
        let value = self.get(
            "DATABASE_URL",
            "postgres://orderstore:orderstore@localhost:5432/orderstore",
        );
        match connection_string::parse(&value) {
            Ok(parsed) => parsed,
            Err(expected) => {
                // The value may hold a password, so it is not echoed.
                self.problem("DATABASE_URL", &expected);
                ConnectionString {
                    config: tokio_postgres::Config::new(),
                    tls: crate::store::postgres::PostgresTls::prefer(),
                }
            }
        }
    }

    /// A file named by `name`, if set, read by `load`; a problem names the variable.
    pub(super) fn file<T>(
        &mut self,
        name: &str,
        load: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let path = self.raw(name)?;
        match load(&path) {
            Ok(loaded) => Some(loaded),
            Err(error) => {
                self.problem(name, &format!("a usable file: {error}"));
                None
            }
        }
    }
}
