//! `admin erase`: an organisation's or one client's data removed on request, counted first.

use clap::Args;
use shared::config::Settings;
use shared::store::erasure::{self, Counts, Subject};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Args)]
pub struct EraseArgs {
    /// The organisation's id.
    #[arg(long)]
    organisation: Uuid,
    /// Only this client of the organisation: the id its calls give it (`client.id`).
    #[arg(long)]
    client: Option<String>,
    /// Count what would be erased; change nothing.
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(args: EraseArgs, pool: &PgPool, settings: &Settings) -> anyhow::Result<()> {
    let subject = match args.client {
        Some(external_id) => Subject::Client {
            organisation: args.organisation,
            external_id,
        },
        None => Subject::Organisation(args.organisation),
    };
    let found = erasure::count(pool, &subject).await?;
    println!("found {}", listed(&found));
    if args.dry_run {
        return Ok(());
    }
    let erased = erasure::erase(pool, &subject, settings.retention.batch_rows, |calls| {
        eprintln!("erased {calls} of about {} call(s)", found.calls)
    })
    .await?;
    println!("erased {}", listed(&erased));
    Ok(())
}

fn listed(c: &Counts) -> String {
    format!(
        "{} call(s), {} text(s), {} client(s), {} dead letter(s), {} queued note(s)",
        c.calls, c.texts, c.clients, c.dead_letters, c.queued_notes
    )
}
