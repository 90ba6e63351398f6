//! The in-memory order store: a DashMap by `id` and a DashSet by `order_uid` sharing one `Arc`
//! per order (the set's entries are the orders themselves, found by their uid, so a uid is held
//! once, in its order), and an age index that lets the sweeper find the oldest orders without
//! scanning.
//!
//! HTTP reads take a map shard's read lock for the time of a hash lookup and clone the `Arc`
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
use std::sync::{Arc, Mutex, PoisonError};

use dashmap::mapref::entry::Entry;
use dashmap::{DashMap, DashSet};

use super::compression::{Compressed, Compressor};
use super::{OrderJson, ServedOrder};

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

/// The maps' hasher: aHash, keyed at random per process, faster than the
/// standard SipHash on these short keys and still not predictable from outside.
type Hasher = ahash::RandomState;

/// An order in the set by uid: it hashes and compares as its `order_uid`, and lends it out
/// (`Borrow<str>`), so the set finds it by a `&str` and holds eight bytes per order.
#[derive(Debug, Clone)]
struct ByUid(Arc<ServedOrder>);

impl Hash for ByUid {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As `str` hashes, which `Borrow<str>` requires.
        self.0.order_uid.as_ref().hash(state);
    }
}

impl PartialEq for ByUid {
    fn eq(&self, other: &Self) -> bool {
        self.0.order_uid == other.0.order_uid
    }
}

impl Eq for ByUid {}

impl Borrow<str> for ByUid {
    fn borrow(&self) -> &str {
        &self.0.order_uid
    }
}

/// The in-memory order store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    by_id: DashMap<i64, Arc<ServedOrder>, Hasher>,
    by_uid: DashSet<ByUid, Hasher>,
    /// `(created_micros, id)` of every order in the maps, oldest first.
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
    /// orders it will load, and growing maps of a million entries step by step rehashes them
    /// all several times over.
    pub fn with_capacity(n_orders: usize) -> Self {
        Self {
            by_id: DashMap::with_capacity_and_hasher(n_orders, Hasher::default()),
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
        let compressed = match &self.compressor {
            Some(compressor) => {
                let mut orders: Vec<ServedOrder> = orders.into_iter().collect();
                let compressed = compressor.compress(&mut orders);
                self.insert_prepared(orders);
                compressed
            }
            None => {
                self.insert_prepared(orders);
                return;
            }
        };
        if compressed == Compressed::FirstDictionary {
            self.compress_plain_orders();
        }
    }

    fn insert_prepared(&self, orders: impl IntoIterator<Item = ServedOrder>) {
        let mut added = Vec::new();
        for order in orders {
            if let Entry::Vacant(vacant) = self.by_id.entry(order.id) {
                let order = Arc::new(order);
                vacant.insert(Arc::clone(&order));
                added.push((order.created_micros, order.id));
                self.by_uid.insert(ByUid(order));
            }
        }
        self.by_age
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(added);
    }

    /// Compresses the orders taken plain before the first dictionary was trained (a few
    /// thousand), replacing each in both maps. A batch another writer inserts plain while this
    /// scan runs stays plain: it is served the same, and is at most one batch.
    fn compress_plain_orders(&self) {
        let Some(compressor) = &self.compressor else {
            return;
        };
        let plain: Vec<i64> = self
            .by_id
            .iter()
            .filter(|entry| matches!(entry.value().json, OrderJson::Plain(_)))
            .map(|entry| *entry.key())
            .collect();
        for id in plain {
            let Some(order) = self.get_by_id(id) else {
                continue;
            };
            let Some(compressed) = compressor.compress_one(&order) else {
                continue;
            };
            let compressed = Arc::new(compressed);
            // Only an order still held is replaced: a sweep may have evicted it meanwhile.
            if let Some(mut held) = self.by_id.get_mut(&id) {
                *held = Arc::clone(&compressed);
                // The set keeps an equal entry it holds: take the plain one out first.
                self.by_uid.remove(compressed.order_uid.as_ref());
                self.by_uid.insert(ByUid(compressed));
            }
        }
    }

    /// The order with this id, if it is in memory.
    pub fn get_by_id(&self, id: i64) -> Option<Arc<ServedOrder>> {
        self.by_id.get(&id).map(|entry| Arc::clone(entry.value()))
    }

    /// The order with this uid, if it is in memory.
    pub fn get_by_uid(&self, order_uid: &str) -> Option<Arc<ServedOrder>> {
        self.by_uid.get(order_uid).map(|entry| Arc::clone(&entry.0))
    }

    /// Orders in memory.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Bytes of JSON served, the orders' own size (for the memory benchmark).
    pub fn json_bytes(&self) -> usize {
        self.by_id
            .iter()
            .map(|entry| entry.value().json.len())
            .sum()
    }

    /// Bytes memory holds for the orders' JSON: the JSON itself, or its compressed frames.
    pub fn held_json_bytes(&self) -> usize {
        self.by_id
            .iter()
            .map(|entry| entry.value().json.held_bytes())
            .sum()
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
                if let Some((_, order)) = self.by_id.remove(&id) {
                    self.by_uid.remove(order.order_uid.as_ref());
                }
            }
        }
    }

    /// Evicts every order read from one of `partitions` (their leases were given up or lost;
    /// they stay in PostgreSQL). Returns how many. The maps are scanned under their shards'
    /// read locks, and the orders removed a chunk at a time, as the sweeper removes them.
    pub fn evict_partitions(&self, partitions: &[i32]) -> usize {
        if partitions.is_empty() {
            return 0;
        }
        let doomed: Vec<(i64, i64)> = self
            .by_id
            .iter()
            .filter(|entry| partitions.contains(&entry.value().partition))
            .map(|entry| (entry.value().created_micros, entry.value().id))
            .collect();
        for chunk in doomed.chunks(EVICTION_CHUNK) {
            {
                let mut by_age = self.by_age.lock().unwrap_or_else(PoisonError::into_inner);
                for key in chunk {
                    by_age.remove(key);
                }
            }
            for (_, id) in chunk {
                if let Some((_, order)) = self.by_id.remove(id) {
                    self.by_uid.remove(order.order_uid.as_ref());
                }
            }
        }
        doomed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(store.get_by_id(2).map(|o| o.id), Some(2));
        assert_eq!(store.get_by_uid("uid-1").map(|o| o.id), Some(1));
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
        assert_eq!(store.get_by_id(1).map(|o| o.created_micros), Some(10));
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
            assert!(
                matches!(held.json, OrderJson::Zstd(_)),
                "order {} is still plain",
                order.id
            );
            assert_eq!(held.json.to_bytes(), order.json.to_bytes());
            let by_uid = store.get_by_uid(&order.order_uid).expect("found by uid");
            assert!(
                Arc::ptr_eq(&held, &by_uid),
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
