//! JSON in the exact text form PostgreSQL prints a `jsonb` value in (`jsonb_out`): object keys
//! ordered by length, then bytewise; `", "` and `": "` as separators; only `"`, `\`, and
//! control characters escaped.
//!
//! Orders are served in this form, so the bytes HTTP returns are the same whether the order came
//! from Kafka a moment ago or from `body::text` in PostgreSQL after a restart, and a restore or a
//! lookup in PostgreSQL serves the text as it comes, without parsing it again.

use std::fmt::Write as _;

use crate::order::{Delivery, Item, Payment, UncheckedOrder};

/// Writes an order as PostgreSQL's `jsonb_out` would, without building a generic JSON value:
/// the fields of each object are listed here in jsonb's order (by key length, then bytes),
/// which a test checks against a generic writer of any JSON value.
pub fn write_order(order: &UncheckedOrder, out: &mut String) {
    let mut object = ObjectWriter::new(out);
    object.key("entry").string(&order.entry);
    object.key("items");
    object.out.push('[');
    for (index, item) in order.items.iter().enumerate() {
        if index > 0 {
            object.out.push_str(", ");
        }
        write_item(item, object.out);
    }
    object.out.push(']');
    object.key("sm_id").number(order.sm_id);
    object.key("locale").string(&order.locale);
    object.key("payment");
    write_payment(&order.payment, object.out);
    object.key("delivery");
    write_delivery(&order.delivery, object.out);
    object.key("shardkey").string(&order.shardkey);
    object.key("oof_shard").string(&order.oof_shard);
    object.key("order_uid").string(&order.order_uid);
    object.key("customer_id").string(&order.customer_id);
    object.key("date_created").string(&order.date_created);
    object.key("track_number").string(&order.track_number);
    object
        .key("delivery_service")
        .string(&order.delivery_service);
    object
        .key("internal_signature")
        .string(&order.internal_signature);
    object.end();
}

fn write_delivery(delivery: &Delivery, out: &mut String) {
    let mut object = ObjectWriter::new(out);
    object.key("zip").string(&delivery.zip);
    object.key("city").string(&delivery.city);
    object.key("name").string(&delivery.name);
    object.key("email").string(&delivery.email);
    object.key("phone").string(&delivery.phone);
    object.key("region").string(&delivery.region);
    object.key("address").string(&delivery.address);
    object.end();
}

fn write_payment(payment: &Payment, out: &mut String) {
    let mut object = ObjectWriter::new(out);
    object.key("bank").string(&payment.bank);
    object.key("amount").number(payment.amount);
    object.key("currency").string(&payment.currency);
    object.key("provider").string(&payment.provider);
    object.key("custom_fee").number(payment.custom_fee);
    object.key("payment_dt").number(payment.payment_dt);
    object.key("request_id").string(&payment.request_id);
    object.key("goods_total").number(payment.goods_total);
    object.key("transaction").string(&payment.transaction);
    object.key("delivery_cost").number(payment.delivery_cost);
    object.end();
}

fn write_item(item: &Item, out: &mut String) {
    let mut object = ObjectWriter::new(out);
    object.key("rid").string(&item.rid);
    object.key("name").string(&item.name);
    object.key("sale").number(item.sale);
    object.key("size").string(&item.size);
    object.key("brand").string(&item.brand);
    object.key("nm_id").number(item.nm_id);
    object.key("price").number(item.price);
    object.key("status").number(item.status);
    object.key("chrt_id").number(item.chrt_id);
    object.key("total_price").number(item.total_price);
    object.key("track_number").string(&item.track_number);
    object.end();
}

/// Writes one object's `"key": value` pairs with jsonb's separators.
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
            self.out.push_str(", ");
        }
        self.first = false;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\": ");
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
    use serde_json::{json, Value};

    /// The reference: any JSON value as `jsonb_out` prints it, keys sorted at run time.
    fn write_jsonb_text(value: &Value, out: &mut String) {
        match value {
            Value::Null => out.push_str("null"),
            Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
            Value::Number(number) => {
                let _ = write!(out, "{number}");
            }
            Value::String(text) => write_string(text, out),
            Value::Array(items) => {
                out.push('[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push_str(", ");
                    }
                    write_jsonb_text(item, out);
                }
                out.push(']');
            }
            Value::Object(fields) => {
                let mut entries: Vec<(&String, &Value)> = fields.iter().collect();
                entries.sort_by(|(left, _), (right, _)| {
                    left.len()
                        .cmp(&right.len())
                        .then_with(|| left.as_bytes().cmp(right.as_bytes()))
                });
                out.push('{');
                for (index, (key, field)) in entries.into_iter().enumerate() {
                    if index > 0 {
                        out.push_str(", ");
                    }
                    write_string(key, out);
                    out.push_str(": ");
                    write_jsonb_text(field, out);
                }
                out.push('}');
            }
        }
    }

    fn text(value: Value) -> String {
        let mut out = String::new();
        write_jsonb_text(&value, &mut out);
        out
    }

    #[test]
    fn keys_go_by_length_then_bytes() {
        let value = json!({"bb": 1, "a": [1, "x"], "ab": {"zz": true, "y": null}, "B": -5});
        assert_eq!(
            text(value),
            r#"{"B": -5, "a": [1, "x"], "ab": {"y": null, "zz": true}, "bb": 1}"#
        );
    }

    #[test]
    fn orders_are_written_as_the_generic_writer_writes_them() {
        let mut rng = rand::rng();
        let now = chrono::Utc::now();
        let mut orders: Vec<UncheckedOrder> = (0..200)
            .map(|_| crate::fake_data::random_order(&mut rng, now))
            .collect();
        orders[0].delivery.name = "Zoë \"Q\" \\ \u{1}\t\n\u{1f}\u{7f} 😀".into();
        for order in &orders {
            let mut fast = String::new();
            write_order(order, &mut fast);
            let value = serde_json::to_value(order).unwrap_or(Value::Null);
            assert_eq!(fast, text(value));
        }
    }

    #[test]
    fn strings_are_escaped_as_postgres_does() {
        let value = json!("q\"b\\n\nt\tc\u{1}d\u{7f}é/<");
        assert_eq!(text(value), "\"q\\\"b\\\\n\\nt\\tc\\u0001d\u{7f}é/<\"");
        assert_eq!(text(json!({})), "{}");
        assert_eq!(text(json!([])), "[]");
    }
}
