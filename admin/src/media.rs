//! `admin media ...`: the media admin API's operations from a shell, with a progress bar on
//! long reprobes.

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use shared::broker::Publisher;
use shared::config::Settings;
use shared::domain::MediaStatus;
use shared::store::reprobe::{self, Filter};
use sqlx::PgPool;
use uuid::Uuid;

use crate::progress;

#[derive(Subcommand)]
pub enum Action {
    /// Queue the media probes of stored calls again (confirmed), e.g. once a recording host
    /// is back. Safe to interrupt and run again: a call probed twice is harmless.
    Reprobe {
        #[command(flatten)]
        filter: FilterArgs,
        /// Say how many calls would be reprobed; queue nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Every option narrows; none means every stored call.
#[derive(Args)]
pub struct FilterArgs {
    /// Only this integration's calls.
    #[arg(long)]
    integration: Option<Uuid>,
    /// The media status: pending, reachable, unreachable or refused.
    #[arg(long)]
    status: Option<MediaStatus>,
    /// Received at or after this time (RFC 3339, e.g. 2026-11-24T08:00:00Z).
    #[arg(long)]
    received_after: Option<DateTime<Utc>>,
    /// Received before this time (RFC 3339).
    #[arg(long)]
    received_before: Option<DateTime<Utc>>,
}

impl From<FilterArgs> for Filter {
    fn from(a: FilterArgs) -> Self {
        Filter {
            integration_id: a.integration,
            status: a.status,
            received_after: a.received_after,
            received_before: a.received_before,
            after: None,
        }
    }
}

pub async fn run(action: Action, pool: &PgPool, settings: &Settings) -> anyhow::Result<()> {
    match action {
        Action::Reprobe { filter, dry_run } => {
            let filter: Filter = filter.into();
            if dry_run {
                let n = reprobe::count(pool, &filter).await?;
                println!("{n} calls would be reprobed");
                return Ok(());
            }
            let publisher = Publisher::new(settings.broker.clone(), "admin");
            let bar = progress::bar(0, "probes queued")?;
            let done = reprobe::reprobe(pool, &publisher, settings, &filter, None, |n, total| {
                bar.set_length(total);
                bar.set_position(n);
            })
            .await;
            bar.finish_and_clear();
            println!("queued {} probes", done?.queued);
            Ok(())
        }
    }
}
