//! `admin retention apply`: removes calls and dead letters past `retention.*` and creates the
//! coming months' partitions of calls; the daily CronJob
//! (deploy/k8s/base/retention-cronjob.yaml) runs it. Progress on stderr, what was removed on
//! stdout.

use clap::Subcommand;
use shared::config::Settings;
use shared::store::retention::{self, Progress};
use sqlx::PgPool;

#[derive(Subcommand)]
pub enum Action {
    /// Apply retention.calls_days and retention.dead_letters_days (0 keeps for ever). Safe to
    /// interrupt and run again.
    Apply,
}

pub async fn run(action: Action, pool: &PgPool, settings: &Settings) -> anyhow::Result<()> {
    match action {
        Action::Apply => {
            let r = &settings.retention;
            eprintln!(
                "retention: calls {}, dead letters {}",
                kept(r.calls_days),
                kept(r.dead_letters_days)
            );
            let removed = retention::apply(pool, r, |step| eprintln!("{}", said(&step))).await?;
            println!(
                "removed {} call(s) ({} deleted row by row, about {} in {} dropped partition(s)), {} dead letter(s)",
                removed.calls_deleted + removed.calls_dropped,
                removed.calls_deleted,
                removed.calls_dropped,
                removed.partitions_dropped,
                removed.dead_letters
            );
            Ok(())
        }
    }
}

fn kept(days: u32) -> String {
    match days {
        0 => "kept for ever".into(),
        n => format!("kept {n} day(s)"),
    }
}

fn said(step: &Progress) -> String {
    match step {
        Progress::PartitionReady(name) => format!("partition {name} ready"),
        Progress::PartitionBusy(name) => {
            format!("partition {name}: calls stayed locked past retention.lock_timeout_ms; left for the next run")
        }
        Progress::CallsDeleted { partition, so_far } => {
            format!("{partition}: {so_far} call(s) deleted so far")
        }
        Progress::KeysDeleted { partition, so_far } => {
            format!("{partition}: keys of {so_far} call(s) deleted so far, before the drop")
        }
        Progress::PartitionDropped { partition, calls } => {
            format!("{partition}: dropped (about {calls} call(s))")
        }
        Progress::DeadLettersDeleted { so_far } => {
            format!("dead letters: {so_far} deleted so far")
        }
    }
}
