//! What the people running the service do by hand. Reads the same config as the services
//! (defaults, `APP_CONFIG_FILE`, `APP_*` variables).

mod dead_letters;
mod erase;
mod media;
mod retention;
mod switches;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use shared::config::Settings;
use shared::domain::FieldType;
use shared::store::{accounts, bindings, fields, integration_switches};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Parser)]
#[command(name = "admin", about = "Administer the call-ingestion pipeline")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply the database migrations (idempotent).
    Migrate,
    /// Create an organisation (or find it by name); prints its id.
    CreateOrganisation {
        #[arg(long)]
        name: String,
    },
    /// Create a department in an organisation (or find it by name); prints its id.
    CreateDepartment {
        #[arg(long)]
        organisation: Uuid,
        #[arg(long)]
        name: String,
    },
    /// Create an integration; prints its URL and token. The token is shown only this once.
    CreateIntegration {
        #[arg(long)]
        organisation: Uuid,
        #[arg(long)]
        name: String,
        /// Answer 200 instead of 202, for clients written against the real API.
        #[arg(long)]
        respond_200: bool,
        /// Refuse a call or text of an unknown or inactive operator at once with the real
        /// API's 422, instead of setting it aside to replay once the operator is bound.
        #[arg(long)]
        qolio_compatible: bool,
    },
    /// Replace an integration's token; the old one stops working within auth.cache_ttl_secs.
    RotateToken {
        #[arg(long)]
        integration: Uuid,
    },
    /// Import user bindings from a CSV with the header email,first_name,last_name,integration_uid
    /// (optional columns: department, active). The file becomes the integration's whole set.
    ImportBindings {
        #[arg(long)]
        integration: Uuid,
        #[arg(long)]
        file: PathBuf,
    },
    /// Print an integration's active bindings as CSV.
    ExportBindings {
        #[arg(long)]
        integration: Uuid,
    },
    /// Define a custom field's type before its first value (e.g. a `duration`).
    DefineField {
        #[arg(long)]
        organisation: Uuid,
        #[arg(long)]
        key: String,
        #[arg(long, value_parser = |s: &str| s.parse::<FieldType>())]
        r#type: FieldType,
    },
    /// List, show, replay or purge dead letters (calls set aside with a reason).
    DeadLetters {
        #[command(subcommand)]
        action: dead_letters::Action,
    },
    /// Probe stored calls' media again, by filter.
    Media {
        #[command(subcommand)]
        action: media::Action,
    },
    /// Remove calls and dead letters past their retention; create the coming months'
    /// partitions of calls.
    Retention {
        #[command(subcommand)]
        action: retention::Action,
    },
    /// Erase an organisation's data, or one of its clients', on request: calls, clients, dead
    /// letters. Prints the counts first; --dry-run stops there.
    Erase(erase::EraseArgs),
    /// Create (or reuse) a demo organisation, department, integration and an active operator
    /// bound as operator@email.com; print shell exports for the integration URL and a fresh token.
    Demo,
    /// Set an existing integration's switches (200 instead of 202, Qolio-compatible refusals).
    IntegrationSwitches(switches::SwitchArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let pool = shared::store::pool(&settings.database)?;
    let base = settings.http.public_base_url.trim_end_matches('/');
    let url = |id: Uuid| format!("{base}/api/v1/integrations/{id}/phone_calls");
    match cli.command {
        Command::Migrate => {
            shared::store::migrate(&pool)
                .await
                .context("applying migrations")?;
            eprintln!("migrations applied");
        }
        Command::CreateOrganisation { name } => {
            println!("{}", accounts::ensure_organisation(&pool, &name).await?)
        }
        Command::CreateDepartment { organisation, name } => {
            println!(
                "{}",
                accounts::ensure_department(&pool, organisation, &name).await?
            )
        }
        Command::CreateIntegration {
            organisation,
            name,
            respond_200,
            qolio_compatible,
        } => {
            let status = if respond_200 { 200 } else { 202 };
            let created = accounts::create_integration(&pool, organisation, &name, status).await?;
            if qolio_compatible {
                let change = integration_switches::SwitchChange {
                    qolio_compatible: Some(true),
                    ..Default::default()
                };
                integration_switches::set(&pool, created.id, change).await?;
            }
            println!("integration id:    {}", created.id);
            println!("integration URL:   {}", url(created.id));
            println!("integration token: {}", created.token);
            eprintln!("(the token is shown only now; `admin rotate-token` replaces it)");
        }
        Command::RotateToken { integration } => {
            println!("{}", accounts::rotate_token(&pool, integration).await?)
        }
        Command::ImportBindings { integration, file } => {
            let input = std::fs::File::open(&file)
                .with_context(|| format!("opening {}", file.display()))?;
            let rows = bindings::parse_csv(input).map_err(|errors| {
                anyhow::anyhow!("{} refused:\n  {}", file.display(), errors.join("\n  "))
            })?;
            let summary = bindings::import(&pool, integration, &rows).await?;
            println!(
                "imported {} binding(s), deactivated {}",
                summary.imported, summary.deactivated
            );
        }
        Command::ExportBindings { integration } => {
            print!("{}", bindings::export_csv(&pool, integration).await?)
        }
        Command::DefineField {
            organisation,
            key,
            r#type,
        } => {
            fields::define(&pool, organisation, &key, r#type).await?;
            println!("{key}: {}", r#type.as_str());
        }
        Command::DeadLetters { action } => dead_letters::run(action, &pool, &settings).await?,
        Command::Media { action } => media::run(action, &pool, &settings).await?,
        Command::Retention { action } => retention::run(action, &pool, &settings).await?,
        Command::Erase(args) => erase::run(args, &pool, &settings).await?,
        Command::Demo => demo(&pool, &url).await?,
        Command::IntegrationSwitches(args) => switches::run(args, &pool).await?,
    }
    Ok(())
}

async fn demo(pool: &PgPool, url: &dyn Fn(Uuid) -> String) -> anyhow::Result<()> {
    shared::store::migrate(pool)
        .await
        .context("applying migrations")?;
    let organisation = accounts::ensure_organisation(pool, "Demo organisation").await?;
    let (id, token) = match accounts::find_integration(pool, organisation, "Demo PBX").await? {
        Some(id) => (id, accounts::rotate_token(pool, id).await?),
        None => {
            let created = accounts::create_integration(pool, organisation, "Demo PBX", 202).await?;
            (created.id, created.token)
        }
    };
    let operator = bindings::BindingRow {
        email: Some("operator@email.com".into()),
        first_name: Some("Demo".into()),
        last_name: Some("Operator".into()),
        integration_uid: Some("operator@email.com".into()),
        department: Some("Support".into()),
        active: Some(true),
    };
    bindings::import(pool, id, &[operator]).await?;
    println!("export INTEGRATION_URL={}", url(id));
    println!("export AUTHORIZATION_TOKEN={token}");
    Ok(())
}
