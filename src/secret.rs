//! [`Secret`]: a value such as a password that must never be printed. A leaf of its own, so
//! that the settings and the clients that use a secret (Kafka's SASL login, PostgreSQL's
//! password) need not import each other.

use std::fmt;

/// A value that must never be printed, such as a password: `Debug` shows `"***"`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}
