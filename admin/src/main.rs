//! What the people running the service do by hand. Reads the same config as the services
//! (defaults, `APP_CONFIG_FILE`, `APP_*` variables).

mod dead_letters;
mod erase;
mod integration;
mod media;
mod progress;
mod retention;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use shared::config::Settings;
use shared::domain::FieldType;
use shared::store::{accounts, bindings, fields, integrations};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Parser)]
#[command(
    name = "admin",
    about = "Administer the call-ingestion pipeline",
    version = env!("ADMIN_VERSION"),
    after_help = "Reads the services' config: config/callq.toml's defaults, then the file \
                  APP_CONFIG_FILE names if set, then APP_* variables (e.g. APP_DATABASE__URL)."
)]
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
        /// The organisation's name, unique.
        #[arg(long)]
        name: String,
    },
    /// Create a department in an organisation (or find it by name); prints its id.
    CreateDepartment {
        /// The organisation's id, as create-organisation prints it.
        #[arg(long)]
        organisation: Uuid,
        /// The department's name, unique within the organisation.
        #[arg(long)]
        name: String,
    },
    /// Create an integration; prints its URL and token. The token is shown only this once.
    CreateIntegration {
        /// The organisation's id, as create-organisation prints it.
        #[arg(long)]
        organisation: Uuid,
        /// The integration's name (e.g. the PBX's), unique within the organisation.
        #[arg(long)]
        name: String,
        /// Answer 200 instead of 202, for clients written against the real API (`admin
        /// integration set --answer-200` switches an existing one). Also --respond-200.
        #[arg(long = "answer-200", alias = "respond-200")]
        respond_200: bool,
        /// Refuse a call or text of an unknown or inactive operator at once with the real
        /// API's 422, instead of setting it aside to replay once the operator is bound (`admin
        /// integration set --qolio-compatible` switches an existing one).
        #[arg(long)]
        qolio_compatible: bool,
    },
    /// Replace an integration's token; the old one stops working within auth.cache_ttl_secs.
    RotateToken {
        /// The integration's id.
        #[arg(long)]
        integration: Uuid,
    },
    /// Import user bindings from a CSV with the header email,first_name,last_name,integration_uid
    /// (optional columns: department, active). The file becomes the integration's whole set.
    ImportBindings {
        /// The integration's id.
        #[arg(long)]
        integration: Uuid,
        /// The CSV file (UTF-8).
        #[arg(long)]
        file: PathBuf,
    },
    /// Print an integration's active bindings as CSV.
    ExportBindings {
        /// The integration's id.
        #[arg(long)]
        integration: Uuid,
    },
    /// Define a custom field's type before its first value (e.g. a `duration`).
    DefineField {
        /// The organisation's id.
        #[arg(long)]
        organisation: Uuid,
        /// The field's key, as calls send it in custom_fields.
        #[arg(long)]
        key: String,
        /// string, number, string_array, string_url, number_array, datetime, boolean or
        /// duration.
        #[arg(long, value_parser = |s: &str| s.parse::<FieldType>())]
        r#type: FieldType,
    },
    /// List integrations, show one, change its settings (e.g. answer 200 instead of 202).
    Integration {
        #[command(subcommand)]
        action: integration::Action,
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
    /// Erase an organisation's data, or one of its clients', on request: calls, texts,
    /// clients, dead letters. Prints the counts first; --dry-run stops there.
    Erase(erase::EraseArgs),
    /// Create (or reuse) a demo organisation, department, integration and an active operator
    /// bound as operator@email.com; print shell exports for the integration URL and a fresh token.
    Demo,
    /// Print a shell completion script, e.g. `admin completions bash > /etc/bash_completion.d/admin`.
    Completions {
        /// bash, elvish, fish, powershell or zsh.
        shell: clap_complete::Shell,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Needs neither the config nor the database: it works where neither is set up.
    if let Command::Completions { shell } = cli.command {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "admin", &mut script);
        return match std::io::stdout().write_all(&script) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: writing the script: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match run(cli).await {
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
    let url = |id: Uuid| integrations::url(&settings.http.public_base_url, id);
    match cli.command {
        Command::Migrate => {
            shared::store::migrate(&shared::store::session_pool(&settings.database, &pool)?)
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
                let changes = integrations::Changes {
                    qolio_compatible: Some(true),
                    ..Default::default()
                };
                integrations::update(&pool, created.id, &changes).await?;
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
            let bar = progress::bar(rows.len() as u64, "bindings written")?;
            let summary =
                bindings::import_reporting(&pool, integration, &rows, |n| bar.set_position(n))
                    .await;
            bar.finish_and_clear();
            let summary = summary?;
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
        Command::Integration { action } => integration::run(action, &pool, &settings).await?,
        Command::DeadLetters { action } => dead_letters::run(action, &pool, &settings).await?,
        Command::Media { action } => media::run(action, &pool, &settings).await?,
        Command::Retention { action } => retention::run(action, &pool, &settings).await?,
        Command::Erase(args) => erase::run(args, &pool, &settings).await?,
        Command::Demo => {
            let session = shared::store::session_pool(&settings.database, &pool)?;
            demo(&pool, &session, &url).await?
        }
        Command::Completions { .. } => unreachable!("answered before the config is read"),
    }
    Ok(())
}

async fn demo(pool: &PgPool, session: &PgPool, url: &dyn Fn(Uuid) -> String) -> anyhow::Result<()> {
    shared::store::migrate(session)
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// `--help` is the CLI's manual: every subcommand and every flag or argument says what
    /// it is for.
    #[test]
    fn every_subcommand_and_argument_has_help() {
        fn missing(command: &clap::Command, path: &str, out: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && arg.get_help().is_none() {
                    out.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    out.push(path.clone());
                }
                missing(sub, &path, out);
            }
        }
        let mut out = Vec::new();
        missing(&Cli::command(), "admin", &mut out);
        assert!(out.is_empty(), "without help: {out:#?}");
        Cli::command().debug_assert();
    }
}
