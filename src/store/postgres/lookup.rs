//! Reading one order by `id` or `order_uid`, for HTTP requests that memory cannot answer.

use chrono::{DateTime, Utc};

use super::{Database, DbError};
use crate::store::{RowOrder, ServedOrder};

impl Database {
    /// The stored order with this id, read from PostgreSQL.
    pub async fn order_by_id(&self, id: i64) -> Result<Option<ServedOrder>, DbError> {
        self.order_where(
            "SELECT id, kafka_partition, order_uid, date_created, body_text \
             FROM orders WHERE id = $1",
            &id,
        )
        .await
    }

    /// The stored order with this uid, read from PostgreSQL.
    pub async fn order_by_uid(&self, order_uid: &str) -> Result<Option<ServedOrder>, DbError> {
        self.order_where(
            "SELECT id, kafka_partition, order_uid, date_created, body_text \
             FROM orders WHERE order_uid = $1",
            &order_uid,
        )
        .await
    }

    async fn order_where(
        &self,
        query: &str,
        key: &(dyn tokio_postgres::types::ToSql + Sync),
    ) -> Result<Option<ServedOrder>, DbError> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(query).await?;
        match client.query_opt(&statement, &[key]).await? {
            Some(row) => Ok(Some(served_order(&row)?)),
            None => Ok(None),
        }
    }
}

/// A row of `id, kafka_partition, order_uid, date_created, body_text` as a lookup serves it:
/// [`row_order`]'s reading of the row, owned. The text is already the served form (see
/// [`crate::order::served_json`]), so nothing is parsed.
pub(super) fn served_order(row: &tokio_postgres::Row) -> Result<ServedOrder, DbError> {
    row_order(row).map(|order| order.to_served())
}

/// The same row, borrowed: for a restore, which memory copies once.
pub(super) fn row_order(row: &tokio_postgres::Row) -> Result<RowOrder<'_>, DbError> {
    let date_created: DateTime<Utc> = row.try_get(3)?;
    Ok(RowOrder {
        id: row.try_get(0)?,
        partition: row.try_get(1)?,
        order_uid: row.try_get(2)?,
        created_micros: date_created.timestamp_micros(),
        json: row.try_get::<_, &str>(4)?.as_bytes(),
    })
}
