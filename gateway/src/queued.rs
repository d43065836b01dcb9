//! Notes of accepted calls, so GET can say "queued" before a worker has stored one. Written
//! in batches off the request path: a lost note only means GET says 404 until the call is
//! stored, while a database write per request would cap throughput.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::mpsc;
use uuid::Uuid;

const BATCH: usize = 1000;

pub struct QueuedNote {
    pub ingest_id: Uuid,
    pub integration_id: Uuid,
    pub uid: String,
    pub received_at: DateTime<Utc>,
}

#[derive(Clone)]
pub struct QueuedNotes {
    tx: mpsc::Sender<QueuedNote>,
}

impl QueuedNotes {
    /// Spawns the writer; it ends when every sender is dropped, after a last flush.
    pub fn spawn(pool: PgPool) -> Self {
        let (tx, rx) = mpsc::channel(10 * BATCH);
        tokio::spawn(write_batches(pool, rx));
        Self { tx }
    }

    pub fn note(&self, note: QueuedNote) {
        if self.tx.try_send(note).is_err() {
            tracing::debug!("queued-notes buffer full, note dropped");
        }
    }
}

async fn write_batches(pool: PgPool, mut rx: mpsc::Receiver<QueuedNote>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        if let Err(e) = insert(&pool, &batch).await {
            tracing::warn!(error = %e, notes = batch.len(), "could not record queued calls");
        }
        batch.clear();
    }
}

async fn insert(pool: &PgPool, batch: &[QueuedNote]) -> Result<(), sqlx::Error> {
    let ingest: Vec<Uuid> = batch.iter().map(|n| n.ingest_id).collect();
    let integration: Vec<Uuid> = batch.iter().map(|n| n.integration_id).collect();
    let uid: Vec<&str> = batch.iter().map(|n| n.uid.as_str()).collect();
    let received: Vec<DateTime<Utc>> = batch.iter().map(|n| n.received_at).collect();
    sqlx::query(
        "INSERT INTO queued_calls (ingest_id, integration_id, uid, received_at)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[])
         ON CONFLICT DO NOTHING",
    )
    .bind(&ingest)
    .bind(&integration)
    .bind(&uid)
    .bind(&received)
    .execute(pool)
    .await?;
    // A worker may have handled a call before its note was written, even while the insert
    // above ran: its own delete then found nothing, and the note would never be cleared.
    // Checked after the insert committed, so a worker that committed first is seen here.
    sqlx::query(
        "DELETE FROM queued_calls q WHERE q.ingest_id = ANY($1) AND (
            EXISTS (SELECT 1 FROM call_keys k
                      JOIN calls c ON c.id = k.call_id AND c.created_at = k.created_at
                      WHERE k.integration_id = q.integration_id AND k.uid = q.uid
                        AND (c.received_at, c.ingest_id) >= (q.received_at, q.ingest_id))
            OR EXISTS (SELECT 1 FROM dead_letters d WHERE d.ingest_id = q.ingest_id))",
    )
    .bind(&ingest)
    .execute(pool)
    .await?;
    Ok(())
}
