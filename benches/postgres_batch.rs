//! Encoding one handler batch (1000 orders) into the binary COPY stream sent to PostgreSQL.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use orderstore::store::postgres::copy::encode_copy;
use orderstore::store::postgres::IncomingOrder;

fn postgres_batch(c: &mut Criterion) {
    let now = chrono::Utc::now();
    let mut rng = rand::rng();
    let orders = orderstore::fake_data::random_parsed_orders(&mut rng, 1000, now);
    let rows: Vec<IncomingOrder<'_>> = orders
        .iter()
        .enumerate()
        .map(|(index, order)| IncomingOrder {
            order,
            partition: (index % 8) as i32,
            offset: index as i64,
        })
        .collect();
    let ids: Vec<i64> = (1..=1000).collect();
    let mut group = c.benchmark_group("postgres");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("encode a 1000-order batch for binary COPY", |b| {
        b.iter(|| {
            encode_copy(black_box("orders"), black_box(&rows), &ids)
                .map(|chunk| chunk.len())
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, postgres_batch);
criterion_main!(benches);
