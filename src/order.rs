//! The order contract (`shared/docs/order-spec.md`): raw Kafka bytes become an [`Order`] here or
//! a [`Rejection`] that names the field path and the rule it broke.
//!
//! Parsing happens in two steps. serde turns the bytes into typed documents, which already
//! enforces the envelope: an object, every field present, no field unknown or named twice, no
//! `null`, every number a JSON integer that fits in `i64`. Then `OrderDoc::check` applies the
//! field rules one by one. Code past [`Order::parse`] can only hold orders that passed both.

use std::fmt;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How far in the future `date_created` may lie, to allow for clock skew between producers.
pub const MAX_FUTURE_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// Most items an order may carry.
pub const MAX_ITEMS: usize = 1000;

/// Longest `order_uid` and `track_number`, in characters.
pub const MAX_KEY_CHARS: usize = 64;

/// Why a record is not an order: the field path (`.` for the record itself) and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Path of the offending field, such as `items[0].total_price`.
    pub path: String,
    /// The rule that was broken, in words.
    pub rule: String,
}

impl Rejection {
    fn new(path: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            rule: rule.into(),
        }
    }

    /// A short, stable name for the kind of rejection, used to count rejections by reason
    /// with a bounded set of labels.
    pub fn kind(&self) -> &'static str {
        let rule = self.rule.as_str();
        let kinds = [
            ("record is larger", "too_large"),
            ("empty record", "empty"),
            ("not valid UTF-8", "not_utf8"),
            ("missing field", "missing_field"),
            ("unknown field", "unknown_field"),
            ("duplicate field", "duplicate_field"),
            ("invalid type", "wrong_type"),
            ("invalid value", "wrong_type"),
            ("invalid length", "wrong_type"),
            ("trailing", "not_json"),
        ];
        if let Some((_, kind)) = kinds.iter().find(|(start, _)| rule.starts_with(start)) {
            return kind;
        }
        if rule.contains(" at line ") {
            "not_json"
        } else {
            "field_rule"
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.rule)
    }
}

impl std::error::Error for Rejection {}

/// An order that satisfies the contract, with the JSON form it is stored and served in.
///
/// The JSON is the producer's order, equal field for field to what was sent, in the text form
/// PostgreSQL prints `jsonb` in (see [`crate::jsonb`]): the same bytes whether the order is
/// served after ingestion or read back from PostgreSQL.
#[derive(Debug, Clone)]
pub struct Order {
    order_uid: Box<str>,
    date_created: DateTime<Utc>,
    json: Bytes,
}

impl Order {
    /// Parses and checks one Kafka record value against the contract.
    ///
    /// `now` is the time the future-date rule is measured from; `max_bytes` is the largest
    /// record accepted, checked before any parsing.
    pub fn parse(raw: &[u8], now: DateTime<Utc>, max_bytes: usize) -> Result<Order, Rejection> {
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
        let doc = OrderDoc::from_json(text)?;
        let date_created = doc.check(now)?;
        let mut json = String::with_capacity(raw.len() + raw.len() / 4);
        crate::jsonb::write_order(&doc, &mut json);
        Ok(Order {
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

    /// The order as compact JSON, ready to store and to serve.
    pub fn json(&self) -> &Bytes {
        &self.json
    }
}

/// Text of an order field: borrowed from the record when it holds no escapes, as almost all
/// do, so that parsing an order allocates for its lists, not for each of its thirty strings.
pub type Text<'a> = std::borrow::Cow<'a, str>;

/// The order document exactly as the contract names it, borrowing its text from the record it
/// is parsed from.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderDoc<'a> {
    #[serde(borrow)]
    pub order_uid: Text<'a>,
    #[serde(borrow)]
    pub track_number: Text<'a>,
    #[serde(borrow)]
    pub entry: Text<'a>,
    #[serde(borrow, deserialize_with = "object")]
    pub delivery: Delivery<'a>,
    #[serde(borrow, deserialize_with = "object")]
    pub payment: Payment<'a>,
    #[serde(borrow, deserialize_with = "list_of_objects")]
    pub items: Vec<Item<'a>>,
    #[serde(borrow)]
    pub locale: Text<'a>,
    #[serde(borrow)]
    pub internal_signature: Text<'a>,
    #[serde(borrow)]
    pub customer_id: Text<'a>,
    #[serde(borrow)]
    pub delivery_service: Text<'a>,
    #[serde(borrow)]
    pub shardkey: Text<'a>,
    pub sm_id: i64,
    #[serde(borrow)]
    pub date_created: Text<'a>,
    #[serde(borrow)]
    pub oof_shard: Text<'a>,
}

#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery<'a> {
    #[serde(borrow)]
    pub name: Text<'a>,
    #[serde(borrow)]
    pub phone: Text<'a>,
    #[serde(borrow)]
    pub zip: Text<'a>,
    #[serde(borrow)]
    pub city: Text<'a>,
    #[serde(borrow)]
    pub address: Text<'a>,
    #[serde(borrow)]
    pub region: Text<'a>,
    #[serde(borrow)]
    pub email: Text<'a>,
}

#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payment<'a> {
    #[serde(borrow)]
    pub transaction: Text<'a>,
    #[serde(borrow)]
    pub request_id: Text<'a>,
    #[serde(borrow)]
    pub currency: Text<'a>,
    #[serde(borrow)]
    pub provider: Text<'a>,
    pub amount: i64,
    pub payment_dt: i64,
    #[serde(borrow)]
    pub bank: Text<'a>,
    pub delivery_cost: i64,
    pub goods_total: i64,
    pub custom_fee: i64,
}

#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item<'a> {
    pub chrt_id: i64,
    #[serde(borrow)]
    pub track_number: Text<'a>,
    pub price: i64,
    #[serde(borrow)]
    pub rid: Text<'a>,
    #[serde(borrow)]
    pub name: Text<'a>,
    pub sale: i64,
    #[serde(borrow)]
    pub size: Text<'a>,
    pub total_price: i64,
    pub nm_id: i64,
    #[serde(borrow)]
    pub brand: Text<'a>,
    pub status: i64,
}

impl<'a> OrderDoc<'a> {
    fn from_json(text: &'a str) -> Result<OrderDoc<'a>, Rejection> {
        // Most records are valid: parse without tracking paths, which costs time on every
        // field, and parse again with it only to explain a rejection.
        if let Ok(Object(doc)) = serde_json::from_str::<Object<OrderDoc>>(text) {
            return Ok(doc);
        }
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let doc: OrderDoc<'a> = serde_path_to_error::deserialize(&mut deserializer)
            .map(|Object(doc)| doc)
            .map_err(|error| {
                let message = error.inner().to_string();
                // `?` marks a key serde had not read yet when the text broke off.
                let path = error.path().to_string();
                let path = path.trim_end_matches(".?").trim_end_matches('?');
                let path = if path.is_empty() { "." } else { path };
                Rejection::new(
                    path_with_named_field(path, &message),
                    shorten_serde_message(&message),
                )
            })?;
        deserializer
            .end()
            .map_err(|error| Rejection::new(".", format!("trailing characters: {error}")))?;
        Ok(doc)
    }

    /// Applies every field rule of the contract; returns the parsed `date_created`.
    fn check(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>, Rejection> {
        let mut rules = Checker::default();
        rules.key("order_uid", &self.order_uid, true);
        rules.key("track_number", &self.track_number, false);
        rules.not_blank("entry", &self.entry);

        let delivery = &self.delivery;
        rules.not_blank("delivery.name", &delivery.name);
        rules.phone("delivery.phone", &delivery.phone);
        rules.not_blank("delivery.zip", &delivery.zip);
        rules.not_blank("delivery.city", &delivery.city);
        rules.not_blank("delivery.address", &delivery.address);
        rules.not_blank("delivery.region", &delivery.region);
        rules.email("delivery.email", &delivery.email);

        let payment = &self.payment;
        rules.not_blank("payment.transaction", &payment.transaction);
        rules.no_nul("payment.request_id", &payment.request_id);
        rules.currency("payment.currency", &payment.currency);
        rules.not_blank("payment.provider", &payment.provider);
        rules.at_least("payment.amount", payment.amount, 0);
        rules.at_least("payment.payment_dt", payment.payment_dt, 1);
        rules.not_blank("payment.bank", &payment.bank);
        rules.at_least("payment.delivery_cost", payment.delivery_cost, 0);
        rules.at_least("payment.goods_total", payment.goods_total, 0);
        rules.at_least("payment.custom_fee", payment.custom_fee, 0);

        if self.items.is_empty() || self.items.len() > MAX_ITEMS {
            rules.fail(
                "items",
                format!(
                    "must hold 1 to {MAX_ITEMS} items, holds {}",
                    self.items.len()
                ),
            );
        }
        let mut goods_total: i128 = 0;
        for (index, item) in self.items.iter().enumerate() {
            if rules.failed() {
                break;
            }
            let path = |field| ItemPath { index, field };
            rules.at_least(path("chrt_id"), item.chrt_id, 1);
            if item.track_number != self.track_number {
                rules.fail(path("track_number"), "must equal the order's track_number");
            }
            rules.at_least(path("price"), item.price, 0);
            rules.not_blank(path("rid"), &item.rid);
            rules.not_blank(path("name"), &item.name);
            if !(0..=100).contains(&item.sale) {
                rules.fail(
                    path("sale"),
                    format!("must be 0 to 100 (a percent), is {}", item.sale),
                );
            }
            rules.not_blank(path("size"), &item.size);
            if !rules.failed() {
                let expected = i128::from(item.price) * i128::from(100 - item.sale) / 100;
                if i128::from(item.total_price) != expected {
                    rules.fail(
                        path("total_price"),
                        format!(
                            "must equal price * (100 - sale) / 100 = {expected}, is {}",
                            item.total_price
                        ),
                    );
                }
            }
            rules.at_least(path("nm_id"), item.nm_id, 1);
            rules.not_blank(path("brand"), &item.brand);
            rules.at_least(path("status"), item.status, 0);
            goods_total += i128::from(item.total_price);
        }
        if !rules.failed() && i128::from(payment.goods_total) != goods_total {
            rules.fail(
                "payment.goods_total",
                format!(
                    "must equal the sum of items[].total_price = {goods_total}, is {}",
                    payment.goods_total
                ),
            );
        }
        if !rules.failed() {
            let expected = i128::from(payment.goods_total)
                + i128::from(payment.delivery_cost)
                + i128::from(payment.custom_fee);
            if i128::from(payment.amount) != expected {
                rules.fail(
                    "payment.amount",
                    format!(
                        "must equal goods_total + delivery_cost + custom_fee = {expected}, is {}",
                        payment.amount
                    ),
                );
            }
        }

        rules.not_blank("locale", &self.locale);
        rules.no_nul("internal_signature", &self.internal_signature);
        rules.not_blank("customer_id", &self.customer_id);
        rules.not_blank("delivery_service", &self.delivery_service);
        rules.not_blank("shardkey", &self.shardkey);
        rules.at_least("sm_id", self.sm_id, 0);
        rules.not_blank("oof_shard", &self.oof_shard);
        if let Some(rejection) = rules.first {
            return Err(rejection);
        }

        let date_created = DateTime::parse_from_rfc3339(&self.date_created)
            .map_err(|error| {
                Rejection::new(
                    "date_created",
                    format!("must be an RFC 3339 timestamp ({error})"),
                )
            })?
            .with_timezone(&Utc);
        if now < DateTime::<Utc>::MAX_UTC - MAX_FUTURE_SKEW && date_created > now + MAX_FUTURE_SKEW
        {
            return Err(Rejection::new(
                "date_created",
                "must not be more than 5 minutes in the future",
            ));
        }
        Ok(date_created)
    }
}

/// A field's path, made into text only when a rule about it is broken: valid orders, the
/// common case, never pay for formatting `items[N].field`.
trait Path: std::fmt::Display + Copy {}

impl Path for &str {}

/// The path of an item's field.
#[derive(Clone, Copy)]
struct ItemPath {
    index: usize,
    field: &'static str,
}

impl std::fmt::Display for ItemPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "items[{}].{}", self.index, self.field)
    }
}

impl Path for ItemPath {}

/// Collects the first broken rule; later checks are skipped once one has failed.
#[derive(Default)]
struct Checker {
    first: Option<Rejection>,
}

impl Checker {
    fn failed(&self) -> bool {
        self.first.is_some()
    }

    fn fail(&mut self, path: impl Path, rule: impl Into<String>) {
        if self.first.is_none() {
            self.first = Some(Rejection::new(path.to_string(), rule));
        }
    }

    fn no_nul(&mut self, path: impl Path, value: &str) -> bool {
        if value.contains('\0') {
            self.fail(path, "must not contain a NUL character");
            return false;
        }
        true
    }

    fn not_blank(&mut self, path: impl Path, value: &str) {
        if self.no_nul(path, value) && value.trim().is_empty() {
            self.fail(path, "must not be empty or white space only");
        }
    }

    fn key(&mut self, path: impl Path, value: &str, url_safe: bool) {
        if !self.no_nul(path, value) {
            return;
        }
        let n_chars = value.chars().count();
        if !(1..=MAX_KEY_CHARS).contains(&n_chars) {
            self.fail(
                path,
                format!("must be 1 to {MAX_KEY_CHARS} characters, is {n_chars}"),
            );
        } else if url_safe && !is_order_uid(value) {
            self.fail(path, "must hold only ASCII letters, digits, '-' and '_'");
        }
    }

    fn phone(&mut self, path: impl Path, value: &str) {
        let digits = value.strip_prefix('+').unwrap_or("");
        let ok = value.starts_with('+')
            && (7..=15).contains(&digits.len())
            && digits.bytes().all(|byte| byte.is_ascii_digit());
        if !ok {
            self.fail(path, "must be '+' followed by 7 to 15 digits");
        }
    }

    fn email(&mut self, path: impl Path, value: &str) {
        let ok = match value.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !value.chars().any(char::is_whitespace)
                    && !value.contains('\0')
            }
            None => false,
        };
        if !ok {
            self.fail(
                path,
                "must hold one '@', a non-empty local part, a domain with a '.', and no spaces",
            );
        }
    }

    fn currency(&mut self, path: impl Path, value: &str) {
        if value.len() != 3 || !value.bytes().all(|byte| byte.is_ascii_uppercase()) {
            self.fail(path, "must be exactly 3 ASCII upper-case letters");
        }
    }

    fn at_least(&mut self, path: impl Path, value: i64, minimum: i64) {
        if value < minimum {
            self.fail(path, format!("must be >= {minimum}, is {value}"));
        }
    }
}

/// Whether `value` has the form of an `order_uid`: 1 to 64 ASCII letters, digits, `-`, `_`.
/// HTTP uses the same test to answer 400 for a uid no order can have.
pub fn is_order_uid(value: &str) -> bool {
    (1..=MAX_KEY_CHARS).contains(&value.len())
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// Deserializes `T` from a JSON object only. serde's derived structs also accept a JSON array
/// of the field values in order, which the contract does not allow.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectVisitor<T> {
            type Value = T;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(ObjectVisitor(std::marker::PhantomData))
            .map(Object)
    }
}

fn object<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Object::deserialize(deserializer).map(|Object(value)| value)
}

fn list_of_objects<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    let objects: Vec<Object<T>> = Vec::deserialize(deserializer)?;
    Ok(objects.into_iter().map(|Object(value)| value).collect())
}

/// serde reports a missing or repeated field at the object that holds it; the contract wants
/// the field's own path, such as `payment.bank`.
fn path_with_named_field(path: &str, message: &str) -> String {
    let field = ["missing field `", "duplicate field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split_once('`'))
        .map(|(field, _)| field);
    match field {
        Some(field) if path == "." => field.to_string(),
        Some(field) => format!("{path}.{field}"),
        None => path.to_string(),
    }
}

/// serde's messages for unknown fields list every expected field; the path already says where,
/// so the list is cut to keep rejection reasons short.
fn shorten_serde_message(message: &str) -> String {
    match message.find(", expected one of") {
        Some(cut) => {
            let tail = message
                .find(" at line")
                .map(|at| &message[at..])
                .unwrap_or("");
            format!("{}{tail}", &message[..cut])
        }
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const CANONICAL: &str = include_str!("../tests/data/canonical-order.json");

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .map(|at| at.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn canonical() -> Value {
        serde_json::from_str(CANONICAL).unwrap_or(Value::Null)
    }

    /// Parses `raw` and returns the rejection's path and whether its rule mentions `rule_word`.
    fn check(raw: &[u8], path: &str, rule_word: &str) {
        match Order::parse(raw, now(), 1 << 20) {
            Ok(order) => panic!(
                "accepted an order that should fail at {path}: {}",
                order.order_uid()
            ),
            Err(rejection) => {
                assert_eq!(rejection.path, path, "wrong path for {rejection}");
                assert!(
                    rejection.rule.contains(rule_word),
                    "rule of {rejection} does not mention {rule_word:?}"
                );
            }
        }
    }

    /// Applies `edit` to the canonical order and expects a rejection at `path`.
    fn check_edit(edit: impl FnOnce(&mut Value), path: &str, rule_word: &str) {
        let mut doc = canonical();
        edit(&mut doc);
        let raw = serde_json::to_vec(&doc).unwrap_or_default();
        check(&raw, path, rule_word);
    }

    #[test]
    fn canonical_order_is_accepted_and_served_field_for_field() {
        let order = Order::parse(CANONICAL.as_bytes(), now(), 1 << 20)
            .unwrap_or_else(|rejection| panic!("canonical order rejected: {rejection}"));
        assert_eq!(order.order_uid(), "b563feb7b2b84b6test");
        let served: Value = serde_json::from_slice(order.json()).unwrap_or(Value::Null);
        assert_eq!(served, canonical());
        let again = Order::parse(order.json(), now(), 1 << 20)
            .unwrap_or_else(|rejection| panic!("served order rejected: {rejection}"));
        assert_eq!(again.json(), order.json());
    }

    #[test]
    fn escaped_text_is_served_unescaped_to_the_same_value() {
        // Text without escapes is borrowed from the record, text with them is decoded: both
        // must come out as the value that was sent.
        let mut value = canonical();
        value["delivery"]["name"] = json!("Zoë \"Q\" \\ tab\there\nline 😀 \u{7f}");
        value["items"][0]["brand"] = json!("A/B \u{1}");
        value["locale"] = json!("en");
        let raw = serde_json::to_vec(&value).unwrap_or_default();
        assert!(
            raw.windows(2).any(|pair| pair == b"\\\""),
            "the record holds escapes"
        );
        let order = Order::parse(&raw, now(), 1 << 20)
            .unwrap_or_else(|rejection| panic!("order rejected: {rejection}"));
        let served: Value = serde_json::from_slice(order.json()).unwrap_or(Value::Null);
        assert_eq!(served, value);
    }

    #[test]
    fn envelope_rules() {
        let cases: &[(&[u8], &str, &str)] = &[
            (b"", ".", "empty"),
            (b"\xff\xfe{}", ".", "UTF-8"),
            (b"{\"order_uid\": ", "order_uid", "EOF"),
            (b"{\"order_uid\": \"x\",", ".", "EOF"),
            (b"{\"delivery\": {\"name\": \"x\",", "delivery", "EOF"),
            (b"[1, 2]", ".", "sequence"),
            (b"42", ".", "integer"),
            (b"\"order\"", ".", "string"),
            (b"null", ".", "null"),
            (b"not json at all", ".", "expected"),
        ];
        for (raw, path, word) in cases {
            check(raw, path, word);
        }
        let mut trailing = CANONICAL.as_bytes().to_vec();
        trailing.extend_from_slice(b" {}");
        check(&trailing, ".", "trailing");
    }

    #[test]
    fn rejections_have_a_bounded_kind() {
        let kind = |raw: &[u8]| {
            Order::parse(raw, now(), 1 << 20)
                .err()
                .map(|rejection| rejection.kind())
        };
        assert_eq!(kind(b""), Some("empty"));
        assert_eq!(kind(b"\xff"), Some("not_utf8"));
        assert_eq!(kind(b"{"), Some("not_json"));
        assert_eq!(kind(b"[]"), Some("wrong_type"));
        assert_eq!(kind(b"{\"x\": 1}"), Some("unknown_field"));
        assert_eq!(kind(b"{}"), Some("missing_field"));
        let bad_rule = CANONICAL.replace("\"USD\"", "\"usd\"");
        assert_eq!(kind(bad_rule.as_bytes()), Some("field_rule"));
    }

    #[test]
    fn record_over_the_size_limit_is_rejected_unparsed() {
        match Order::parse(CANONICAL.as_bytes(), now(), 100) {
            Err(rejection) => assert!(rejection.rule.contains("larger"), "{rejection}"),
            Ok(_) => panic!("accepted an oversized record"),
        }
    }

    #[test]
    fn structure_rules() {
        check_edit(|d| d["extra"] = json!(1), "extra", "unknown field");
        check_edit(
            |d| d["delivery"]["fax"] = json!("1"),
            "delivery.fax",
            "unknown field",
        );
        check_edit(
            |d| d["items"][0]["color"] = json!("red"),
            "items[0].color",
            "unknown field",
        );
        check_edit(|d| remove(d, "locale"), "locale", "missing field");
        check_edit(
            |d| remove(&mut d["payment"], "bank"),
            "payment.bank",
            "missing field",
        );
        check_edit(
            |d| remove(&mut d["items"][0], "rid"),
            "items[0].rid",
            "missing field",
        );
        check_edit(|d| d["entry"] = Value::Null, "entry", "null");
        check_edit(|d| d["delivery"] = Value::Null, "delivery", "null");
        check_edit(|d| d["delivery"] = json!([]), "delivery", "sequence");
        // serde would take a struct from an array of its field values; the contract does not.
        check_edit(
            |d| d["delivery"] = json!(["a", "+1234567", "1", "c", "a", "r", "a@b.c"]),
            "delivery",
            "JSON object",
        );
        check_edit(|d| d["items"] = json!([[1]]), "items[0]", "JSON object");
        check_edit(|d| d["items"] = json!({}), "items", "map");
        check_edit(
            |d| d["payment"]["amount"] = json!(1817.0),
            "payment.amount",
            "floating",
        );
        check_edit(
            |d| d["payment"]["amount"] = json!("1817"),
            "payment.amount",
            "string",
        );
        check_edit(|d| d["sm_id"] = json!(u64::MAX), "sm_id", "invalid value");
        check_edit(|d| d["sm_id"] = json!(true), "sm_id", "boolean");
        check_edit(|d| d["locale"] = json!(7), "locale", "integer");
    }

    #[test]
    fn numbers_in_exponent_form_and_duplicate_fields_are_rejected() {
        let exponent = CANONICAL.replace("\"amount\": 1817", "\"amount\": 1.817e3");
        check(exponent.as_bytes(), "payment.amount", "floating");
        let big = CANONICAL.replace("\"sm_id\": 99", "\"sm_id\": 99999999999999999999999");
        check(big.as_bytes(), "sm_id", "floating");
        let twice = CANONICAL.replace(
            "\"locale\": \"en\"",
            "\"locale\": \"en\", \"locale\": \"ru\"",
        );
        check(twice.as_bytes(), "locale", "duplicate field");
        let nested = CANONICAL.replace("\"zip\": \"2639809\"", "\"zip\": \"1\", \"zip\": \"2\"");
        check(nested.as_bytes(), "delivery.zip", "duplicate field");
    }

    #[test]
    fn field_rules() {
        type Edit = fn(&mut Value);
        let cases: &[(Edit, &str, &str)] = &[
            (|d| d["order_uid"] = json!(""), "order_uid", "1 to 64"),
            (
                |d| d["order_uid"] = json!("a".repeat(65)),
                "order_uid",
                "1 to 64",
            ),
            (|d| d["order_uid"] = json!("a/b"), "order_uid", "ASCII"),
            (|d| d["order_uid"] = json!("ab c"), "order_uid", "ASCII"),
            (|d| d["order_uid"] = json!("заказ"), "order_uid", "ASCII"),
            (|d| d["track_number"] = json!(""), "track_number", "1 to 64"),
            (
                |d| d["track_number"] = json!("T".repeat(65)),
                "track_number",
                "1 to 64",
            ),
            (|d| d["entry"] = json!("  "), "entry", "empty"),
            (|d| d["entry"] = json!("WB\u{0}IL"), "entry", "NUL"),
            (
                |d| d["delivery"]["name"] = json!(""),
                "delivery.name",
                "empty",
            ),
            (
                |d| d["delivery"]["phone"] = json!("9720000000"),
                "delivery.phone",
                "digits",
            ),
            (
                |d| d["delivery"]["phone"] = json!("+972000"),
                "delivery.phone",
                "digits",
            ),
            (
                |d| d["delivery"]["phone"] = json!("+9720000000000000"),
                "delivery.phone",
                "digits",
            ),
            (
                |d| d["delivery"]["phone"] = json!("+97200-00000"),
                "delivery.phone",
                "digits",
            ),
            (
                |d| d["delivery"]["zip"] = json!("\t"),
                "delivery.zip",
                "empty",
            ),
            (
                |d| d["delivery"]["city"] = json!(""),
                "delivery.city",
                "empty",
            ),
            (
                |d| d["delivery"]["address"] = json!(" "),
                "delivery.address",
                "empty",
            ),
            (
                |d| d["delivery"]["region"] = json!(""),
                "delivery.region",
                "empty",
            ),
            (
                |d| d["delivery"]["email"] = json!("test.gmail.com"),
                "delivery.email",
                "@",
            ),
            (
                |d| d["delivery"]["email"] = json!("a@b@c.com"),
                "delivery.email",
                "@",
            ),
            (
                |d| d["delivery"]["email"] = json!("@gmail.com"),
                "delivery.email",
                "local",
            ),
            (
                |d| d["delivery"]["email"] = json!("test@gmail"),
                "delivery.email",
                "domain",
            ),
            (
                |d| d["delivery"]["email"] = json!("te st@gmail.com"),
                "delivery.email",
                "spaces",
            ),
            (
                |d| d["payment"]["transaction"] = json!(""),
                "payment.transaction",
                "empty",
            ),
            (
                |d| d["payment"]["request_id"] = json!("\u{0}"),
                "payment.request_id",
                "NUL",
            ),
            (
                |d| d["payment"]["currency"] = json!("usd"),
                "payment.currency",
                "upper-case",
            ),
            (
                |d| d["payment"]["currency"] = json!("USDT"),
                "payment.currency",
                "upper-case",
            ),
            (
                |d| d["payment"]["provider"] = json!(""),
                "payment.provider",
                "empty",
            ),
            (
                |d| d["payment"]["amount"] = json!(1818),
                "payment.amount",
                "goods_total",
            ),
            (
                |d| d["payment"]["payment_dt"] = json!(0),
                "payment.payment_dt",
                ">= 1",
            ),
            (
                |d| d["payment"]["bank"] = json!(""),
                "payment.bank",
                "empty",
            ),
            (
                |d| d["payment"]["delivery_cost"] = json!(-1),
                "payment.delivery_cost",
                ">= 0",
            ),
            (
                |d| d["payment"]["goods_total"] = json!(318),
                "payment.goods_total",
                "sum",
            ),
            (
                |d| d["payment"]["custom_fee"] = json!(-5),
                "payment.custom_fee",
                ">= 0",
            ),
            (|d| d["items"] = json!([]), "items", "1 to 1000"),
            (
                |d| d["items"][0]["chrt_id"] = json!(0),
                "items[0].chrt_id",
                ">= 1",
            ),
            (
                |d| d["items"][0]["track_number"] = json!("OTHER"),
                "items[0].track_number",
                "equal",
            ),
            (
                |d| d["items"][0]["price"] = json!(-453),
                "items[0].price",
                ">= 0",
            ),
            (
                |d| d["items"][0]["rid"] = json!(""),
                "items[0].rid",
                "empty",
            ),
            (
                |d| d["items"][0]["name"] = json!(" "),
                "items[0].name",
                "empty",
            ),
            (
                |d| d["items"][0]["sale"] = json!(101),
                "items[0].sale",
                "0 to 100",
            ),
            (
                |d| d["items"][0]["sale"] = json!(-1),
                "items[0].sale",
                "0 to 100",
            ),
            (
                |d| d["items"][0]["size"] = json!(""),
                "items[0].size",
                "empty",
            ),
            (
                |d| d["items"][0]["total_price"] = json!(318),
                "items[0].total_price",
                "price",
            ),
            (
                |d| d["items"][0]["nm_id"] = json!(-1),
                "items[0].nm_id",
                ">= 1",
            ),
            (
                |d| d["items"][0]["brand"] = json!(""),
                "items[0].brand",
                "empty",
            ),
            (
                |d| d["items"][0]["status"] = json!(-202),
                "items[0].status",
                ">= 0",
            ),
            (|d| d["locale"] = json!(""), "locale", "empty"),
            (
                |d| d["internal_signature"] = json!("a\u{0}"),
                "internal_signature",
                "NUL",
            ),
            (|d| d["customer_id"] = json!(""), "customer_id", "empty"),
            (
                |d| d["delivery_service"] = json!(""),
                "delivery_service",
                "empty",
            ),
            (|d| d["shardkey"] = json!(""), "shardkey", "empty"),
            (|d| d["sm_id"] = json!(-1), "sm_id", ">= 0"),
            (
                |d| d["date_created"] = json!("26.11.2021"),
                "date_created",
                "RFC 3339",
            ),
            (
                |d| d["date_created"] = json!("2021-11-26"),
                "date_created",
                "RFC 3339",
            ),
            (
                |d| d["date_created"] = json!("2026-01-01T00:05:01Z"),
                "date_created",
                "future",
            ),
            (|d| d["oof_shard"] = json!(""), "oof_shard", "empty"),
        ];
        for (edit, path, word) in cases {
            check_edit(edit, path, word);
        }
    }

    #[test]
    fn edge_values_that_the_contract_allows_are_accepted() {
        type Edit = fn(&mut Value);
        let cases: &[Edit] = &[
            |d| d["order_uid"] = json!("A".repeat(64)),
            |d| d["order_uid"] = json!("a-b_C-9"),
            |d| d["delivery"]["phone"] = json!("+1234567"),
            |d| d["delivery"]["phone"] = json!("+123456789012345"),
            |d| d["payment"]["request_id"] = json!(""),
            |d| d["internal_signature"] = json!(""),
            |d| d["date_created"] = json!("2026-01-01T00:05:00Z"),
            |d| d["date_created"] = json!("2021-11-26T09:22:19.123+03:00"),
            |d| {
                d["track_number"] = json!("трек");
                d["items"][0]["track_number"] = json!("трек");
            },
            |d| {
                d["items"][0]["sale"] = json!(100);
                d["items"][0]["total_price"] = json!(0);
                d["payment"]["goods_total"] = json!(0);
                d["payment"]["amount"] = json!(1500);
            },
        ];
        for edit in cases {
            let mut doc = canonical();
            edit(&mut doc);
            let raw = serde_json::to_vec(&doc).unwrap_or_default();
            if let Err(rejection) = Order::parse(&raw, now(), 1 << 20) {
                panic!("rejected an allowed order {doc}: {rejection}");
            }
        }
    }

    #[test]
    fn rule_checks_in_a_later_item_name_its_index() {
        check_edit(
            |d| {
                let mut second = d["items"][0].clone();
                second["price"] = json!(100);
                second["sale"] = json!(0);
                second["total_price"] = json!(99);
                if let Some(items) = d["items"].as_array_mut() {
                    items.push(second);
                }
            },
            "items[1].total_price",
            "price",
        );
    }

    fn remove(value: &mut Value, field: &str) {
        if let Some(object) = value.as_object_mut() {
            object.remove(field);
        }
    }
}
