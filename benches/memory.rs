//! The in-memory store: inserting orders, getting them by id and by uid from 2 threads at once
//! (as HTTP workers do), and one sweep over a 1,000,000-order store.

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use orderstore::store::memory::MemoryStore;
use orderstore::store::ServedOrder;

const N_ORDERS: i64 = 1_000_000;

fn order(id: i64, json: &Bytes) -> ServedOrder {
    ServedOrder {
        id,
        order_uid: format!("{id:016x}b563feb7b2b84b6test").into(),
        partition: (id % 8) as i32,
        created_micros: 1_700_000_000_000_000 + (id * 7919) % 1_000_000_000,
        json: json.clone().into(),
    }
}

fn full_store(json: &Bytes) -> MemoryStore {
    let store = MemoryStore::new();
    store.insert_many((1..=N_ORDERS).map(|id| order(id, json)));
    store
}

fn memory(c: &mut Criterion) {
    let json = Bytes::from(vec![b'x'; 1300]);
    let mut group = c.benchmark_group("memory");

    group.throughput(Throughput::Elements(1000));
    group.bench_function("insert 1000 orders into a 1M store", |b| {
        let store = full_store(&json);
        let mut next = N_ORDERS;
        b.iter_batched(
            || {
                let batch: Vec<ServedOrder> = (next + 1..=next + 1000)
                    .map(|id| order(id, &json))
                    .collect();
                next += 1000;
                batch
            },
            |batch| store.insert_many(batch),
            BatchSize::SmallInput,
        )
    });

    let store = Arc::new(full_store(&json));
    let uids: Vec<String> = (1..=1000)
        .map(|id| format!("{:016x}b563feb7b2b84b6test", id * 997))
        .collect();
    group.throughput(Throughput::Elements(2 * 1000));
    group.bench_function("get 1000 by id, 2 threads", |b| {
        b.iter(|| {
            std::thread::scope(|scope| {
                for thread in 0..2_i64 {
                    let store = &store;
                    scope.spawn(move || {
                        for index in 0..1000_i64 {
                            black_box(store.get_by_id((index * 997 + thread) % N_ORDERS + 1));
                        }
                    });
                }
            })
        })
    });
    group.bench_function("get 1000 by uid, 2 threads", |b| {
        b.iter(|| {
            std::thread::scope(|scope| {
                for _ in 0..2 {
                    let store = &store;
                    let uids = &uids;
                    scope.spawn(move || {
                        for uid in uids {
                            black_box(store.get_by_uid(uid));
                        }
                    });
                }
            })
        })
    });
    group.finish();

    let mut group = c.benchmark_group("sweep");
    group.sample_size(10);
    group.bench_function("evict 10% of a 1M-order store by count", |b| {
        b.iter_batched(
            || full_store(&json),
            |store| {
                let evicted = store.evict(900_000, None);
                assert_eq!(evicted.by_count, 100_000);
                store
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("sweep a 1M-order store with nothing to evict", |b| {
        let store = full_store(&json);
        b.iter(|| store.evict(2_000_000, Some(0)))
    });
    group.finish();
}

criterion_group!(benches, memory);
criterion_main!(benches);
