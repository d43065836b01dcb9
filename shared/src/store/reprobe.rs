//! Probing stored calls' media again on purpose (a recording host that came back, a guard
//! that was too strict): the calls a filter selects, counted for a dry run, or paged through
//! by id and queued on the probe queue, one `ProbeWork` message per recording host a page.
//! The CLI and the admin API both go through here. A probe done twice is harmless, so a
//! reprobe killed midway is simply run again.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::broker::{BrokerError, ProbeTopology, PublishError, Publisher};
use crate::config::Settings;
use crate::domain::MediaStatus;
use crate::probe_work::{self, Probe};

/// Which calls to reprobe; every field narrows, none means every stored call.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filter {
    pub integration_id: Option<Uuid>,
    pub status: Option<MediaStatus>,
    /// Received by a gateway at or after this time.
    pub received_after: Option<DateTime<Utc>>,
    /// Received by a gateway before this time.
    pub received_before: Option<DateTime<Utc>>,
    /// Only calls whose id is greater: where a run bounded by `at_most` stopped
    /// ([`Reprobed::next_after`]).
    pub after: Option<Uuid>,
}

impl Filter {
    /// Appends ` WHERE ...` over the alias `c`.
    fn push_where(&self, q: &mut QueryBuilder<'_, Postgres>) {
        q.push(" WHERE true");
        if let Some(id) = self.integration_id {
            q.push(" AND c.integration_id = ").push_bind(id);
        }
        if let Some(status) = self.status {
            q.push(" AND c.media_status = ").push_bind(status.as_str());
        }
        if let Some(after) = self.received_after {
            q.push(" AND c.received_at >= ").push_bind(after);
        }
        if let Some(before) = self.received_before {
            q.push(" AND c.received_at < ").push_bind(before);
        }
        if let Some(after) = self.after {
            q.push(" AND c.id > ").push_bind(after);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReprobeError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("declaring the probe queues: {0}")]
    Declare(#[from] BrokerError),
    #[error("publishing: {0}")]
    Publish(#[from] PublishError),
}

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reprobed {
    /// Calls the filter selected when the run began.
    pub matched: u64,
    /// Probes queued (confirmed by the broker).
    pub queued: u64,
    /// Set when `at_most` stopped the run with calls left: the last call queued, to pass as
    /// [`Filter::after`] for the rest.
    pub next_after: Option<Uuid>,
}

/// How many calls a reprobe would take (a dry run).
pub async fn count(pool: &PgPool, filter: &Filter) -> Result<u64, sqlx::Error> {
    let mut q = QueryBuilder::new("SELECT count(*) FROM calls c");
    filter.push_where(&mut q);
    let n: i64 = q.build_query_scalar().fetch_one(pool).await?;
    Ok(n.unsigned_abs())
}

/// Queues a probe of every call `filter` selects onto `<prefix>.probes` (declared first),
/// `worker.replay_batch` probes a message, each page confirmed before the next is read.
/// Pages go by id, so calls changing meanwhile (their probes' results written back) neither
/// shift nor repeat a page; calls stored after the run began are left out, so that a run
/// over `pending` calls ends while calls keep arriving. `at_most` bounds the run; `progress`
/// hears (queued, total) before the first page and after each one.
pub async fn reprobe(
    pool: &PgPool,
    publisher: &Publisher,
    settings: &Settings,
    filter: &Filter,
    at_most: Option<u64>,
    mut progress: impl FnMut(u64, u64),
) -> Result<Reprobed, ReprobeError> {
    let started: DateTime<Utc> = sqlx::query_scalar("SELECT now()").fetch_one(pool).await?;
    let selected = |q: &mut QueryBuilder<'_, Postgres>, after: Option<Uuid>| {
        Filter {
            after: after.or(filter.after),
            ..filter.clone()
        }
        .push_where(q);
        q.push(" AND c.created_at < ").push_bind(started);
    };
    let mut q = QueryBuilder::new("SELECT count(*) FROM calls c");
    selected(&mut q, None);
    let matched: i64 = q.build_query_scalar().fetch_one(pool).await?;
    let matched = matched.unsigned_abs();
    let total = at_most.map_or(matched, |max| max.min(matched));
    let mut done = Reprobed {
        matched,
        queued: 0,
        next_after: None,
    };
    progress(0, total);
    if total == 0 {
        return Ok(done);
    }

    let topology = ProbeTopology::new(&settings.broker.queue_prefix, &settings.media);
    topology.declare_apart(&settings.broker, "reprobe").await?;
    let page = settings.worker.replay_batch.max(1) as u64;
    let mut last: Option<Uuid> = None;
    loop {
        let room = at_most.map_or(page, |max| (max - done.queued).min(page));
        if room == 0 {
            let mut q = QueryBuilder::new("SELECT EXISTS (SELECT 1 FROM calls c");
            selected(&mut q, last);
            q.push(")");
            let more: bool = q.build_query_scalar().fetch_one(pool).await?;
            done.next_after = last.filter(|_| more);
            break;
        }
        let mut q =
            QueryBuilder::new("SELECT c.id, c.integration_id, c.uid, c.media_url FROM calls c");
        selected(&mut q, last);
        q.push(" ORDER BY c.id LIMIT ")
            .push_bind(i64::try_from(room).unwrap_or(i64::MAX));
        let rows: Vec<(Uuid, Uuid, String, String)> = q.build_query_as().fetch_all(pool).await?;
        let Some((last_id, ..)) = rows.last() else {
            break;
        };
        last = Some(*last_id);
        let probes: Vec<Probe> = rows
            .into_iter()
            .map(|(_, integration_id, uid, media_url)| Probe {
                integration_id,
                uid,
                media_url,
                stored_at: started,
                attempts: 0,
                deferrals: 0,
                traceparent: None,
            })
            .collect();
        let count = probes.len() as u64;
        for work in probe_work::by_host(probes) {
            publisher
                .publish_probe_work(&topology.work_queue, &work.to_bytes())
                .await?;
        }
        done.queued += count;
        progress(done.queued, total);
        if count < room {
            break;
        }
    }
    Ok(done)
}
