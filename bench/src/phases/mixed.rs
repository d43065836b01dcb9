//! Calls and chats posted together, with both services running: a quarter of the connections
//! post chats to `.../text`, the rest calls to `.../phone_calls`, until every accepted call
//! and chat is stored. Both travel on one queue and are written by one worker.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::watch::{self, WorkerMetrics};
use crate::fixture::Fixture;
use crate::load::{self, Target};
use crate::processes::Service;
use crate::report::{Mixed, Rate};

const POLL_EVERY: Duration = Duration::from_millis(200);
/// Stored chats that stop growing for this long mean the run is stuck.
const STALL: Duration = Duration::from_secs(60);

pub async fn run(
    fixture: &Fixture,
    worker: SocketAddr,
    calls: (Arc<Target>, Vec<Bytes>),
    chats: (Arc<Target>, Vec<Bytes>),
    concurrency: usize,
    services: &[&Service],
) -> anyhow::Result<Mixed> {
    sqlx::query("TRUNCATE text_parts, text_communications")
        .execute(&fixture.pool)
        .await
        .context("truncate texts")?;
    let metrics = WorkerMetrics::at(worker).await;
    let chat_connections = (concurrency / 4).max(1);
    let call_connections = concurrency.saturating_sub(chat_connections).max(1);
    let (call_load, chat_load) = tokio::try_join!(
        load::run(calls.0, Arc::new(calls.1), call_connections),
        load::run(chats.0, Arc::new(chats.1), chat_connections),
    )?;
    let calls_stored_at =
        watch::wait_for_rows(fixture, &metrics, call_load.accepted, services).await?;
    let chats_stored_at = wait_for_chats(fixture, chat_load.accepted, services).await?;
    let started_at = call_load.started_at.min(chat_load.started_at);
    let last = calls_stored_at.max(chats_stored_at);
    let elapsed = (last - started_at).to_std().unwrap_or_default();
    let parts = fixture.count("SELECT count(*) FROM text_parts").await?;
    Ok(Mixed {
        calls: Rate::new(call_load.accepted, elapsed),
        chats: Rate::new(chat_load.accepted, elapsed),
        chat_parts_stored: parts,
        call_errors: call_load.errors,
        chat_errors: chat_load.errors,
        call_latency: call_load.latencies.summary(),
        chat_latency: chat_load.latencies.summary(),
        dead_letters: fixture.count("SELECT count(*) FROM dead_letters").await?,
    })
}

/// When the last of `expected` chats was stored.
async fn wait_for_chats(
    fixture: &Fixture,
    expected: usize,
    services: &[&Service],
) -> anyhow::Result<DateTime<Utc>> {
    let expected = i64::try_from(expected)?;
    let (mut last_count, mut since) = (-1, std::time::Instant::now());
    loop {
        let (count, last): (i64, Option<DateTime<Utc>>) =
            sqlx::query_as("SELECT count(*), max(updated_at) FROM text_communications")
                .fetch_one(&fixture.pool)
                .await
                .context("count chats")?;
        if count >= expected {
            return Ok(last.unwrap_or_else(Utc::now));
        }
        for service in services {
            service.check_alive()?;
        }
        if count != last_count {
            (last_count, since) = (count, std::time::Instant::now());
        } else if since.elapsed() > STALL {
            bail!(
                "stuck at {count} of {expected} chats stored for {STALL:?}; see the worker's log"
            );
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}
