//! Automatic replay: calls set aside because their operator was unknown or inactive go back
//! onto the work queue as soon as that operator is bound and active, with nobody asking.
//!
//! A binding import notifies `callq_bindings` on commit; every worker listens and replays
//! what became attributable. Notifications are not durable (a worker may be restarting, a
//! call may be set aside while the import commits), so a sweep also runs every
//! `worker.auto_replay_interval_ms`. Workers share the work through `SKIP LOCKED`.

use std::future::Future;
use std::time::Duration;

use shared::broker::Publisher;
use shared::store::bindings::BINDINGS_CHANNEL;
use shared::store::dead_letters::{self, Selection};
use sqlx::postgres::PgListener;
use sqlx::PgPool;

use crate::metrics::Metrics;
use crate::operators::Operators;

/// After a failed sweep or a lost listener, before trying again.
const PAUSE_AFTER_ERROR: Duration = Duration::from_secs(1);

pub struct AutoReplay {
    pub pool: PgPool,
    /// LISTEN needs a session of its own: `database.direct_url` past a transaction pooler.
    pub listener_pool: PgPool,
    pub publisher: Publisher,
    pub metrics: Metrics,
    /// Cleared on every import notification, so a deactivation counts at once.
    pub operators: Operators,
    pub interval: Duration,
    pub batch: usize,
}

impl AutoReplay {
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut listener: Option<PgListener> = None;
        loop {
            if listener.is_none() {
                listener = self.listen().await;
            }
            let pause = match self.sweep().await {
                Ok(_) => self.interval,
                Err(e) => {
                    tracing::warn!(error = %e, "automatic replay failed; trying again");
                    PAUSE_AFTER_ERROR
                }
            };
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(pause) => {}
                notified = next_notification(&mut listener) => {
                    self.operators.forget_all();
                    if let Err(e) = notified {
                        tracing::warn!(error = %e, "lost the bindings listener; sweeping on a timer meanwhile");
                        listener = None;
                        tokio::time::sleep(PAUSE_AFTER_ERROR).await;
                    }
                }
            }
        }
    }

    async fn listen(&self) -> Option<PgListener> {
        let mut listener = PgListener::connect_with(&self.listener_pool).await.ok()?;
        listener.listen(BINDINGS_CHANNEL).await.ok()?;
        Some(listener)
    }

    async fn sweep(&self) -> Result<u64, dead_letters::ReplayError> {
        let replayed = dead_letters::replay(
            &self.pool,
            &self.publisher,
            Selection::Rebound,
            self.batch,
            None,
            |n| tracing::info!(replayed = n, "replaying calls whose operator is now bound"),
        )
        .await?;
        self.metrics.replayed.inc_by(replayed);
        Ok(replayed)
    }
}

/// Never resolves without a listener: the timer alone drives sweeps then.
async fn next_notification(listener: &mut Option<PgListener>) -> Result<(), sqlx::Error> {
    match listener {
        Some(listener) => listener.recv().await.map(|_| ()),
        None => std::future::pending().await,
    }
}
