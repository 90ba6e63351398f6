//! `rejected_records` as the dead-letter topic's outbox: the rejects ready to be published
//! (`published_at IS NULL`, at or below their partition's stored `next_offset`), marking them
//! published once the broker acknowledged them, and deleting published ones past their
//! retention; and as operators look at it: a page of
//! rejects, one reject whole, a count per kind. A record's headers are kept in one `bytea`
//! in orderstore's own form: per header, the name's length (4 bytes, big-endian), the name,
//! the value's length, the value.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Database, DbError};

/// A rejected record waiting for the dead-letter topic, as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingReject {
    /// Its source partition.
    pub partition: i32,
    /// Its source offset.
    pub offset: i64,
    /// Its value as it arrived (decoded from hex where PostgreSQL made it keep them so).
    pub value: Vec<u8>,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its headers.
    pub headers: BTreeMap<String, Vec<u8>>,
    /// Why it was rejected: `path: rule`.
    pub reason: String,
    /// The kind of rejection, where it was recorded (not by orderstore before version 7).
    pub kind: Option<String>,
    /// When it was recorded.
    pub rejected_at: DateTime<Utc>,
}

/// Which rejects a page lists, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RejectFilter {
    /// Only this kind of rejection.
    pub kind: Option<String>,
    /// Only this source partition.
    pub partition: Option<i32>,
    /// Only rejects with a smaller id (the cursor: the last id of the page before).
    pub before: Option<i64>,
    /// At most this many.
    pub limit: usize,
}

/// A reject as a list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectRow {
    /// Its id in `rejected_records`.
    pub id: i64,
    /// Its source partition.
    pub partition: i32,
    /// Its source offset.
    pub offset: i64,
    /// The kind of rejection (`unclassified` for one recorded before kinds were).
    pub kind: String,
    /// Why: `path: rule`.
    pub reason: String,
    /// When it was recorded.
    pub rejected_at: DateTime<Utc>,
    /// When the dead-letter topic's broker acknowledged it.
    pub published_at: Option<DateTime<Utc>>,
    /// Bytes of the record's value.
    pub size: i64,
}

/// A reject whole: its row, and the record as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectDetail {
    /// What a list shows of it.
    pub row: RejectRow,
    /// The record's value (decoded from hex where it was kept so).
    pub value: Vec<u8>,
    /// Whether PostgreSQL refused the bytes and `raw` holds their hex digits.
    pub kept_in_hex: bool,
    /// The record's key.
    pub key: Option<Vec<u8>>,
    /// The record's headers.
    pub headers: BTreeMap<String, Vec<u8>>,
}

/// How many rejects of one kind, and when the first and the last were recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindCount {
    /// The kind.
    pub kind: String,
    /// How many.
    pub count: i64,
    /// The first.
    pub first_seen: DateTime<Utc>,
    /// The last.
    pub last_seen: DateTime<Utc>,
}

/// The rejects of the topic, summed up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectSummary {
    /// Every reject kept.
    pub total: i64,
    /// Those not yet published to the dead-letter topic.
    pub pending: i64,
    /// Per kind, the most frequent first.
    pub kinds: Vec<KindCount>,
}

/// The columns a [`RejectRow`] is read from, by [`reject_row`].
const ROW_COLUMNS: &str = "id, kafka_partition, kafka_offset, \
    coalesce(reason_kind, 'unclassified'), reason, rejected_at, published_at, octet_length(raw), \
    raw_encoding";

fn reject_row(row: &tokio_postgres::Row) -> Result<RejectRow, DbError> {
    let encoding: &str = row.try_get(8)?;
    let stored: i32 = row.try_get(7)?;
    Ok(RejectRow {
        id: row.try_get(0)?,
        partition: row.try_get(1)?,
        offset: row.try_get(2)?,
        kind: row.try_get(3)?,
        reason: row.try_get(4)?,
        rejected_at: row.try_get(5)?,
        published_at: row.try_get(6)?,
        size: if encoding == "hex" {
            i64::from(stored) / 2
        } else {
            i64::from(stored)
        },
    })
}

/// Headers in their stored form; `None` for none.
pub fn encode_headers(headers: &BTreeMap<String, Vec<u8>>) -> Option<Vec<u8>> {
    if headers.is_empty() {
        return None;
    }
    let mut encoded = Vec::new();
    for (name, value) in headers {
        for part in [name.as_bytes(), value.as_slice()] {
            let length = u32::try_from(part.len()).unwrap_or(u32::MAX);
            encoded.extend_from_slice(&length.to_be_bytes());
            encoded.extend_from_slice(part);
        }
    }
    Some(encoded)
}

/// Headers back from their stored form; what cannot be read (it was not written by
/// [`encode_headers`]) ends the list.
pub fn decode_headers(mut encoded: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let next = |encoded: &mut &[u8]| -> Option<Vec<u8>> {
        let (length, rest) = encoded.split_first_chunk::<4>()?;
        let length = usize::try_from(u32::from_be_bytes(*length)).ok()?;
        let part = rest.get(..length)?.to_vec();
        *encoded = &rest[length..];
        Some(part)
    };
    let mut headers = BTreeMap::new();
    while let (Some(name), Some(value)) = (next(&mut encoded), next(&mut encoded)) {
        headers.insert(String::from_utf8_lossy(&name).into_owned(), value);
    }
    headers
}

/// The bytes as lower-case hex digits: the form `raw` keeps a record's bytes in when
/// PostgreSQL refused them as they were (`raw_encoding = 'hex'`).
pub fn hex_digits(bytes: &[u8]) -> Vec<u8> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = Vec::with_capacity(bytes.len() * 2);
    for byte in bytes {
        hex.push(DIGITS[usize::from(byte >> 4)]);
        hex.push(DIGITS[usize::from(byte & 0x0f)]);
    }
    hex
}

/// The bytes as a string of lower-case hex digits, as the reject routes and CLI show them.
pub fn hex_text(bytes: &[u8]) -> String {
    hex_digits(bytes).into_iter().map(char::from).collect()
}

/// The bytes of lower-case (or upper-case) hex digits; `None` if they are not hex.
fn from_hex(digits: &[u8]) -> Option<Vec<u8>> {
    let value = |digit: u8| char::from(digit).to_digit(16);
    digits
        .chunks(2)
        .map(|pair| match pair {
            [high, low] => Some(u8::try_from(value(*high)? * 16 + value(*low)?).ok()?),
            _ => None,
        })
        .collect()
}

/// The rejects to publish, oldest first, and only those at or below their partition's stored
/// `next_offset`, read in the same statement (one snapshot). Batches of one partition commit
/// out of order (several batch writers), so a reject committed is not yet in order: a lower
/// one may still be on its way. Below `next_offset` every record is durable, so every reject
/// there is committed and visible; the reject at `next_offset` is the lowest record in flight,
/// and its row exists only once committed. Nothing published can be followed by a lower
/// reject of the same partition.
const PENDING_REJECTS: &str = "\
SELECT reject.kafka_partition, reject.kafka_offset, raw, raw_encoding, raw_key, raw_headers,
       reason, rejected_at, reason_kind
FROM rejected_records AS reject
JOIN kafka_offsets AS stored
  ON stored.kafka_topic = reject.kafka_topic
 AND stored.kafka_partition = reject.kafka_partition
WHERE reject.kafka_topic = $1 AND reject.kafka_partition = ANY($2)
  AND reject.published_at IS NULL AND reject.kafka_offset <= stored.next_offset
ORDER BY reject.kafka_partition, reject.kafka_offset
LIMIT $3";

impl Database {
    /// The oldest `limit` rejects of `partitions` not yet published and in order to publish
    /// (at or below their partition's stored `next_offset`), by partition and offset.
    pub async fn pending_rejects(
        &self,
        partitions: &[i32],
        limit: usize,
    ) -> Result<Vec<PendingReject>, DbError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                PENDING_REJECTS,
                &[
                    &self.topic,
                    &partitions,
                    &i64::try_from(limit).unwrap_or(i64::MAX),
                ],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let raw: Vec<u8> = row.try_get(2)?;
                let encoding: &str = row.try_get(3)?;
                let headers: Option<Vec<u8>> = row.try_get(5)?;
                Ok(PendingReject {
                    partition: row.try_get(0)?,
                    offset: row.try_get(1)?,
                    value: match encoding {
                        "hex" => from_hex(&raw).unwrap_or(raw),
                        _ => raw,
                    },
                    key: row.try_get(4)?,
                    headers: headers.as_deref().map(decode_headers).unwrap_or_default(),
                    reason: row.try_get(6)?,
                    rejected_at: row.try_get(7)?,
                    kind: row.try_get(8)?,
                })
            })
            .collect()
    }

    /// A page of this topic's rejects, newest first.
    pub async fn list_rejects(&self, filter: &RejectFilter) -> Result<Vec<RejectRow>, DbError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {ROW_COLUMNS} FROM rejected_records \
                     WHERE kafka_topic = $1 \
                       AND ($2::text IS NULL OR coalesce(reason_kind, 'unclassified') = $2) \
                       AND ($3::integer IS NULL OR kafka_partition = $3) \
                       AND ($4::bigint IS NULL OR id < $4) \
                     ORDER BY id DESC LIMIT $5"
                ),
                &[
                    &self.topic,
                    &filter.kind,
                    &filter.partition,
                    &filter.before,
                    &i64::try_from(filter.limit).unwrap_or(i64::MAX),
                ],
            )
            .await?;
        rows.iter().map(reject_row).collect()
    }

    /// One reject of this topic, whole.
    pub async fn reject_by_id(&self, id: i64) -> Result<Option<RejectDetail>, DbError> {
        let client = self.pool.get().await?;
        let Some(row) = client
            .query_opt(
                &format!(
                    "SELECT {ROW_COLUMNS}, raw, raw_key, raw_headers FROM rejected_records \
                     WHERE kafka_topic = $1 AND id = $2"
                ),
                &[&self.topic, &id],
            )
            .await?
        else {
            return Ok(None);
        };
        let kept_in_hex = row.try_get::<_, &str>(8)? == "hex";
        let raw: Vec<u8> = row.try_get(9)?;
        let headers: Option<Vec<u8>> = row.try_get(11)?;
        Ok(Some(RejectDetail {
            row: reject_row(&row)?,
            value: if kept_in_hex {
                from_hex(&raw).unwrap_or(raw)
            } else {
                raw
            },
            kept_in_hex,
            key: row.try_get(10)?,
            headers: headers.as_deref().map(decode_headers).unwrap_or_default(),
        }))
    }

    /// This topic's rejects summed up per kind.
    pub async fn reject_summary(&self) -> Result<RejectSummary, DbError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT coalesce(reason_kind, 'unclassified'), count(*), min(rejected_at), \
                        max(rejected_at), count(*) FILTER (WHERE published_at IS NULL) \
                 FROM rejected_records WHERE kafka_topic = $1 \
                 GROUP BY 1 ORDER BY 2 DESC, 1",
                &[&self.topic],
            )
            .await?;
        let mut summary = RejectSummary {
            total: 0,
            pending: 0,
            kinds: Vec::with_capacity(rows.len()),
        };
        for row in &rows {
            let count: i64 = row.try_get(1)?;
            summary.total += count;
            summary.pending += row.try_get::<_, i64>(4)?;
            summary.kinds.push(KindCount {
                kind: row.try_get(0)?,
                count,
                first_seen: row.try_get(2)?,
                last_seen: row.try_get(3)?,
            });
        }
        Ok(summary)
    }

    /// Lets the reject at `partition`/`offset` pass under `ON_REJECT=halt` from the next
    /// start on; `false` if no reject is recorded there.
    pub async fn approve_skip(&self, partition: i32, offset: i64) -> Result<bool, DbError> {
        let client = self.pool.get().await?;
        let updated = client
            .execute(
                "UPDATE rejected_records SET skip_approved_at = coalesce(skip_approved_at, now()) \
                 WHERE kafka_topic = $1 AND kafka_partition = $2 AND kafka_offset = $3",
                &[&self.topic, &partition, &offset],
            )
            .await?;
        Ok(updated > 0)
    }

    /// The rejects an operator let pass (`orderstore rejects skip`), as (partition, offset).
    pub async fn approved_skips(&self) -> Result<Vec<(i32, i64)>, DbError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT kafka_partition, kafka_offset FROM rejected_records \
                 WHERE kafka_topic = $1 AND skip_approved_at IS NOT NULL",
                &[&self.topic],
            )
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }

    /// Marks the rejects of `partition` at `offsets` published.
    pub async fn mark_published(&self, partition: i32, offsets: &[i64]) -> Result<(), DbError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "UPDATE rejected_records SET published_at = now() \
                 WHERE kafka_topic = $1 AND kafka_partition = $2 AND kafka_offset = ANY($3) \
                 AND published_at IS NULL",
                &[&self.topic, &partition, &offsets],
            )
            .await?;
        Ok(())
    }

    /// Deletes up to `limit` rejects published more than `retention` ago (a small batch, so
    /// the deletion never holds many locks for long). Returns how many.
    pub async fn delete_published_rejects(
        &self,
        retention: Duration,
        limit: usize,
    ) -> Result<u64, DbError> {
        let client = self.pool.get().await?;
        let millis = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        Ok(client
            .execute(
                "DELETE FROM rejected_records WHERE id IN ( \
                     SELECT id FROM rejected_records \
                     WHERE kafka_topic = $1 \
                       AND published_at < now() - $2::bigint * interval '1 millisecond' \
                     LIMIT $3)",
                &[
                    &self.topic,
                    &millis,
                    &i64::try_from(limit).unwrap_or(i64::MAX),
                ],
            )
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_come_back_as_they_were_stored() {
        let headers = BTreeMap::from([
            ("trace".to_string(), b"abc".to_vec()),
            ("bytes".to_string(), vec![0, 255, 10]),
            ("empty".to_string(), Vec::new()),
        ]);
        let encoded = encode_headers(&headers).unwrap_or_default();
        assert_eq!(decode_headers(&encoded), headers);
        assert_eq!(encode_headers(&BTreeMap::new()), None);
        // A cut-off encoding keeps what it holds whole.
        assert_eq!(decode_headers(&encoded[..encoded.len() - 1]).len(), 2);
    }

    #[test]
    fn hex_digits_spell_every_byte() {
        assert_eq!(hex_digits(b"\x00\xffAz"), b"00ff417a");
        assert!(hex_digits(b"").is_empty());
        assert_eq!(hex_text(b"\x00\xffA"), "00ff41");
    }

    #[test]
    fn hex_digits_turn_back_into_bytes() {
        assert_eq!(from_hex(b"00ff7a"), Some(vec![0, 255, 0x7a]));
        assert_eq!(from_hex(b"0g"), None);
        assert_eq!(from_hex(b"abc"), None);
    }
}
