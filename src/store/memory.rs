//! The in-memory order store: two DashSets, by `id` and by `order_uid`, of the same
//! [`HeldOrder`]s (each order one shared block, `store/held.rs`; a set's entries are the
//! orders themselves, hashed and compared by their id or uid, so the sets find them by an
//! `i64` or a `&str` and hold eight bytes a slot, with no key of their own), and an age index
//! that lets the sweeper find the oldest orders without scanning.
//!
//! HTTP reads take a set shard's read lock for the time of a hash lookup and clone the order
//! out, so no guard outlives the call. Orders come in from the batch writers and from the
//! restore, which (with `MEMORY_RESTORE` on) loads a partition's orders from PostgreSQL
//! whenever this instance takes its lease: at start-up, and later from an instance that
//! stopped, died or gave it up. Two callers evict:
//! the sweeper, by age and count ([`MemoryStore::evict`]), and the restorer, every order of the
//! partitions this instance gave up or lost ([`MemoryStore::evict_partitions`]). Evicted orders
//! stay in PostgreSQL. `tests/it/architecture.rs`
//! (`memory_is_filled_by_the_restore_and_the_batch_writers_and_emptied_by_the_sweeper_and_the_restorer`)
//! checks who calls each.

use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};

use dashmap::DashSet;

use super::compression::{Compressed, Compressor};
use super::held::HeldOrder;
use super::{RowOrder, ServedOrder};

/// Orders evicted per lock of the age index, so a large eviction (a sweep, or a partition given
/// up) never stalls the batch writers for long.
const EVICTION_CHUNK: usize = 4096;

/// How many orders one sweep ([`MemoryStore::evict`]) evicted, by cause.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Evicted {
    /// Evicted because memory held more than its limit.
    pub by_count: usize,
    /// Evicted because their `date_created` was older than the age limit.
    pub by_age: usize,
}

/// The sets' hasher: aHash, keyed at random per process, faster than the
/// standard SipHash on these short keys and still not predictable from outside.
type Hasher = ahash::RandomState;

/// An order in the set by id: it hashes and compares as its id and lends it out
/// (`Borrow<i64>`), so the set finds it by an `i64`.
#[derive(Debug, Clone)]
struct ById(HeldOrder);

impl Hash for ById {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As `i64` hashes, which `Borrow<i64>` requires.
        self.0.id().hash(state);
    }
}

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.0.id() == other.0.id()
    }
}

impl Eq for ById {}

impl Borrow<i64> for ById {
    fn borrow(&self) -> &i64 {
        self.0.id_ref()
    }
}

/// An order in the set by uid: it hashes and compares as its `order_uid` and lends it out
/// (`Borrow<str>`), so the set finds it by a `&str`.
#[derive(Debug, Clone)]
struct ByUid(HeldOrder);

impl Hash for ByUid {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As `str` hashes, which `Borrow<str>` requires.
        self.0.order_uid().hash(state);
    }
}

impl PartialEq for ByUid {
    fn eq(&self, other: &Self) -> bool {
        self.0.order_uid() == other.0.order_uid()
    }
}

impl Eq for ByUid {}

impl Borrow<str> for ByUid {
    fn borrow(&self) -> &str {
        self.0.order_uid()
    }
}

/// The in-memory order store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    by_id: DashSet<ById, Hasher>,
    by_uid: DashSet<ByUid, Hasher>,
    /// `(created_micros, id)` of every order in the sets, oldest first.
    by_age: Mutex<BTreeSet<(i64, i64)>>,
    /// With `MEMORY_COMPRESSION=zstd`, what compresses the orders taken.
    compressor: Option<Compressor>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store with room for `n_orders` without growing: a restore knows how many
    /// orders it will load, and growing sets of a million entries step by step rehashes them
    /// all several times over.
    pub fn with_capacity(n_orders: usize) -> Self {
        Self {
            by_id: DashSet::with_capacity_and_hasher(n_orders, Hasher::default()),
            by_uid: DashSet::with_capacity_and_hasher(n_orders, Hasher::default()),
            by_age: Mutex::default(),
            compressor: None,
        }
    }

    /// The store keeping orders compressed (`MEMORY_COMPRESSION=zstd`, `store/compression.rs`).
    pub fn compressed(mut self) -> Self {
        self.compressor = Some(Compressor::new());
        self
    }

    /// Adds orders; an order whose id is already held is left as it is. With compression on,
    /// they are compressed first (and the first dictionary trained, when due).
    pub fn insert_many(&self, orders: impl IntoIterator<Item = ServedOrder>) {
        let Some(compressor) = &self.compressor else {
            self.insert_prepared(orders);
            return;
        };
        let mut orders: Vec<ServedOrder> = orders.into_iter().collect();
        let compressed = compressor.compress(&mut orders);
        let ids: Vec<i64> = match compressed {
            Compressed::NoDictionary => orders.iter().map(|order| order.id).collect(),
            _ => Vec::new(),
        };
        self.insert_prepared(orders);
        match compressed {
            Compressed::FirstDictionary => self.compress_plain(
                self.by_id
                    .iter()
                    .filter(|entry| !entry.0.is_compressed())
                    .map(|entry| entry.0.clone())
                    .collect(),
            ),
            // A dictionary trained by another inserter after this batch was compressed and
            // before it was inserted: that inserter's scan may have run before this batch
            // was in, so this batch compresses its own. (A dictionary trained after this check
            // is trained after the batch was in, so that inserter's scan finds it.)
            Compressed::NoDictionary if compressor.generation().is_some() => self.compress_plain(
                ids.into_iter()
                    .filter_map(|id| self.get_by_id(id))
                    .filter(|order| !order.is_compressed())
                    .collect(),
            ),
            _ => {}
        }
    }

    /// Adds orders read from PostgreSQL (a restore), copying each once from its row; with
    /// compression on, as [`MemoryStore::insert_many`] does.
    pub fn insert_rows(&self, orders: &[RowOrder<'_>]) {
        if self.compressor.is_some() {
            self.insert_many(orders.iter().map(RowOrder::to_served));
            return;
        }
        let mut added = Vec::with_capacity(orders.len());
        for order in orders {
            self.insert_held(order.id, || HeldOrder::from_row(order), &mut added);
        }
        self.index_ages(added);
    }

    fn insert_prepared(&self, orders: impl IntoIterator<Item = ServedOrder>) {
        let mut added = Vec::new();
        for order in orders {
            self.insert_held(order.id, || HeldOrder::from_served(&order), &mut added);
        }
        self.index_ages(added);
    }

    /// Adds the order `make` makes, unless `id` is held already; notes its age in `added`.
    fn insert_held(&self, id: i64, make: impl FnOnce() -> HeldOrder, added: &mut Vec<(i64, i64)>) {
        if self.by_id.contains(&id) {
            return;
        }
        let held = make();
        // Another writer may have added the same id since: the first stays.
        if self.by_id.insert(ById(held.clone())) {
            added.push((held.created_micros(), held.id()));
            self.by_uid.insert(ByUid(held));
        }
    }

    fn index_ages(&self, added: Vec<(i64, i64)>) {
        self.by_age
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(added);
    }

    /// Compresses `plain`, orders taken plain before the first dictionary was trained (a few
    /// thousand), replacing each in both sets. While an order is being replaced, a lookup may
    /// not find it in memory and reads it from PostgreSQL.
    fn compress_plain(&self, plain: Vec<HeldOrder>) {
        let Some(compressor) = &self.compressor else {
            return;
        };
        for order in plain {
            let Some(json) = order.json() else {
                continue;
            };
            let Some(zstd) = compressor.compress_json(&json) else {
                continue;
            };
            let compressed = order.with_compressed(&zstd);
            // Only an order still held is replaced, under the age index's lock: an eviction
            // takes an order out of the index (under the lock) before it takes it out of the
            // sets, so an order still indexed is not being evicted, and cannot be until the
            // replacement is in.
            let by_age = self.by_age.lock().unwrap_or_else(PoisonError::into_inner);
            if !by_age.contains(&(order.created_micros(), order.id())) {
                continue;
            }
            if let Some(ById(held)) = self.by_id.remove(order.id_ref()) {
                // Another scan replaced it first: keep the one held.
                let replaced = if held.is_compressed() {
                    held
                } else {
                    compressed
                };
                self.by_uid.remove(order.order_uid());
                self.by_id.insert(ById(replaced.clone()));
                self.by_uid.insert(ByUid(replaced));
            }
            drop(by_age);
        }
    }

    /// The order with this id, if it is in memory.
    pub fn get_by_id(&self, id: i64) -> Option<HeldOrder> {
        self.by_id.get(&id).map(|entry| entry.0.clone())
    }

    /// The order with this uid, if it is in memory.
    pub fn get_by_uid(&self, order_uid: &str) -> Option<HeldOrder> {
        self.by_uid.get(order_uid).map(|entry| entry.0.clone())
    }

    /// Orders in memory.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Bytes of JSON served, the orders' own size (for the memory benchmark).
    pub fn json_bytes(&self) -> usize {
        self.by_id.iter().map(|entry| entry.0.json_len()).sum()
    }

    /// Bytes memory holds for the orders' JSON: the JSON itself, or its compressed frames.
    pub fn held_json_bytes(&self) -> usize {
        self.by_id.iter().map(|entry| entry.0.held_bytes()).sum()
    }

    /// Whether memory holds no order.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Evicts every order created before `created_before_micros` (if given), then the oldest
    /// orders until at most `limit` remain. Evicted orders stay in PostgreSQL.
    pub fn evict(&self, limit: usize, created_before_micros: Option<i64>) -> Evicted {
        let mut evicted = Evicted::default();
        loop {
            let mut chunk = Vec::new();
            {
                let mut by_age = self.by_age.lock().unwrap_or_else(PoisonError::into_inner);
                while chunk.len() < EVICTION_CHUNK {
                    let Some(&(created, id)) = by_age.first() else {
                        break;
                    };
                    if created_before_micros.is_some_and(|cutoff| created < cutoff) {
                        evicted.by_age += 1;
                    } else if by_age.len() > limit {
                        evicted.by_count += 1;
                    } else {
                        break;
                    }
                    by_age.pop_first();
                    chunk.push(id);
                }
            }
            if chunk.is_empty() {
                return evicted;
            }
            for id in chunk {
                self.remove(id);
            }
        }
    }

    /// Takes the order with `id` out of both sets.
    fn remove(&self, id: i64) {
        if let Some(ById(order)) = self.by_id.remove(&id) {
            self.by_uid.remove(order.order_uid());
        }
    }

    /// Evicts every order read from one of `partitions` (their leases were given up or lost;
    /// they stay in PostgreSQL). Returns how many. The set is scanned under its shards' read
    /// locks, and the orders removed a chunk at a time, as the sweeper removes them.
    pub fn evict_partitions(&self, partitions: &[i32]) -> usize {
        if partitions.is_empty() {
            return 0;
        }
        let doomed: Vec<(i64, i64)> = self
            .by_id
            .iter()
            .filter(|entry| partitions.contains(&entry.0.partition()))
            .map(|entry| (entry.0.created_micros(), entry.0.id()))
            .collect();
        for chunk in doomed.chunks(EVICTION_CHUNK) {
            {
                let mut by_age = self.by_age.lock().unwrap_or_else(PoisonError::into_inner);
                for key in chunk {
                    by_age.remove(key);
                }
            }
            for (_, id) in chunk {
                self.remove(*id);
            }
        }
        doomed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OrderJson;
    use bytes::Bytes;

    fn order(id: i64, created_micros: i64) -> ServedOrder {
        ServedOrder {
            id,
            order_uid: format!("uid-{id}").into(),
            partition: (id % 4) as i32,
            created_micros,
            json: OrderJson::Plain(Bytes::from(format!("{{\"id\":{id}}}"))),
        }
    }

    #[test]
    fn orders_are_found_by_id_and_uid() {
        let store = MemoryStore::new();
        store.insert_many([order(1, 10), order(2, 20)]);
        assert_eq!(store.len(), 2);
        assert_eq!(store.get_by_id(2).map(|o| o.id()), Some(2));
        assert_eq!(store.get_by_uid("uid-1").map(|o| o.id()), Some(1));
        assert!(store.get_by_id(3).is_none());
        assert!(store.get_by_uid("uid-3").is_none());
    }

    #[test]
    fn a_second_insert_of_an_id_keeps_the_first() {
        let store = MemoryStore::new();
        store.insert_many([order(1, 10)]);
        let mut changed = order(1, 99);
        changed.json = OrderJson::Plain(Bytes::from_static(b"{}"));
        store.insert_many([changed]);
        assert_eq!(store.len(), 1);
        assert_eq!(store.get_by_id(1).map(|o| o.created_micros()), Some(10));
        assert_eq!(
            store.evict(0, None),
            Evicted {
                by_count: 1,
                by_age: 0
            }
        );
        assert!(store.is_empty());
    }

    #[test]
    fn a_partition_given_up_leaves_memory_and_the_others_stay() {
        let store = MemoryStore::new();
        // Partitions 0..4 by id % 4: 250 orders each.
        store.insert_many((1..=1_000).map(|id| order(id, id)));
        assert_eq!(store.evict_partitions(&[1, 3]), 500);
        assert_eq!(store.len(), 500);
        assert!(store.get_by_id(1).is_none() && store.get_by_uid("uid-3").is_none());
        assert!(store.get_by_id(2).is_some() && store.get_by_uid("uid-4").is_some());
        assert_eq!(store.evict_partitions(&[1]), 0);
        // The age index lost them too: a sweep to 100 evicts exactly 400 more.
        assert_eq!(store.evict(100, None).by_count, 400);
    }

    #[test]
    fn a_compressed_store_serves_every_order_as_it_was_taken() {
        let store = MemoryStore::new().compressed();
        let mut rng = rand::rng();
        let now = chrono::Utc::now();
        let orders: Vec<ServedOrder> = (1..=3_000)
            .map(|id| {
                let (uid, json) = crate::fake_data::random_order_json(&mut rng, now);
                ServedOrder::new(id, 0, &uid, now, Bytes::from(json))
            })
            .collect();
        // In batches, as the batch writers take them: the dictionary is trained part-way.
        for batch in orders.chunks(700) {
            store.insert_many(batch.to_vec());
        }
        assert_eq!(store.len(), 3_000);
        for order in &orders {
            let held = store.get_by_id(order.id).expect("every order is held");
            assert!(held.is_compressed(), "order {} is still plain", order.id);
            assert_eq!(held.json(), order.json.to_bytes());
            let by_uid = store.get_by_uid(&order.order_uid).expect("found by uid");
            assert!(
                HeldOrder::same_record(&held, &by_uid),
                "the maps hold different copies"
            );
        }
        assert!(store.held_json_bytes() * 3 < store.json_bytes());
    }

    #[test]
    fn eviction_takes_the_oldest_first() {
        let store = MemoryStore::new();
        store.insert_many((1..=10_000).map(|id| order(id, 100_000 - id)));
        let evicted = store.evict(9_000, Some(100_000 - 9_990));
        // Ids 9_991..=10_000 are older than the cutoff; then 990 more go by count.
        assert_eq!(
            evicted,
            Evicted {
                by_count: 990,
                by_age: 10
            }
        );
        assert_eq!(store.len(), 9_000);
        assert!(store.get_by_id(10_000).is_none());
        assert!(store.get_by_uid("uid-9001").is_none());
        assert!(store.get_by_id(9_000).is_some());
        assert!(store.get_by_id(1).is_some());
        assert_eq!(store.evict(9_000, Some(0)), Evicted::default());
    }
}
