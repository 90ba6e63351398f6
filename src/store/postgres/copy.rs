//! The binary COPY encoder for `orders`: one stream per batch, cut into chunks, shared by the
//! batch writer and the benchmark's PostgreSQL ceiling so that both load the very same bytes.

use bytes::{BufMut, Bytes, BytesMut};

use super::IncomingOrder;

/// The statement the stream of [`encode_copy`] is for.
pub const COPY_ORDERS: &str = "\
COPY orders
    (id, order_uid, date_created, body, body_text, kafka_topic, kafka_partition, kafka_offset)
FROM STDIN (FORMAT binary)";

/// PostgreSQL's binary format counts timestamps in microseconds since 2000-01-01.
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Size at which a chunk of COPY data is sent. Chunks this size come from the allocator's
/// reused pools and reach PostgreSQL while the next is encoded; one buffer for a whole batch
/// (megabytes) would be fresh memory each time, which the kernel has to map and zero.
const COPY_CHUNK_BYTES: usize = 256 << 10;

/// Encodes orders as a binary COPY stream for the columns of `COPY_ORDERS`, with the given
/// ids, in chunks of about `COPY_CHUNK_BYTES`: no per-row round trip or allocation.
pub fn encode_copy<'a>(
    topic: &'a str,
    orders: &'a [IncomingOrder<'a>],
    ids: &'a [i64],
) -> impl Iterator<Item = Bytes> + 'a {
    const FIELDS: i16 = 8;
    let mut rows = orders.iter().zip(ids).peekable();
    let mut header = true;
    let mut finished = false;
    std::iter::from_fn(move || {
        if finished {
            return None;
        }
        // Room for one more ordinary row past the mark, so a chunk is not reallocated.
        let mut out = BytesMut::with_capacity(COPY_CHUNK_BYTES + (16 << 10));
        if header {
            out.put_slice(b"PGCOPY\n\xff\r\n\0");
            out.put_i32(0); // flags
            out.put_i32(0); // header extension length
            header = false;
        }
        while out.len() < COPY_CHUNK_BYTES {
            let Some((row, id)) = rows.next() else {
                break;
            };
            let order = row.order;
            out.put_i16(FIELDS);
            out.put_i32(8);
            out.put_i64(*id);
            put_text(&mut out, order.order_uid().as_bytes());
            out.put_i32(8);
            out.put_i64(order.date_created().timestamp_micros() - POSTGRES_EPOCH_MICROS);
            out.put_i32(i32::try_from(order.json().len() + 1).unwrap_or(i32::MAX));
            out.put_u8(1); // jsonb format version
            out.put_slice(order.json());
            put_text(&mut out, order.json());
            put_text(&mut out, topic.as_bytes());
            out.put_i32(4);
            out.put_i32(row.partition);
            out.put_i32(8);
            out.put_i64(row.offset);
        }
        if rows.peek().is_none() {
            out.put_i16(-1); // trailer
            finished = true;
        }
        Some(out.freeze())
    })
}

fn put_text(out: &mut BytesMut, text: &[u8]) {
    out.put_i32(i32::try_from(text.len()).unwrap_or(i32::MAX));
    out.put_slice(text);
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn copy_stream(orders: &[IncomingOrder<'_>], ids: &[i64]) -> Vec<Bytes> {
        encode_copy("orders", orders, ids).collect()
    }

    #[test]
    fn copy_data_is_one_stream_cut_into_chunks() {
        let now = Utc::now();
        let mut rng = rand::rng();
        let orders = crate::fake_data::random_parsed_orders(&mut rng, 300, now);
        assert_eq!(orders.len(), 300, "generated orders are valid");
        let rows: Vec<IncomingOrder<'_>> = orders
            .iter()
            .enumerate()
            .map(|(index, order)| IncomingOrder {
                order,
                partition: 3,
                offset: index as i64,
            })
            .collect();
        let ids: Vec<i64> = (1..=300).collect();
        let chunks = copy_stream(&rows, &ids);

        assert!(chunks.len() > 1, "300 orders take more than one chunk");
        for chunk in &chunks[..chunks.len() - 1] {
            assert!(
                chunk.len() >= COPY_CHUNK_BYTES,
                "only the last chunk is short"
            );
        }
        let stream: Vec<u8> = chunks.concat();
        assert!(stream.starts_with(b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0"));
        // Walk the rows: 8 fields each, lengths as written, then the trailer and nothing more.
        let mut at = 19;
        let mut n_rows = 0;
        let field_len = |at: usize| {
            let mut bytes = [0; 4];
            bytes.copy_from_slice(&stream[at..at + 4]);
            i32::from_be_bytes(bytes)
        };
        while i16::from_be_bytes([stream[at], stream[at + 1]]) == 8 {
            at += 2;
            let id_at = at + 4;
            assert_eq!(
                i64::from(field_len(id_at)) << 32 | i64::from(field_len(id_at + 4) as u32),
                ids[n_rows]
            );
            for _ in 0..8 {
                at += 4 + field_len(at) as usize;
            }
            n_rows += 1;
        }
        assert_eq!(n_rows, 300);
        assert_eq!(&stream[at..], &[0xff, 0xff]);

        let empty = copy_stream(&[], &[]);
        assert_eq!(empty.len(), 1);
        assert_eq!(empty[0].len(), 19 + 2);
    }
}
