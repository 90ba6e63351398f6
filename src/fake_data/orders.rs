//! Random orders for tests, demos and benchmarks, built on the `fake` crate.
//!
//! [`random_order`] makes orders that satisfy the contract: consistent sums, varied names,
//! cities and brands, 1 to 5 items, `date_created` within the minute before `now`.
//! [`invalid_record`] makes records the contract rejects, one of every kind, for demos and
//! tests of the reject path.

use chrono::{DateTime, SecondsFormat, Utc};
use fake::faker::address::en::{BuildingNumber, CityName, StateName, StreetName, ZipCode};
use fake::faker::company::en::CompanyName;
use fake::faker::internet::en::SafeEmail;
use fake::faker::lorem::en::Word;
use fake::faker::name::en::Name;
use fake::Fake;
use rand::seq::IndexedRandom;
use rand::{Rng, RngExt};
use serde_json::{json, Value};

use crate::order::{Delivery, Item, Payment, UncheckedOrder};

const GOODS: &[&str] = &[
    "Mascaras",
    "Sneakers",
    "Phone case",
    "Teapot",
    "Backpack",
    "Headphones",
    "Umbrella",
    "Notebook",
    "Desk lamp",
    "Scarf",
    "Board game",
    "Water bottle",
];
const CURRENCIES: &[&str] = &["USD", "EUR", "RUB", "ILS", "GBP", "KZT"];
const PROVIDERS: &[&str] = &["wbpay", "stripe", "paypal", "yookassa"];
const BANKS: &[&str] = &["alpha", "sber", "tinkoff", "vtb", "leumi"];
const SERVICES: &[&str] = &["meest", "cdek", "dhl", "boxberry"];
const LOCALES: &[&str] = &["en", "ru", "he", "kk"];

/// A random order that satisfies the contract, with a fresh `order_uid`.
pub fn random_order(rng: &mut (impl Rng + ?Sized), now: DateTime<Utc>) -> UncheckedOrder<'static> {
    let order_uid = format!("{:016x}{:08x}", rng.random::<u64>(), rng.random::<u32>());
    let track_number = format!("WB{:012}", rng.random_range(0..1_000_000_000_000_u64));
    let n_items = rng.random_range(1..=5);
    let items: Vec<Item> = (0..n_items)
        .map(|_| {
            let price = rng.random_range(50..200_000);
            let sale = *[0, 0, 5, 10, 15, 20, 25, 30, 50, 70]
                .choose(rng)
                .unwrap_or(&0);
            let word: String = Word().fake_with_rng(rng);
            Item {
                chrt_id: rng.random_range(1..100_000_000),
                track_number: track_number.clone().into(),
                price,
                rid: format!("{:016x}", rng.random::<u64>()).into(),
                name: format!("{} {word}", pick(rng, GOODS)).into(),
                sale,
                size: rng.random_range(0..56).to_string().into(),
                total_price: price * (100 - sale) / 100,
                nm_id: rng.random_range(1..100_000_000),
                brand: CompanyName().fake_with_rng::<String, _>(rng).into(),
                status: *[202, 200, 201].choose(rng).unwrap_or(&202),
            }
        })
        .collect();
    let goods_total: i64 = items.iter().map(|item| item.total_price).sum();
    let delivery_cost = rng.random_range(0..3_000);
    let custom_fee = *[0, 0, 0, 100, 250].choose(rng).unwrap_or(&0);
    let created = now - chrono::Duration::milliseconds(rng.random_range(0..60_000));
    let street: String = StreetName().fake_with_rng(rng);
    let building: String = BuildingNumber().fake_with_rng(rng);
    UncheckedOrder {
        order_uid: order_uid.clone().into(),
        track_number: track_number.into(),
        entry: "WBIL".into(),
        delivery: Delivery {
            name: Name().fake_with_rng::<String, _>(rng).into(),
            phone: format!("+{}", rng.random_range(10_000_000_000_u64..99_999_999_999)).into(),
            zip: ZipCode().fake_with_rng::<String, _>(rng).into(),
            city: CityName().fake_with_rng::<String, _>(rng).into(),
            address: format!("{street} {building}").into(),
            region: StateName().fake_with_rng::<String, _>(rng).into(),
            email: SafeEmail().fake_with_rng::<String, _>(rng).into(),
        },
        payment: Payment {
            transaction: order_uid.into(),
            request_id: "".into(),
            currency: pick(rng, CURRENCIES).into(),
            provider: pick(rng, PROVIDERS).into(),
            amount: goods_total + delivery_cost + custom_fee,
            payment_dt: created.timestamp(),
            bank: pick(rng, BANKS).into(),
            delivery_cost,
            goods_total,
            custom_fee,
        },
        items,
        locale: pick(rng, LOCALES).into(),
        internal_signature: "".into(),
        customer_id: format!("customer{}", rng.random_range(0..100_000)).into(),
        delivery_service: pick(rng, SERVICES).into(),
        shardkey: rng.random_range(0..10).to_string().into(),
        sm_id: rng.random_range(0..100),
        date_created: created.to_rfc3339_opts(SecondsFormat::Secs, true).into(),
        oof_shard: rng.random_range(0..3).to_string().into(),
    }
}

/// A random valid order as JSON bytes, with its uid (the record key).
pub fn random_order_json(rng: &mut (impl Rng + ?Sized), now: DateTime<Utc>) -> (String, Vec<u8>) {
    let order = random_order(rng, now);
    let json = serde_json::to_vec(&order).unwrap_or_default();
    (order.order_uid.into_owned(), json)
}

/// `n` random valid orders, parsed as the batch writers parse records (for benchmarks and tests).
pub fn random_parsed_orders(
    rng: &mut (impl Rng + ?Sized),
    n: usize,
    now: DateTime<Utc>,
) -> Vec<crate::order::ValidOrder> {
    (0..n)
        .filter_map(|_| {
            let (_, json) = random_order_json(rng, now);
            crate::order::ValidOrder::parse(&json, now, json.len()).ok()
        })
        .collect()
}

/// Every kind of record the contract rejects, by name.
pub const INVALID_KINDS: &[&str] = &[
    "garbage_bytes",
    "not_utf8",
    "broken_json",
    "empty",
    "json_array",
    "json_scalar",
    "trailing_garbage",
    "missing_field",
    "unknown_field",
    "null_field",
    "duplicate_field",
    "float_number",
    "string_number",
    "bad_order_uid",
    "bad_phone",
    "bad_email",
    "bad_currency",
    "blank_string",
    "nul_character",
    "negative_amount",
    "wrong_amount",
    "wrong_goods_total",
    "wrong_total_price",
    "sale_over_100",
    "no_items",
    "foreign_track_number",
    "bad_date",
    "future_date",
];

/// A record the contract rejects, of a random kind from [`INVALID_KINDS`]; returns the kind
/// and the record value.
pub fn invalid_record(
    rng: &mut (impl Rng + ?Sized),
    now: DateTime<Utc>,
) -> (&'static str, Vec<u8>) {
    let kind = INVALID_KINDS
        .choose(rng)
        .copied()
        .unwrap_or("garbage_bytes");
    (kind, invalid_record_of_kind(kind, rng, now))
}

/// A record of the given kind from [`INVALID_KINDS`] (an unknown kind gives garbage bytes).
pub fn invalid_record_of_kind(
    kind: &str,
    rng: &mut (impl Rng + ?Sized),
    now: DateTime<Utc>,
) -> Vec<u8> {
    let valid = random_order(rng, now);
    let mut doc: Value = serde_json::to_value(&valid).unwrap_or(Value::Null);
    let text = |doc: &Value| serde_json::to_vec(doc).unwrap_or_default();
    match kind {
        "not_utf8" => b"{\"order_uid\": \"\xff\xfe\"}".to_vec(),
        "broken_json" => {
            let mut bytes = text(&doc);
            bytes.truncate(bytes.len() / 2);
            bytes
        }
        "empty" => Vec::new(),
        "json_array" => b"[1, 2, 3]".to_vec(),
        "json_scalar" => b"42".to_vec(),
        "trailing_garbage" => {
            let mut bytes = text(&doc);
            bytes.extend_from_slice(b" {}");
            bytes
        }
        "missing_field" => {
            if let Some(object) = doc.as_object_mut() {
                object.remove("locale");
            }
            text(&doc)
        }
        "unknown_field" => {
            doc["comment"] = json!("<script>alert('drift')</script>");
            text(&doc)
        }
        "null_field" => {
            doc["delivery"]["city"] = Value::Null;
            text(&doc)
        }
        "duplicate_field" => {
            let body = String::from_utf8(text(&doc)).unwrap_or_default();
            body.replacen("{", "{\"locale\":\"en\",", 1).into_bytes()
        }
        "float_number" => {
            doc["payment"]["amount"] = json!(valid.payment.amount as f64 + 0.5);
            text(&doc)
        }
        "string_number" => {
            doc["sm_id"] = json!(valid.sm_id.to_string());
            text(&doc)
        }
        "bad_order_uid" => {
            doc["order_uid"] = json!("../../etc/passwd");
            text(&doc)
        }
        "bad_phone" => {
            doc["delivery"]["phone"] = json!("8 (800) 555-35-35");
            text(&doc)
        }
        "bad_email" => {
            doc["delivery"]["email"] = json!("not an email");
            text(&doc)
        }
        "bad_currency" => {
            doc["payment"]["currency"] = json!("dollars");
            text(&doc)
        }
        "blank_string" => {
            doc["customer_id"] = json!("   ");
            text(&doc)
        }
        "nul_character" => {
            doc["delivery"]["name"] = json!("Null\u{0}Byte");
            text(&doc)
        }
        "negative_amount" => {
            doc["payment"]["delivery_cost"] = json!(-100);
            text(&doc)
        }
        "wrong_amount" => {
            doc["payment"]["amount"] = json!(valid.payment.amount + 1);
            text(&doc)
        }
        "wrong_goods_total" => {
            doc["payment"]["goods_total"] = json!(valid.payment.goods_total + 1);
            doc["payment"]["amount"] = json!(valid.payment.amount + 1);
            text(&doc)
        }
        "wrong_total_price" => {
            doc["items"][0]["total_price"] = json!(valid.items[0].total_price + 1);
            text(&doc)
        }
        "sale_over_100" => {
            doc["items"][0]["sale"] = json!(150);
            text(&doc)
        }
        "no_items" => {
            doc["items"] = json!([]);
            text(&doc)
        }
        "foreign_track_number" => {
            doc["items"][0]["track_number"] = json!("SOMEONE-ELSES");
            text(&doc)
        }
        "bad_date" => {
            doc["date_created"] = json!("yesterday");
            text(&doc)
        }
        "future_date" => {
            let future = now + chrono::Duration::hours(2);
            doc["date_created"] = json!(future.to_rfc3339_opts(SecondsFormat::Secs, true));
            text(&doc)
        }
        _ => (0..rng.random_range(1..64)).map(|_| rng.random()).collect(),
    }
}

fn pick(rng: &mut (impl Rng + ?Sized), choices: &[&'static str]) -> &'static str {
    choices.choose(rng).copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::ValidOrder;

    #[test]
    fn generated_orders_pass_the_contract() {
        let mut rng = rand::rng();
        let now = Utc::now();
        for _ in 0..2_000 {
            let (uid, json) = random_order_json(&mut rng, now);
            match ValidOrder::parse(&json, now, 1 << 20) {
                Ok(order) => assert_eq!(order.order_uid(), uid),
                Err(rejection) => panic!(
                    "generated order rejected: {rejection}\n{}",
                    String::from_utf8_lossy(&json)
                ),
            }
        }
    }

    #[test]
    fn every_invalid_kind_is_rejected() {
        let mut rng = rand::rng();
        let now = Utc::now();
        for kind in INVALID_KINDS {
            for _ in 0..20 {
                let raw = invalid_record_of_kind(kind, &mut rng, now);
                assert!(
                    ValidOrder::parse(&raw, now, 1 << 20).is_err(),
                    "a record of kind {kind} was accepted: {}",
                    String::from_utf8_lossy(&raw)
                );
            }
        }
    }
}
