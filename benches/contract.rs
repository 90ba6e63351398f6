//! The contract: parse and check one order, from raw bytes to an `Order` with its served JSON.
//! The canonical order (1 item) and a large one (100 items).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use orderstore::order::ValidOrder;
use serde_json::Value;

const CANONICAL: &str = include_str!("../tests/data/canonical-order.json");

fn large_order() -> Vec<u8> {
    let mut doc: Value = serde_json::from_str(CANONICAL).unwrap_or(Value::Null);
    let item = doc["items"][0].clone();
    doc["items"] = Value::Array(vec![item; 100]);
    doc["payment"]["goods_total"] = Value::from(317 * 100);
    doc["payment"]["amount"] = Value::from(317 * 100 + 1500);
    serde_json::to_vec(&doc).unwrap_or_default()
}

fn contract(c: &mut Criterion) {
    let now = chrono::Utc::now();
    let mut group = c.benchmark_group("contract");
    let canonical =
        serde_json::to_vec(&serde_json::from_str::<Value>(CANONICAL).unwrap_or(Value::Null))
            .unwrap_or_default();
    let large = large_order();
    assert!(ValidOrder::parse(&canonical, now, 1 << 20).is_ok());
    assert!(ValidOrder::parse(&large, now, 1 << 20).is_ok());
    for (name, raw) in [("canonical order", canonical), ("100-item order", large)] {
        group.throughput(Throughput::Bytes(raw.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| ValidOrder::parse(black_box(&raw), now, 1 << 20))
        });
    }
    group.finish();
}

criterion_group!(benches, contract);
criterion_main!(benches);
