//! The order contract (`docs/order-spec.md`): raw Kafka bytes become a [`ValidOrder`] here or a
//! [`Rejection`] that names the field path and the rule it broke.
//!
//! Parsing happens in two steps. serde turns the bytes into an [`UncheckedOrder`]
//! (`document.rs`), which already enforces the envelope: an object, every field present, no
//! field unknown or named twice, no `null`, every number a JSON integer that fits in `i64`.
//! Then `UncheckedOrder::check` (`rules.rs`) applies the field rules one by one. Code past
//! [`ValidOrder::parse`] can only hold orders that passed both. `served_json.rs` writes a valid
//! order in the form it is stored and served in.

mod document;
mod rejection;
mod rules;
pub mod served_json;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use chrono::{DateTime, Utc};

pub use document::{Delivery, Item, Payment, Text, UncheckedOrder};
pub use rejection::{kind_of_rule, Rejection};
pub use rules::{is_order_uid, MAX_FUTURE_SKEW, MAX_ITEMS, MAX_KEY_CHARS};

/// An order that satisfies the contract, with the JSON form it is stored and served in.
///
/// The JSON is the producer's order, equal field for field to what was sent, in its served
/// form (compact, the contract's field order; see [`served_json`]): the same bytes whether the
/// order is served after ingestion or read back from PostgreSQL.
#[derive(Debug, Clone)]
pub struct ValidOrder {
    order_uid: Box<str>,
    date_created: DateTime<Utc>,
    json: Bytes,
}

impl ValidOrder {
    /// Parses and checks one Kafka record value against the contract.
    ///
    /// `now` is the time the future-date rule is measured from; `max_bytes` is the largest
    /// record accepted, checked before any parsing.
    pub fn parse(
        raw: &[u8],
        now: DateTime<Utc>,
        max_bytes: usize,
    ) -> Result<ValidOrder, Rejection> {
        if raw.len() > max_bytes {
            return Err(Rejection::new(
                ".",
                format!(
                    "record is larger than the maximum of {max_bytes} bytes ({} bytes)",
                    raw.len()
                ),
            ));
        }
        if raw.is_empty() {
            return Err(Rejection::new(".", "empty record: expected a JSON object"));
        }
        let text = std::str::from_utf8(raw).map_err(|error| {
            Rejection::new(
                ".",
                format!("not valid UTF-8 at byte {}", error.valid_up_to()),
            )
        })?;
        let doc = UncheckedOrder::from_json(text)?;
        let date_created = doc.check(now)?;
        let mut json = String::with_capacity(raw.len() + raw.len() / 4);
        served_json::write_order(&doc, &mut json);
        Ok(ValidOrder {
            order_uid: doc.order_uid.as_ref().into(),
            date_created,
            json: Bytes::from(json),
        })
    }

    /// The order's unique key.
    pub fn order_uid(&self) -> &str {
        &self.order_uid
    }

    /// When the producer says the order was created; the sweeper's age is measured from it.
    pub fn date_created(&self) -> DateTime<Utc> {
        self.date_created
    }

    /// The order in its served form (compact JSON in the contract's field order), ready to
    /// store and to serve.
    pub fn json(&self) -> &Bytes {
        &self.json
    }
}
