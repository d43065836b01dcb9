//! `admin integration ...`: list integrations, show one, change its settings after creation.

use clap::builder::NonEmptyStringValueParser;
use clap::{ArgGroup, Args, Subcommand};
use serde_json::{json, Value};
use shared::config::Settings;
use shared::store::integrations::{self, Changes, IntegrationInfo, SuccessStatus};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Subcommand)]
pub enum Action {
    /// List integrations: organisation, name, success status, token age, bindings.
    List {
        /// Only this organisation's integrations.
        #[arg(long)]
        organisation: Option<Uuid>,
        /// Print JSON (an array) instead of a table, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Show one integration's settings and URL.
    Show {
        /// The integration's id.
        id: Uuid,
        /// Print JSON instead of text, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Change an integration's settings. Gateways read them through their auth cache: a
    /// change answers there within auth.cache_ttl_secs.
    Set(SetArgs),
}

#[derive(Args)]
#[command(group(ArgGroup::new("change").required(true).multiple(true)))]
pub struct SetArgs {
    /// The integration's id.
    id: Uuid,
    /// Answer a call's POST with 200, for clients written against the real API.
    #[arg(long, group = "change", conflicts_with = "answer_202")]
    answer_200: bool,
    /// Answer a call's POST with 202 (the default of new integrations).
    #[arg(long, group = "change")]
    answer_202: bool,
    /// Refuse a call or text of an unknown or inactive operator at once with the real API's
    /// 422 (for clients that import the binding and post again).
    #[arg(long, group = "change", conflicts_with = "replay_unknown_operators")]
    qolio_compatible: bool,
    /// Set a call or text of an unknown or inactive operator aside and replay it once the
    /// operator is bound (the default of new integrations).
    #[arg(long, group = "change")]
    replay_unknown_operators: bool,
    /// Rename the integration (unique within its organisation).
    #[arg(long, group = "change", value_parser = NonEmptyStringValueParser::new())]
    name: Option<String>,
    /// Print the result as JSON instead of text, for scripts.
    #[arg(long)]
    json: bool,
}

impl SetArgs {
    fn changes(&self) -> Changes {
        let success_status = if self.answer_200 {
            Some(SuccessStatus::Ok200)
        } else if self.answer_202 {
            Some(SuccessStatus::Accepted202)
        } else {
            None
        };
        let qolio_compatible = if self.qolio_compatible {
            Some(true)
        } else if self.replay_unknown_operators {
            Some(false)
        } else {
            None
        };
        Changes {
            name: self.name.clone(),
            success_status,
            qolio_compatible,
        }
    }
}

pub async fn run(action: Action, pool: &PgPool, settings: &Settings) -> anyhow::Result<()> {
    let base = &settings.http.public_base_url;
    match action {
        Action::List { organisation, json } => {
            let all = integrations::list(pool, organisation).await?;
            if json {
                let all: Vec<Value> = all.iter().map(|i| document(i, base)).collect();
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                print_table(&all);
            }
        }
        Action::Show { id, json } => {
            let found = integrations::get(pool, id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no integration {id}"))?;
            print_one(&found, base, json)?;
        }
        Action::Set(args) => {
            let updated = integrations::update(pool, args.id, &args.changes()).await?;
            print_one(&updated, base, args.json)?;
            eprintln!(
                "gateways answer with the new settings within auth.cache_ttl_secs ({} s)",
                settings.auth.cache_ttl_secs
            );
        }
    }
    Ok(())
}

fn document(i: &IntegrationInfo, base: &str) -> Value {
    let mut doc = serde_json::to_value(i).unwrap_or_default();
    doc["url"] = json!(integrations::url(base, i.id));
    doc
}

fn print_one(i: &IntegrationInfo, base: &str, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&document(i, base))?);
        return Ok(());
    }
    let time = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    for (label, value) in [
        ("id", i.id.to_string()),
        ("name", i.name.clone()),
        (
            "organisation",
            format!("{} ({})", i.organisation, i.organisation_id),
        ),
        ("url", integrations::url(base, i.id)),
        ("success status", i.success_status.to_string()),
        (
            "unknown operator",
            if i.qolio_compatible {
                "422 at once (Qolio-compatible)".to_owned()
            } else {
                "set aside, replayed once bound".to_owned()
            },
        ),
        ("created", time(i.created_at)),
        ("token rotated", time(i.token_rotated_at)),
        (
            "bindings",
            format!(
                "{} active, {} inactive",
                i.active_bindings, i.inactive_bindings
            ),
        ),
    ] {
        println!("{:<16}{value}", format!("{label}:"));
    }
    Ok(())
}

fn print_table(all: &[IntegrationInfo]) {
    let width = |column: &dyn Fn(&IntegrationInfo) -> usize, title: &str| {
        all.iter().map(column).max().unwrap_or(0).max(title.len())
    };
    let org = width(&|i| i.organisation.chars().count(), "organisation");
    let name = width(&|i| i.name.chars().count(), "name");
    println!(
        "{:<36}  {:<org$}  {:<name$}  {:>6}  {:<16}  active bindings",
        "id", "organisation", "name", "answer", "token rotated"
    );
    for i in all {
        println!(
            "{:<36}  {:<org$}  {:<name$}  {:>6}  {:<16}  {}",
            i.id,
            i.organisation,
            i.name,
            i.success_status,
            i.token_rotated_at.format("%Y-%m-%d %H:%M"),
            i.active_bindings,
        );
    }
    if all.is_empty() {
        eprintln!("no integrations; `admin create-integration` makes one");
    }
}
