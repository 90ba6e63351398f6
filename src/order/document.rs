//! The order document exactly as the contract names its fields, parsed by serde: the envelope
//! rules (an object, every field, no unknown or repeated field, no `null`, integers that fit
//! `i64`) are enforced here, before any field rule is checked.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::rejection::{path_with_named_field, shorten_serde_message};
use super::Rejection;

/// Text of an order field: borrowed from the record when it holds no escapes, as almost all
/// do, so that parsing an order allocates for its lists, not for each of its thirty strings.
pub type Text<'a> = std::borrow::Cow<'a, str>;

/// The order document exactly as the contract names it, borrowing its text from the record it
/// is parsed from.
///
/// Its fields are the contract's, each described in `docs/order-spec.md`.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UncheckedOrder<'a> {
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

/// The order's `delivery` object: who receives it, and where.
///
/// Its fields are the contract's, each described in `docs/order-spec.md`.
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

/// The order's `payment` object.
///
/// Its fields are the contract's, each described in `docs/order-spec.md`.
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

/// One of the order's `items`.
///
/// Its fields are the contract's, each described in `docs/order-spec.md`.
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

impl<'a> UncheckedOrder<'a> {
    pub(crate) fn from_json(text: &'a str) -> Result<UncheckedOrder<'a>, Rejection> {
        // Most records are valid: parse without tracking paths, which costs time on every
        // field, and parse again with it only to explain a rejection.
        if let Ok(Object(doc)) = serde_json::from_str::<Object<UncheckedOrder>>(text) {
            return Ok(doc);
        }
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let doc: UncheckedOrder<'a> = serde_path_to_error::deserialize(&mut deserializer)
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
