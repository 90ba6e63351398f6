//! The contract, case by case: every rule rejects at the right path, and every edge the
//! contract allows is accepted.

use super::*;
use serde_json::{json, Value};

const CANONICAL: &str = include_str!("../../tests/data/canonical-order.json");

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
    match ValidOrder::parse(raw, now(), 1 << 20) {
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
    let order = ValidOrder::parse(CANONICAL.as_bytes(), now(), 1 << 20)
        .unwrap_or_else(|rejection| panic!("canonical order rejected: {rejection}"));
    assert_eq!(order.order_uid(), "b563feb7b2b84b6test");
    let served: Value = serde_json::from_slice(order.json()).unwrap_or(Value::Null);
    assert_eq!(served, canonical());
    let again = ValidOrder::parse(order.json(), now(), 1 << 20)
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
    let order = ValidOrder::parse(&raw, now(), 1 << 20)
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
        ValidOrder::parse(raw, now(), 1 << 20)
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
    match ValidOrder::parse(CANONICAL.as_bytes(), now(), 100) {
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
        if let Err(rejection) = ValidOrder::parse(&raw, now(), 1 << 20) {
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
