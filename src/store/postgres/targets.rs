//! What `orderstore targets` reads: a random sample of the topic's stored orders, as the ids
//! and uids a load test asks for.
//!
//! The sample must be cheap on a table of millions of orders, so it does not sort the whole
//! table by `random()`. It asks `TABLESAMPLE SYSTEM` for about four times as many rows as
//! wanted, from the planner's row estimate (`pg_class.reltuples`): SYSTEM picks whole pages at
//! random and reads only those, so the cost follows the sample, not the table. Rows of one page
//! were stored together, which a load test does not mind; the sample is shuffled before it is
//! cut. When the sample comes up short (a small table, an estimate not yet made or stale,
//! other topics' orders on the sampled pages), the whole topic is sorted by `random()`
//! instead: on a small table that is cheap, and it always finds every order there is.
//!
//! Drawing ids at random in the id range was the other way: it is as cheap, but ids have
//! gaps (an identity value is spent by a conflicting insert too), so it would need retries and
//! still return fewer orders than asked whenever the gaps are many.

use super::{Database, DbError};

/// How many times more rows than wanted the page sample aims at, so that chance and other
/// topics' rows rarely leave it short.
const OVERSAMPLING: f64 = 4.0;

/// A stored order, as a load test names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampledOrder {
    /// Its id, for `/orders/{id}`.
    pub id: i64,
    /// Its `order_uid`, for `/orders/uid/{order_uid}`.
    pub order_uid: String,
}

impl Database {
    /// At most `count` distinct orders of this topic, drawn at random, in random order. Fewer
    /// only when the topic has fewer.
    pub async fn sample_orders(&self, count: i64) -> Result<Vec<SampledOrder>, DbError> {
        let client = self.pool.get().await?;
        let estimated_rows: f64 = client
            .query_one(
                "SELECT coalesce(max(reltuples), -1)::float8 FROM pg_class \
                 WHERE oid = to_regclass('orders')",
                &[],
            )
            .await?
            .try_get(0)?;
        // reltuples is -1 before the first ANALYZE; then the page sample cannot be sized.
        if estimated_rows > 0.0 {
            // SYSTEM takes a real, not a double.
            let percent = (count as f64 * OVERSAMPLING * 100.0 / estimated_rows).min(100.0) as f32;
            let rows = client
                .query(
                    "SELECT id, order_uid FROM orders TABLESAMPLE SYSTEM ($1) \
                     WHERE kafka_topic = $2 ORDER BY random() LIMIT $3",
                    &[&percent, &self.topic, &count],
                )
                .await?;
            if rows.len() as i64 == count {
                return sampled_orders(&rows);
            }
        }
        let rows = client
            .query(
                "SELECT id, order_uid FROM orders WHERE kafka_topic = $1 \
                 ORDER BY random() LIMIT $2",
                &[&self.topic, &count],
            )
            .await?;
        sampled_orders(&rows)
    }
}

/// The rows' `(id, order_uid)` as [`SampledOrder`]s.
fn sampled_orders(rows: &[tokio_postgres::Row]) -> Result<Vec<SampledOrder>, DbError> {
    rows.iter()
        .map(|row| {
            Ok(SampledOrder {
                id: row.try_get(0)?,
                order_uid: row.try_get(1)?,
            })
        })
        .collect()
}
