//! What one size of the benchmark runs against, made fresh and removed afterwards: its own
//! database (migrated), an organisation with an integration and bound operators, and its own
//! queue prefixes (one for the pipeline and its probe queues, one for the raw broker
//! measurements).

use std::collections::HashMap;

use anyhow::Context;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use shared::broker::{ProbeTopology, Topology};
use shared::config::{BrokerSettings, MediaSettings, Settings};
use shared::store::{accounts, bindings};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The Postgres and RabbitMQ a fixture lives on: the machine's shared ones for the benchmark,
/// private ones for the chaos run, which stops and restarts them.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// The superuser's database, from which the fixture's own is created and dropped.
    pub pg_admin_url: String,
    pub amqp_url: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Self {
            pg_admin_url: PG_ADMIN_URL.to_owned(),
            amqp_url: AMQP_URL.to_owned(),
        }
    }
}

/// A bound operator: what `operator_id` says and the user it resolves to.
#[derive(Debug, Clone)]
pub struct Operator {
    pub user_id: Uuid,
    pub department_id: Option<Uuid>,
}

pub struct Fixture {
    pub endpoints: Endpoints,
    pub db_name: String,
    pub database_url: String,
    pub pool: PgPool,
    /// The pipeline's queues (`bench.<id>.calls`, ...), shared with the child processes.
    pub broker: BrokerSettings,
    /// Queues of the raw measurements, declared exactly like the pipeline's.
    pub raw_broker: BrokerSettings,
    /// The media settings the workers run with: the defaults and whatever `APP_*` variables
    /// (or `APP_CONFIG_FILE`) the bench's environment passes on to them. They name the probe
    /// queues and size the raw HEAD loop.
    pub media: MediaSettings,
    pub integration_id: Uuid,
    pub organisation_id: Uuid,
    pub token: String,
    /// By `integration_uid`.
    pub operators: HashMap<String, Operator>,
}

impl Fixture {
    pub async fn create(operators: usize) -> anyhow::Result<Self> {
        Self::create_on(Endpoints::default(), operators).await
    }

    pub async fn create_on(endpoints: Endpoints, operators: usize) -> anyhow::Result<Self> {
        let id = Uuid::new_v4().simple().to_string()[..12].to_owned();
        let db_name = format!("callq_bench_{id}");
        let mut admin = PgConnection::connect(&endpoints.pg_admin_url)
            .await
            .with_context(|| {
                format!(
                    "connect to {} (is it running? deploy/bench.sh starts it)",
                    endpoints.pg_admin_url
                )
            })?;
        sqlx::query(&format!("CREATE DATABASE {db_name}"))
            .execute(&mut admin)
            .await
            .with_context(|| format!("create database {db_name}"))?;
        let _ = admin.close().await;

        let database_url = sibling_database(&endpoints.pg_admin_url, &db_name);
        let seeded = seed(&database_url, operators).await;
        let (pool, organisation_id, integration_id, token, operators) = match seeded {
            Ok(seeded) => seeded,
            Err(e) => {
                let _ = drop_database(&endpoints.pg_admin_url, &db_name).await;
                return Err(e);
            }
        };
        // As the children will read them: they inherit the bench's environment.
        let mut settings = match Settings::load() {
            Ok(settings) => settings,
            Err(e) => {
                let _ = drop_database(&endpoints.pg_admin_url, &db_name).await;
                return Err(e).context("the settings the services would run with");
            }
        };
        settings.broker.url = SecretString::from(endpoints.amqp_url.clone());
        settings.broker.queue_prefix = format!("bench.{id}");
        let mut raw_broker = settings.broker.clone();
        raw_broker.queue_prefix = format!("bench.{id}.raw");
        Ok(Self {
            endpoints,
            db_name,
            database_url,
            pool,
            broker: settings.broker,
            raw_broker,
            media: settings.media,
            integration_id,
            organisation_id,
            token,
            operators,
        })
    }

    /// Environment of a gateway or worker child pointed at this fixture. Whatever else the
    /// bench's own environment says (other `APP_*` keys) reaches the children unchanged.
    pub fn child_env(&self, http_port: u16, worker_port: u16) -> Vec<(String, String)> {
        [
            ("APP_DATABASE__URL", self.database_url.clone()),
            ("APP_BROKER__URL", self.endpoints.amqp_url.clone()),
            ("APP_BROKER__QUEUE_PREFIX", self.broker.queue_prefix.clone()),
            ("APP_HTTP__LISTEN", format!("127.0.0.1:{http_port}")),
            ("APP_WORKER__LISTEN", format!("127.0.0.1:{worker_port}")),
            ("APP_MEDIA__ALLOW_LOOPBACK", "true".to_owned()),
            // The bench's recording hosts listen on random ports.
            ("APP_MEDIA__ALLOWED_PORTS", "1-65535".to_owned()),
            ("APP_LOG__FILTER", "warn".to_owned()),
            // One thread each, unless the caller says otherwise: five processes share the
            // machine's cores, and cross-thread wakeups cost more than they bring here.
            (
                "APP_RUNTIME__WORKER_THREADS",
                std::env::var("APP_RUNTIME__WORKER_THREADS").unwrap_or_else(|_| "1".to_owned()),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    pub async fn count(&self, sql: &str) -> anyhow::Result<i64> {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .with_context(|| sql.to_owned())
    }

    /// Calls stored, and the newest one's `created_at`.
    pub async fn stored(&self) -> anyhow::Result<(i64, Option<DateTime<Utc>>)> {
        sqlx::query_as("SELECT count(*), max(created_at) FROM calls")
            .fetch_one(&self.pool)
            .await
            .context("count the calls")
    }

    /// Empties what the previous phase stored, so the next one counts only its own rows.
    pub async fn truncate_calls(&self) -> anyhow::Result<()> {
        sqlx::query("TRUNCATE calls, call_keys, queued_calls")
            .execute(&self.pool)
            .await
            .context("truncate calls")?;
        Ok(())
    }

    /// The pipeline's probe queues: work, retries, deferrals.
    pub fn probe_topology(&self) -> ProbeTopology {
        ProbeTopology::new(&self.broker.queue_prefix, &self.media)
    }

    /// Deletes the probe queues with what waits in them (a phase's retries and deferrals),
    /// so that the next phase's probe stage sees only its own work. The next worker to start
    /// declares them again.
    pub async fn delete_probe_queues(&self) -> anyhow::Result<()> {
        delete_queues(&self.broker, &self.probe_topology().queues()).await
    }

    /// Drops the database and deletes every queue of both prefixes, probe queues included;
    /// best effort, so that a failed run still leaves nothing behind. Returns what could not
    /// be removed.
    pub async fn remove(self) -> Vec<String> {
        let mut problems = Vec::new();
        self.pool.close().await;
        if let Err(e) = drop_database(&self.endpoints.pg_admin_url, &self.db_name).await {
            problems.push(format!("database {}: {e:#}", self.db_name));
        }
        let (calls, probes) = (Topology::new(&self.broker), self.probe_topology());
        let raw = Topology::new(&self.raw_broker);
        let pipeline = [calls.queues(), probes.queues()].concat();
        for (broker, queues) in [(&self.broker, pipeline), (&self.raw_broker, raw.queues())] {
            if let Err(e) = delete_queues(broker, &queues).await {
                problems.push(format!("queues {}.*: {e:#}", broker.queue_prefix));
            }
        }
        problems
    }
}

type Seeded = (PgPool, Uuid, Uuid, String, HashMap<String, Operator>);

async fn seed(database_url: &str, operators: usize) -> anyhow::Result<Seeded> {
    // Enough for the raw upsert's sessions and the polling beside them.
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(database_url)
        .await
        .context("connect to the bench database")?;
    shared::store::migrate(&pool).await.context("migrate")?;
    let organisation_id = accounts::ensure_organisation(&pool, "Bench Org")
        .await
        .context("organisation")?;
    let integration = accounts::create_integration(&pool, organisation_id, "Bench PBX", 202)
        .await
        .context("integration")?;
    let rows: Vec<_> = (0..operators)
        .map(|i| bindings::BindingRow {
            email: Some(format!("operator{i}@callcentre.example")),
            first_name: Some("Op".into()),
            last_name: Some(format!("Erator {i}")),
            integration_uid: Some(format!("operator{i}@callcentre.example")),
            department: Some(if i % 2 == 0 { "Support" } else { "Sales" }.into()),
            active: Some(true),
        })
        .collect();
    bindings::import(&pool, integration.id, &rows)
        .await
        .context("bind operators")?;
    let bound: Vec<(String, Uuid, Option<Uuid>)> = sqlx::query_as(
        "SELECT b.integration_uid, u.id, u.department_id
         FROM user_account_bindings b JOIN users u ON u.id = b.user_id
         WHERE b.integration_id = $1",
    )
    .bind(integration.id)
    .fetch_all(&pool)
    .await
    .context("read back the operators")?;
    let operators = bound
        .into_iter()
        .map(|(uid, user_id, department_id)| {
            (
                uid,
                Operator {
                    user_id,
                    department_id,
                },
            )
        })
        .collect();
    Ok((
        pool,
        organisation_id,
        integration.id,
        integration.token,
        operators,
    ))
}

/// The URL of database `name` on the server of `admin_url`.
fn sibling_database(admin_url: &str, name: &str) -> String {
    let server = admin_url
        .rsplit_once('/')
        .map_or(admin_url, |(server, _)| server);
    format!("{server}/{name}")
}

async fn drop_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect(admin_url).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    let _ = admin.close().await;
    Ok(())
}

/// Deleting a queue that was never declared succeeds: RabbitMQ answers `delete-ok`.
async fn delete_queues(broker: &BrokerSettings, queues: &[&str]) -> anyhow::Result<()> {
    let connection = shared::broker::connect(broker, "bench-cleanup").await?;
    let channel = connection.create_channel().await?;
    for &queue in queues {
        channel
            .queue_delete(queue.into(), lapin::options::QueueDeleteOptions::default())
            .await
            .with_context(|| format!("delete {queue}"))?;
    }
    shared::broker::close(&connection, "").await;
    Ok(())
}
