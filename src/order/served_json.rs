//! The served form of an order: compact JSON (no white space), its fields in the contract's
//! order (`docs/order-spec.md`: `order_uid`, `track_number`, `entry`, `delivery` …), strings
//! escaped as serde_json escapes them (`"`, `\`, and control characters only).
//!
//! It is what memory holds, what HTTP serves and what `orders.body_text` stores, so the bytes
//! HTTP returns are the same whether the order came from Kafka a moment ago, from memory after
//! a restore, or from PostgreSQL, which serves the text as it comes, without parsing it again.
//! A producer writing compact JSON in the contract's order gets its own bytes back.
//! (Orders stored before this form kept the `jsonb` text form they were served in then.)

use std::fmt::Write as _;

use crate::order::{Delivery, Item, Payment, UncheckedOrder};

/// Writes an order in its served form without building a generic JSON value; a test checks it
/// against serde_json's writer for the same structs.
pub fn write_order(order: &UncheckedOrder, out: &mut String) {
    let mut object = ObjectWriter::new(out);
    object.key("order_uid").string(&order.order_uid);
    object.key("track_number").string(&order.track_number);
    object.key("entry").string(&order.entry);
    object.key("delivery");
    write_delivery(&order.delivery, object.out);
    object.key("payment");
    write_payment(&order.payment, object.out);
    object.key("items");
    object.out.push('[');
    for (index, item) in order.items.iter().enumerate() {
        if index > 0 {
            object.out.push(',');
        }
        write_item(item, object.out);
    }
    object.out.push(']');
    object.key("locale").string(&order.locale);
    object
        .key("internal_signature")
        .string(&order.internal_signature);
    object.key("customer_id").string(&order.customer_id);
    object
        .key("delivery_service")
        .string(&order.delivery_service);
    object.key("shardkey").string(&order.shardkey);
    object.key("sm_id").number(order.sm_id);
    object.key("date_created").string(&order.date_created);
    object.key("oof_shard").string(&order.oof_shard);
    object.end();
}

fn write_delivery(delivery: &Delivery, out: &mut String) {
    let mut object = ObjectWriter::new(out);
    object.key("name").string(&delivery.name);
    object.key("phone").string(&delivery.phone);
    object.key("zip").string(&delivery.zip);
    object.key("city").string(&delivery.city);
    object.key("address").string(&delivery.address);
    object.key("region").string(&delivery.region);
    object.key("email").string(&delivery.email);
    object.end();
}

fn write_payment(payment: &Payment, out: &mut String) {
    let mut object = ObjectWriter::new(out);
    object.key("transaction").string(&payment.transaction);
    object.key("request_id").string(&payment.request_id);
    object.key("currency").string(&payment.currency);
    object.key("provider").string(&payment.provider);
    object.key("amount").number(payment.amount);
    object.key("payment_dt").number(payment.payment_dt);
    object.key("bank").string(&payment.bank);
    object.key("delivery_cost").number(payment.delivery_cost);
    object.key("goods_total").number(payment.goods_total);
    object.key("custom_fee").number(payment.custom_fee);
    object.end();
}

fn write_item(item: &Item, out: &mut String) {
    let mut object = ObjectWriter::new(out);
    object.key("chrt_id").number(item.chrt_id);
    object.key("track_number").string(&item.track_number);
    object.key("price").number(item.price);
    object.key("rid").string(&item.rid);
    object.key("name").string(&item.name);
    object.key("sale").number(item.sale);
    object.key("size").string(&item.size);
    object.key("total_price").number(item.total_price);
    object.key("nm_id").number(item.nm_id);
    object.key("brand").string(&item.brand);
    object.key("status").number(item.status);
    object.end();
}

/// Writes one object's `"key":value` pairs, comma-separated.
struct ObjectWriter<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> ObjectWriter<'a> {
    fn new(out: &'a mut String) -> Self {
        out.push('{');
        Self { out, first: true }
    }

    fn key(&mut self, key: &str) -> &mut Self {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
        self
    }

    fn string(&mut self, value: &str) {
        write_string(value, self.out);
    }

    fn number(&mut self, value: i64) {
        let mut digits = itoa::Buffer::new();
        self.out.push_str(digits.format(value));
    }

    fn end(self) {
        self.out.push('}');
    }
}

fn write_string(text: &str, out: &mut String) {
    out.push('"');
    // Most strings need no escape at all: copy them whole.
    if !text
        .bytes()
        .any(|byte| byte < 0x20 || byte == b'"' || byte == b'\\')
    {
        out.push_str(text);
        out.push('"');
        return;
    }
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            control if (control as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", control as u32);
            }
            other => out.push(other),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_written_as_serde_json_writes_them() {
        let mut rng = rand::rng();
        let now = chrono::Utc::now();
        let mut orders: Vec<UncheckedOrder> = (0..200)
            .map(|_| crate::fake_data::random_order(&mut rng, now))
            .collect();
        orders[0].delivery.name = "Zoë \"Q\" \\ \u{1}\t\n\u{1f}\u{7f}\u{8}\u{c}\r 😀 /<".into();
        for order in &orders {
            let mut fast = String::new();
            write_order(order, &mut fast);
            let reference = serde_json::to_string(order).unwrap_or_default();
            assert_eq!(fast, reference);
        }
    }

    #[test]
    fn the_canonical_order_is_served_compact_in_the_contracts_order() {
        let sent = include_str!("../../tests/data/canonical-order.json");
        let order = UncheckedOrder::from_json(sent).unwrap_or_else(|error| panic!("{error:?}"));
        let mut served = String::new();
        write_order(&order, &mut served);
        // The producer's bytes without their white space (none of its strings holds any that
        // matters here), field for field in the same order.
        let compact: String = sent.lines().map(str::trim).collect();
        let compact = compact.replace("\": ", "\":");
        assert_eq!(served, compact);
        assert!(served.starts_with(r#"{"order_uid":"b563feb7b2b84b6test","track_number":"#));
    }
}
