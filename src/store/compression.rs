//! `MEMORY_COMPRESSION=zstd`: orders kept in memory as zstd frames compressed with a dictionary
//! trained on the orders themselves, so that a machine holds more orders in the same memory.
//!
//! Orders of one topic share their keys, their structure and many of their values, and a
//! single order is too short for a compressor to learn any of that from itself; a dictionary
//! trained on a few thousand of them carries it instead. The first [`SAMPLES`] orders memory
//! takes are kept as samples (copies, a few megabytes) and stay plain until the first
//! dictionary is trained from them; the store then compresses the ones it took plain.
//! Afterwards one order in [`SAMPLE_EVERY`] replaces the oldest sample, and every
//! [`RETRAIN_AFTER`] orders a new dictionary is trained from the recent samples, so the
//! dictionary follows the orders as they change. Each compressed order holds its dictionary
//! (an `Arc`), so an older dictionary lives exactly as long as orders compressed with it.
//!
//! Compression and decompression use one zstd context per thread, created on first use; a
//! dictionary is prepared once for both directions. Serving a compressed order decompresses
//! it (a few microseconds for an order); what that costs per request against nginx is in the
//! README's Performance table.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use zstd::zstd_safe::{self, CCtx, CDict, DCtx, DDict};

use super::ServedOrder;

/// Orders sampled to train a dictionary: zstd's guidance is about a hundred times the
/// dictionary's size in samples.
pub const SAMPLES: usize = 2_000;

/// After the first dictionary, one order in this many replaces the oldest sample.
pub const SAMPLE_EVERY: u64 = 64;

/// Orders compressed with one dictionary before the next is trained from recent samples.
pub const RETRAIN_AFTER: u64 = 1_000_000;

/// The largest dictionary trained.
const DICTIONARY_BYTES: usize = 32 * 1024;

/// zstd's level: 3 is its default, fast to compress; a dictionary does most of the work on
/// documents this short.
const LEVEL: i32 = 3;

/// An order's served JSON as memory holds it.
#[derive(Clone, PartialEq, Eq)]
pub enum OrderJson {
    /// The bytes themselves.
    Plain(Bytes),
    /// A zstd frame and the dictionary it needs.
    Zstd(ZstdJson),
}

impl std::fmt::Debug for OrderJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OrderJson::Plain(bytes) => f.debug_tuple("Plain").field(bytes).finish(),
            OrderJson::Zstd(zstd) => f
                .debug_struct("Zstd")
                .field("len", &zstd.len)
                .field("frame_bytes", &zstd.frame.len())
                .field("dictionary", &zstd.dictionary.generation)
                .finish(),
        }
    }
}

impl From<Bytes> for OrderJson {
    fn from(bytes: Bytes) -> Self {
        OrderJson::Plain(bytes)
    }
}

impl OrderJson {
    /// The served JSON's length.
    pub fn len(&self) -> usize {
        match self {
            OrderJson::Plain(bytes) => bytes.len(),
            OrderJson::Zstd(zstd) => zstd.len as usize,
        }
    }

    /// Whether the JSON is empty (never, for an order).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes memory holds for it: the JSON, or the frame.
    pub fn held_bytes(&self) -> usize {
        match self {
            OrderJson::Plain(bytes) => bytes.len(),
            OrderJson::Zstd(zstd) => zstd.frame.len(),
        }
    }

    /// The served JSON; `None` only if a frame does not decompress, which memory corruption
    /// alone could cause (the caller then reads the order from PostgreSQL).
    pub fn to_bytes(&self) -> Option<Bytes> {
        match self {
            OrderJson::Plain(bytes) => Some(bytes.clone()),
            OrderJson::Zstd(zstd) => zstd.decompress(),
        }
    }
}

/// A compressed order.
#[derive(Clone)]
pub struct ZstdJson {
    frame: Box<[u8]>,
    len: u32,
    dictionary: Arc<Dictionary>,
}

impl PartialEq for ZstdJson {
    fn eq(&self, other: &Self) -> bool {
        self.frame == other.frame
            && self.len == other.len
            && self.dictionary.generation == other.dictionary.generation
    }
}

impl Eq for ZstdJson {}

impl ZstdJson {
    fn decompress(&self) -> Option<Bytes> {
        decompress(&self.frame, self.len as usize, &self.dictionary)
    }

    /// The frame and its dictionary, for memory's held order.
    pub(super) fn parts(&self) -> (&[u8], &Arc<Dictionary>) {
        (&self.frame, &self.dictionary)
    }
}

/// The JSON's length, from the frame's header: zstd writes it there when compressing with a
/// prepared dictionary. `None` for a frame without it (never one of ours) or a corrupt one.
pub(super) fn frame_content_size(frame: &[u8]) -> Option<usize> {
    zstd_safe::get_frame_content_size(frame)
        .ok()
        .flatten()
        .and_then(|len| usize::try_from(len).ok())
}

/// The JSON of `len` bytes that `frame` holds, compressed with `dictionary`; `None` if it does
/// not decompress to exactly that.
pub(super) fn decompress(frame: &[u8], len: usize, dictionary: &Dictionary) -> Option<Bytes> {
    let mut json = Vec::with_capacity(len);
    let written = DECOMPRESSION.with_borrow_mut(|context| {
        context.decompress_using_ddict(&mut json, frame, &dictionary.decompress)
    });
    match written {
        Ok(n) if n == len => Some(Bytes::from(json)),
        _ => None,
    }
}

/// A trained dictionary, prepared for both directions.
pub struct Dictionary {
    /// Which training made it, counting from 1.
    generation: u64,
    compress: CDict<'static>,
    decompress: DDict<'static>,
}

thread_local! {
    static COMPRESSION: RefCell<CCtx<'static>> = RefCell::new(CCtx::create());
    static DECOMPRESSION: RefCell<DCtx<'static>> = RefCell::new(DCtx::create());
}

impl Dictionary {
    /// Trains a dictionary on `samples`; `None` when zstd cannot (too few or too alike).
    fn train(samples: &[Bytes], generation: u64) -> Option<Self> {
        let trained = zstd::dict::from_samples(samples, DICTIONARY_BYTES).ok()?;
        Some(Self {
            generation,
            compress: CDict::try_create(&trained, LEVEL)?,
            decompress: DDict::try_create(&trained)?,
        })
    }

    /// `json` compressed; `None` if zstd fails or the frame would not be smaller.
    fn compress(self: &Arc<Self>, json: &[u8]) -> Option<ZstdJson> {
        let len = u32::try_from(json.len()).ok()?;
        let mut frame = Vec::with_capacity(zstd_safe::compress_bound(json.len()));
        COMPRESSION
            .with_borrow_mut(|context| {
                context.compress_using_cdict(&mut frame, json, &self.compress)
            })
            .ok()?;
        (frame.len() < json.len()).then(|| ZstdJson {
            frame: frame.into_boxed_slice(),
            len,
            dictionary: Arc::clone(self),
        })
    }
}

/// What the compressor keeps between batches.
#[derive(Default)]
struct Training {
    current: Option<Arc<Dictionary>>,
    samples: Vec<Bytes>,
    /// Where the next sample goes once `samples` is full.
    oldest_sample: usize,
    /// Orders seen since the current dictionary was trained (or since the start).
    seen: u64,
    generations: u64,
}

/// Compresses the orders memory takes, training and retraining its dictionary.
#[derive(Default)]
pub struct Compressor {
    training: Mutex<Training>,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let generation = self.training().current.as_ref().map(|d| d.generation);
        f.debug_struct("Compressor")
            .field("dictionary", &generation)
            .finish()
    }
}

/// What compressing a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compressed {
    /// Compressed with the dictionary there was.
    WithDictionary,
    /// The first dictionary was trained with this batch: orders taken plain before it can be
    /// compressed now.
    FirstDictionary,
    /// No dictionary yet: the orders stay plain.
    NoDictionary,
}

impl Compressor {
    /// A compressor without a dictionary yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn training(&self) -> std::sync::MutexGuard<'_, Training> {
        self.training.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Samples `orders`, trains a dictionary when one is due, and compresses each plain order
    /// with the current dictionary (in place).
    pub fn compress(&self, orders: &mut [ServedOrder]) -> Compressed {
        let (dictionary, first) = {
            let mut training = self.training();
            for order in orders.iter() {
                training.seen += 1;
                let OrderJson::Plain(json) = &order.json else {
                    continue;
                };
                if training.samples.len() < SAMPLES {
                    training.samples.push(Bytes::copy_from_slice(json));
                } else if training.current.is_some() && training.seen.is_multiple_of(SAMPLE_EVERY) {
                    let oldest = training.oldest_sample;
                    training.samples[oldest] = Bytes::copy_from_slice(json);
                    training.oldest_sample = (oldest + 1) % SAMPLES;
                }
            }
            let due = match training.current {
                None => training.samples.len() >= SAMPLES,
                Some(_) => training.seen >= RETRAIN_AFTER,
            };
            let mut first = false;
            if due {
                let generation = training.generations + 1;
                match Dictionary::train(&training.samples, generation) {
                    Some(trained) => {
                        first = training.current.is_none();
                        training.current = Some(Arc::new(trained));
                        training.generations = generation;
                        training.seen = 0;
                    }
                    // Orders too alike or too few to train on: try again after as many more.
                    None => training.seen = 0,
                }
            }
            (training.current.clone(), first)
        };
        let Some(dictionary) = dictionary else {
            return Compressed::NoDictionary;
        };
        for order in orders.iter_mut() {
            if let OrderJson::Plain(json) = &order.json {
                if let Some(compressed) = dictionary.compress(json) {
                    order.json = OrderJson::Zstd(compressed);
                }
            }
        }
        if first {
            Compressed::FirstDictionary
        } else {
            Compressed::WithDictionary
        }
    }

    /// `json` compressed with the current dictionary, if there is one and it helps.
    pub fn compress_json(&self, json: &[u8]) -> Option<ZstdJson> {
        let dictionary = self.training().current.clone()?;
        dictionary.compress(json)
    }

    /// The current dictionary's generation (1 for the first), if one was trained.
    pub fn generation(&self) -> Option<u64> {
        self.training()
            .current
            .as_ref()
            .map(|dictionary| dictionary.generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orders(n: usize, first_id: i64) -> Vec<ServedOrder> {
        let mut rng = rand::rng();
        let now = chrono::Utc::now();
        (0..n)
            .map(|index| {
                let (uid, json) = crate::fake_data::random_order_json(&mut rng, now);
                ServedOrder::new(first_id + index as i64, 0, &uid, now, Bytes::from(json))
            })
            .collect()
    }

    #[test]
    fn orders_stay_plain_until_a_dictionary_is_trained_then_compress_and_read_back() {
        let compressor = Compressor::new();
        let mut first = orders(SAMPLES - 1, 1);
        assert_eq!(compressor.compress(&mut first), Compressed::NoDictionary);
        assert!(first
            .iter()
            .all(|order| matches!(order.json, OrderJson::Plain(_))));
        let mut second = orders(100, 10_000);
        let originals: Vec<Bytes> = second
            .iter()
            .filter_map(|order| order.json.to_bytes())
            .collect();
        assert_eq!(
            compressor.compress(&mut second),
            Compressed::FirstDictionary
        );
        assert_eq!(compressor.generation(), Some(1));
        let plain_bytes: usize = originals.iter().map(Bytes::len).sum();
        let held_bytes: usize = second.iter().map(|order| order.json.held_bytes()).sum();
        assert!(
            held_bytes * 3 < plain_bytes,
            "compressed to {held_bytes} of {plain_bytes} bytes"
        );
        for (order, original) in second.iter().zip(&originals) {
            assert!(matches!(order.json, OrderJson::Zstd(_)));
            assert_eq!(order.json.len(), original.len());
            assert_eq!(order.json.to_bytes().as_ref(), Some(original));
        }
        // A plain order of before the dictionary compresses now, and reads back the same.
        let plain = first[0].json.to_bytes().expect("plain");
        let again = compressor
            .compress_json(&plain)
            .expect("the first order compresses with the dictionary");
        assert_eq!(OrderJson::Zstd(again).to_bytes(), Some(plain));
    }

    #[test]
    fn a_new_dictionary_is_trained_after_enough_orders_and_old_frames_keep_theirs() {
        let compressor = Compressor::new();
        let mut kept = orders(SAMPLES, 1);
        compressor.compress(&mut kept);
        assert_eq!(compressor.generation(), Some(1));
        // Pretend a million orders went by since.
        compressor.training().seen = RETRAIN_AFTER - 1;
        let mut later = orders(10, 1_000_000);
        assert_eq!(compressor.compress(&mut later), Compressed::WithDictionary);
        assert_eq!(compressor.generation(), Some(2));
        // Orders compressed with the first dictionary still read back.
        assert!(kept.iter().all(|order| order
            .json
            .to_bytes()
            .is_some_and(|json| json.starts_with(b"{"))));
    }

    #[test]
    fn a_corrupt_frame_reads_as_missing_not_as_wrong_bytes() {
        let compressor = Compressor::new();
        let mut batch = orders(SAMPLES, 1);
        compressor.compress(&mut batch);
        let OrderJson::Zstd(mut zstd) = batch[0].json.clone() else {
            panic!("the order was not compressed");
        };
        let mut frame = zstd.frame.to_vec();
        let middle = frame.len() / 2;
        frame[middle] ^= 0xFF;
        frame.truncate(frame.len() - 3);
        zstd.frame = frame.into_boxed_slice();
        assert_eq!(OrderJson::Zstd(zstd).to_bytes(), None);
    }
}
