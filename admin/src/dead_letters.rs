//! `admin dead-letters ...`: the same operations as the admin API, from a shell, with
//! progress on long replays.

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use shared::broker::Publisher;
use shared::config::Settings;
use shared::store::dead_letters::{self, Filter, Reason, Selection};
use sqlx::PgPool;
use uuid::Uuid;

use crate::progress;

#[derive(Subcommand)]
pub enum Action {
    /// Count by reason and list the newest that match (without their messages).
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// How many to list, newest first.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Print one dead letter whole, message included, as JSON.
    Show {
        /// The dead letter's id, as `list` prints it.
        #[arg(long)]
        id: Uuid,
    },
    /// Publish what matches back onto the work queue (confirmed), then retire it. Safe to
    /// interrupt and run again: a call replayed twice is stored once.
    Replay {
        #[command(flatten)]
        filter: FilterArgs,
        /// Say how many would be replayed; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete what matches, for good.
    Purge {
        #[command(flatten)]
        filter: FilterArgs,
        /// Needed to purge with no filter at all.
        #[arg(long)]
        all: bool,
        /// Say how many would be purged; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Every option narrows; none means every dead letter.
#[derive(Args)]
pub struct FilterArgs {
    /// One dead letter, by its id.
    #[arg(long)]
    id: Option<Uuid>,
    /// operator_not_found, operator_inactive, undecodable, retries_exhausted, poison,
    /// database_rejected, field_definitions_full or field_type_conflict.
    #[arg(long)]
    reason: Option<Reason>,
    /// Only this integration's.
    #[arg(long)]
    integration: Option<Uuid>,
    /// Only calls naming this operator (the call's operator_id).
    #[arg(long)]
    operator_id: Option<String>,
    /// Only the call with this uid.
    #[arg(long)]
    uid: Option<String>,
    /// Last failure at or after this time (RFC 3339, e.g. 2026-11-24T08:00:00Z).
    #[arg(long)]
    failed_after: Option<DateTime<Utc>>,
    /// Last failure before this time (RFC 3339).
    #[arg(long)]
    failed_before: Option<DateTime<Utc>>,
}

impl From<FilterArgs> for Filter {
    fn from(a: FilterArgs) -> Self {
        Filter {
            id: a.id,
            reason: a.reason,
            integration_id: a.integration,
            operator_id: a.operator_id,
            uid: a.uid,
            failed_after: a.failed_after,
            failed_before: a.failed_before,
        }
    }
}

pub async fn run(action: Action, pool: &PgPool, settings: &Settings) -> anyhow::Result<()> {
    match action {
        Action::List { filter, limit } => list(pool, &filter.into(), limit).await,
        Action::Show { id } => {
            let letter = dead_letters::get(pool, id)
                .await?
                .with_context(|| format!("no dead letter {id}"))?;
            println!("{}", serde_json::to_string_pretty(&letter)?);
            Ok(())
        }
        Action::Replay { filter, dry_run } => replay(pool, settings, &filter.into(), dry_run).await,
        Action::Purge {
            filter,
            all,
            dry_run,
        } => {
            let filter: Filter = filter.into();
            if filter.is_empty() && !all {
                anyhow::bail!("purging deletes dead letters for good: pass a filter, or --all");
            }
            if dry_run {
                let n = dead_letters::count(pool, Selection::Matching(&filter)).await?;
                println!("would purge {n} dead letter(s)");
            } else {
                let n = dead_letters::purge(pool, &filter).await?;
                println!("purged {n} dead letter(s)");
            }
            Ok(())
        }
    }
}

async fn list(pool: &PgPool, filter: &Filter, limit: i64) -> anyhow::Result<()> {
    let counts = dead_letters::counts(pool, filter).await?;
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    println!("{total} dead letter(s)");
    for (reason, n) in &counts {
        println!("  {reason:<20} {n}");
    }
    let page = dead_letters::list(pool, filter, limit.max(1), None).await?;
    if !page.is_empty() {
        println!();
        println!(
            "{:<36}  {:<18}  {:<20}  {:<24}  {:>8}  uid",
            "id", "reason", "last failed", "operator_id", "attempts"
        );
    }
    for d in &page {
        println!(
            "{:<36}  {:<18}  {:<20}  {:<24}  {:>8}  {}",
            d.id,
            d.reason,
            d.last_failed_at.format("%Y-%m-%d %H:%M:%S"),
            d.operator_id.as_deref().unwrap_or("-"),
            d.attempts,
            d.uid.as_deref().unwrap_or("-"),
        );
    }
    if page.len() as i64 == limit && total > limit {
        println!(
            "... {} more; narrow the filter or raise --limit",
            total - limit
        );
    }
    Ok(())
}

async fn replay(
    pool: &PgPool,
    settings: &Settings,
    filter: &Filter,
    dry_run: bool,
) -> anyhow::Result<()> {
    let selection = Selection::Matching(filter);
    let total = dead_letters::count(pool, selection).await?;
    if dry_run {
        println!("would replay {total} dead letter(s)");
        return Ok(());
    }
    let publisher = Publisher::new(settings.broker.clone(), "admin");
    let bar = progress::bar(total.max(0) as u64, "dead letters replayed")?;
    let replayed = dead_letters::replay(
        pool,
        &publisher,
        selection,
        settings.worker.replay_batch.max(1),
        None,
        |n| {
            // Letters that arrive during the run are replayed too: the bar grows with them.
            if n > bar.length().unwrap_or(0) {
                bar.set_length(n);
            }
            bar.set_position(n);
        },
    )
    .await;
    bar.finish_and_clear();
    println!("replayed {} dead letter(s)", replayed?);
    Ok(())
}
