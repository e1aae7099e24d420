//! The notification outbox in the coordinator's database (SQLite or PostgreSQL through the same
//! `Any` pool as the ledger). See `migrations/*/20261207200000_notify_outbox.sql`.

use sqlx::{AnyPool, Row};

use super::event::Change;

/// A row waiting for delivery.
#[derive(Clone, Debug)]
pub struct Pending {
    /// Funnel.
    pub funnel: String,
    /// Ledger sequence.
    pub seq: u64,
    /// Idempotency key.
    pub id: String,
    /// What to say.
    pub change: Change,
    /// Attempts made so far.
    pub attempts: u32,
}

/// Counts of one sink's rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Waiting (including retries).
    pub pending: u64,
    /// Given up after `max_attempts`.
    pub failed: u64,
    /// Delivered.
    pub delivered: u64,
}

/// Outbox errors (always the database's).
#[derive(Debug, thiserror::Error)]
#[error("notification outbox: {op}: {source}")]
pub struct OutboxError {
    op: &'static str,
    #[source]
    source: sqlx::Error,
}

fn err(op: &'static str) -> impl FnOnce(sqlx::Error) -> OutboxError {
    move |source| OutboxError { op, source }
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The outbox tables.
#[derive(Clone, Debug)]
pub struct Outbox {
    pool: AnyPool,
}

impl Outbox {
    /// On the store's pool (the tables come with the store's migrations).
    pub fn new(pool: AnyPool) -> Self {
        Outbox { pool }
    }

    /// The last ledger sequence of `funnel` already considered for `sink`.
    pub async fn cursor(&self, sink: &str, funnel: &str) -> Result<Option<u64>, OutboxError> {
        let row = sqlx::query("SELECT last_seq FROM notify_cursor WHERE sink = $1 AND funnel = $2")
            .bind(sink.to_string())
            .bind(funnel.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(err("read cursor"))?;
        row.map(|r| r.try_get::<i64, _>("last_seq").map(|v| v.max(0) as u64))
            .transpose()
            .map_err(err("read cursor"))
    }

    /// Queue `changes` for `sink` and move its cursor of `funnel` to `last_seq`, in one
    /// transaction. A change already queued is left alone.
    pub async fn enqueue(
        &self,
        sink: &str,
        funnel: &str,
        changes: &[Change],
        last_seq: u64,
        now_ms: i64,
    ) -> Result<(), OutboxError> {
        let mut tx = self.pool.begin().await.map_err(err("begin"))?;
        for c in changes {
            let json = serde_json::to_string(c).unwrap_or_default();
            sqlx::query(
                "INSERT INTO notify_outbox (sink, funnel, seq, id, change, status, attempts, next_attempt_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $7) ON CONFLICT (sink, funnel, seq) DO NOTHING",
            )
            .bind(sink.to_string())
            .bind(funnel.to_string())
            .bind(i(c.sequence))
            .bind(c.id.clone())
            .bind(json)
            .bind(now_ms)
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(err("enqueue"))?;
        }
        sqlx::query(
            "INSERT INTO notify_cursor (sink, funnel, last_seq) VALUES ($1, $2, $3) \
             ON CONFLICT (sink, funnel) DO UPDATE SET last_seq = excluded.last_seq",
        )
        .bind(sink.to_string())
        .bind(funnel.to_string())
        .bind(i(last_seq))
        .execute(&mut *tx)
        .await
        .map_err(err("move cursor"))?;
        tx.commit().await.map_err(err("commit"))
    }

    /// Rows of `sink` due at `now_ms`, oldest change first.
    pub async fn due(
        &self,
        sink: &str,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<Pending>, OutboxError> {
        let rows = sqlx::query(
            "SELECT funnel, seq, id, change, attempts FROM notify_outbox \
             WHERE sink = $1 AND status = 'pending' AND next_attempt_at <= $2 \
             ORDER BY created_at ASC, funnel ASC, seq ASC LIMIT $3",
        )
        .bind(sink.to_string())
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(err("read due notifications"))?;
        let mut out = Vec::new();
        for r in rows {
            let funnel: String = r.try_get("funnel").map_err(err("read due notifications"))?;
            let seq: i64 = r.try_get("seq").map_err(err("read due notifications"))?;
            let id: String = r.try_get("id").map_err(err("read due notifications"))?;
            let change: String = r.try_get("change").map_err(err("read due notifications"))?;
            let attempts: i64 = r
                .try_get("attempts")
                .map_err(err("read due notifications"))?;
            match serde_json::from_str::<Change>(&change) {
                Ok(change) => out.push(Pending {
                    funnel,
                    seq: seq.max(0) as u64,
                    id,
                    change,
                    attempts: u32::try_from(attempts.max(0)).unwrap_or(u32::MAX),
                }),
                Err(error) => {
                    tracing::error!(sink, funnel = %funnel, seq, %error, "unreadable outbox row: marking it failed");
                    self.finish(
                        sink,
                        &funnel,
                        seq.max(0) as u64,
                        false,
                        Some(&format!("unreadable row: {error}")),
                        now_ms,
                    )
                    .await?;
                }
            }
        }
        Ok(out)
    }

    /// Record a delivery (`delivered`) or a final failure.
    pub async fn finish(
        &self,
        sink: &str,
        funnel: &str,
        seq: u64,
        delivered: bool,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<(), OutboxError> {
        sqlx::query(
            "UPDATE notify_outbox SET status = $1, attempts = attempts + 1, last_error = $2, delivered_at = $3 \
             WHERE sink = $4 AND funnel = $5 AND seq = $6",
        )
        .bind(if delivered { "delivered" } else { "failed" })
        .bind(error.map(str::to_string))
        .bind(if delivered { Some(now_ms) } else { None })
        .bind(sink.to_string())
        .bind(funnel.to_string())
        .bind(i(seq))
        .execute(&self.pool)
        .await
        .map_err(err("record delivery"))?;
        Ok(())
    }

    /// Record a failed attempt and when to try again.
    pub async fn retry_at(
        &self,
        sink: &str,
        funnel: &str,
        seq: u64,
        error: &str,
        next_ms: i64,
    ) -> Result<(), OutboxError> {
        sqlx::query(
            "UPDATE notify_outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2 \
             WHERE sink = $3 AND funnel = $4 AND seq = $5",
        )
        .bind(error.to_string())
        .bind(next_ms)
        .bind(sink.to_string())
        .bind(funnel.to_string())
        .bind(i(seq))
        .execute(&self.pool)
        .await
        .map_err(err("record failed attempt"))?;
        Ok(())
    }

    /// Row counts of a sink.
    pub async fn counts(&self, sink: &str) -> Result<Counts, OutboxError> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM notify_outbox WHERE sink = $1 GROUP BY status",
        )
        .bind(sink.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(err("count notifications"))?;
        let mut c = Counts::default();
        for r in rows {
            let status: String = r.try_get("status").map_err(err("count notifications"))?;
            let n: i64 = r.try_get("n").map_err(err("count notifications"))?;
            let n = n.max(0) as u64;
            match status.as_str() {
                "pending" => c.pending = n,
                "failed" => c.failed = n,
                _ => c.delivered = n,
            }
        }
        Ok(c)
    }
}
