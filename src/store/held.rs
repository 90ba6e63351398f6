//! One order as memory holds it: a 64-byte shared record (id, age, partition, dictionary) and
//! one exactly sized block of bytes, the `order_uid` followed by the JSON or its zstd frame.
//!
//! Memory is what an in-memory store costs. A million orders of about 1.3 KB each were held in
//! four allocations apiece (the order's `Arc`, its uid, its JSON, and the JSON's shared header
//! once served) from mimalloc, whose size classes are a quarter of a power of two apart: a
//! 1,321-byte JSON took a 1,536-byte block. Here the record is one mimalloc block of exactly
//! 64 bytes, and the bytes come from the system allocator (glibc rounds to 16 bytes), through
//! allocator-api2's `Box<[u8], System>`, so no unsafe code is needed; docs/store-size.md has
//! the figures. A held order never changes once made.

use std::sync::Arc;

use allocator_api2::alloc::System;
use allocator_api2::boxed::Box as SystemBox;
use allocator_api2::vec::Vec as SystemVec;
use bytes::Bytes;

use super::compression::{decompress, frame_content_size, Dictionary, ZstdJson};
use super::{OrderJson, RowOrder, ServedOrder};

/// An order in memory. Cloning it clones an `Arc`.
#[derive(Clone)]
pub struct HeldOrder(Arc<Record>);

/// What a held order is: 64 bytes with the `Arc`'s counts, so mimalloc's 64-byte class fits it
/// exactly (a test checks the size).
struct Record {
    id: i64,
    created_micros: i64,
    /// The dictionary the body was compressed with; `None`: the body is the JSON itself.
    dictionary: Option<Arc<Dictionary>>,
    /// The uid's bytes, then the body's.
    bytes: SystemBox<[u8], System>,
    partition: i32,
    /// A uid has at most 64 characters (`order::rules`).
    uid_len: u8,
}

impl HeldOrder {
    /// The order as memory holds it: plain, or compressed if the compressor compressed it.
    pub fn from_served(order: &ServedOrder) -> Self {
        let (body, dictionary) = match &order.json {
            OrderJson::Plain(json) => (&json[..], None),
            OrderJson::Zstd(zstd) => {
                let (frame, dictionary) = zstd.parts();
                (frame, Some(Arc::clone(dictionary)))
            }
        };
        Self::new(
            (order.id, order.created_micros, order.partition),
            &order.order_uid,
            body,
            dictionary,
        )
    }

    /// An order read from PostgreSQL, held plain.
    pub fn from_row(order: &RowOrder<'_>) -> Self {
        Self::new(
            (order.id, order.created_micros, order.partition),
            order.order_uid,
            order.json,
            None,
        )
    }

    /// The same order with its body compressed as `zstd`.
    pub fn with_compressed(&self, zstd: &ZstdJson) -> Self {
        let (frame, dictionary) = zstd.parts();
        Self::new(
            (self.id(), self.created_micros(), self.partition()),
            self.order_uid(),
            frame,
            Some(Arc::clone(dictionary)),
        )
    }

    fn new(
        (id, created_micros, partition): (i64, i64, i32),
        order_uid: &str,
        body: &[u8],
        dictionary: Option<Arc<Dictionary>>,
    ) -> Self {
        // The contract's uids have at most 64 characters; a longer one (never stored) would be
        // cut to what a u8 counts, and only its lookups by uid would miss memory.
        let uid = &order_uid.as_bytes()[..order_uid.len().min(usize::from(u8::MAX))];
        let mut bytes = SystemVec::with_capacity_in(uid.len() + body.len(), System);
        bytes.extend_from_slice(uid);
        bytes.extend_from_slice(body);
        Self(Arc::new(Record {
            id,
            created_micros,
            dictionary,
            bytes: bytes.into_boxed_slice(),
            partition,
            uid_len: uid.len() as u8,
        }))
    }

    /// The id PostgreSQL gave the order.
    pub fn id(&self) -> i64 {
        self.0.id
    }

    /// The id, borrowed (for memory's set by id).
    pub fn id_ref(&self) -> &i64 {
        &self.0.id
    }

    /// The order's unique key.
    pub fn order_uid(&self) -> &str {
        let uid = &self.0.bytes[..usize::from(self.0.uid_len)];
        // Copied from a `str` and cut at most at byte 255 of an ASCII uid: always UTF-8.
        std::str::from_utf8(uid).unwrap_or_default()
    }

    /// The Kafka partition it was read from.
    pub fn partition(&self) -> i32 {
        self.0.partition
    }

    /// `date_created`, in microseconds since the Unix epoch.
    pub fn created_micros(&self) -> i64 {
        self.0.created_micros
    }

    /// Whether the body is a zstd frame.
    pub fn is_compressed(&self) -> bool {
        self.0.dictionary.is_some()
    }

    /// Whether `a` and `b` are the same record (not only equal orders).
    pub fn same_record(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }

    /// The body: the JSON, or its zstd frame.
    fn body(&self) -> &[u8] {
        &self.0.bytes[usize::from(self.0.uid_len)..]
    }

    /// The bytes held for the JSON: the JSON, or its frame.
    pub fn held_bytes(&self) -> usize {
        self.body().len()
    }

    /// The served JSON's length (read from the frame's header, when compressed).
    pub fn json_len(&self) -> usize {
        match self.0.dictionary {
            None => self.body().len(),
            Some(_) => frame_content_size(self.body()).unwrap_or(0),
        }
    }

    /// The served JSON; a plain order's is shared with memory, not copied. `None` only if a
    /// frame does not decompress, which memory corruption alone could cause (the caller then
    /// reads the order from PostgreSQL).
    pub fn json(&self) -> Option<Bytes> {
        match &self.0.dictionary {
            None => Some(Bytes::from_owner(PlainJson(self.clone()))),
            Some(dictionary) => {
                let len = frame_content_size(self.body())?;
                decompress(self.body(), len, dictionary)
            }
        }
    }
}

/// A plain order's JSON, lent to `Bytes` for as long as the response needs it.
struct PlainJson(HeldOrder);

impl AsRef<[u8]> for PlainJson {
    fn as_ref(&self) -> &[u8] {
        self.0.body()
    }
}

impl std::fmt::Debug for HeldOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldOrder")
            .field("id", &self.id())
            .field("order_uid", &self.order_uid())
            .field("partition", &self.partition())
            .field("created_micros", &self.created_micros())
            .field("held_bytes", &self.held_bytes())
            .field("compressed", &self.is_compressed())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(id: i64, uid: &str, json: &str) -> ServedOrder {
        ServedOrder {
            id,
            order_uid: uid.into(),
            partition: 3,
            created_micros: 1_700_000_000_000_000 + id,
            json: OrderJson::Plain(Bytes::copy_from_slice(json.as_bytes())),
        }
    }

    #[test]
    fn a_record_fills_mimallocs_64_byte_class_exactly() {
        // The `Arc`'s two counts and the record.
        assert_eq!(16 + std::mem::size_of::<Record>(), 64);
    }

    #[test]
    fn a_plain_order_reads_back_whole() {
        let held = HeldOrder::from_served(&served(7, "uid-7", r#"{"a":"é"}"#));
        assert_eq!(held.id(), 7);
        assert_eq!(held.order_uid(), "uid-7");
        assert_eq!(held.partition(), 3);
        assert_eq!(held.created_micros(), 1_700_000_000_000_007);
        assert!(!held.is_compressed());
        assert_eq!((held.json_len(), held.held_bytes()), (10, 10));
        assert_eq!(held.json().as_deref(), Some(r#"{"a":"é"}"#.as_bytes()));
        let empty = HeldOrder::from_served(&served(8, "", ""));
        assert_eq!(
            (empty.order_uid(), empty.json().as_deref()),
            ("", Some(&b""[..]))
        );
    }

    #[test]
    fn served_json_outlives_the_held_order() {
        let held = HeldOrder::from_served(&served(1, "uid-1", r#"{"n":1}"#));
        let json = held.json().expect("plain");
        let again = held.clone();
        assert!(HeldOrder::same_record(&held, &again));
        drop((held, again));
        assert_eq!(&json[..], b"{\"n\":1}");
    }
}
