//! Black-box harness: every test gets its own database (cloned from a migrated template),
//! its own queue names, a real gateway on a free port and, unless asked otherwise, a real
//! worker, all against the machine's PostgreSQL and RabbitMQ. Nothing is mocked.

pub mod cluster;
mod database;
pub mod media_server;
pub mod otlp_receiver;
pub mod proxy;
pub mod query_counter;
mod queues;
pub mod tls_postgres;

pub use queues::delete_queues;

use std::future::Future;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::{json, Value};
use shared::config::Settings;
use shared::store::{accounts, bindings};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::oneshot;
use uuid::Uuid;

pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Retry schedule of every test: short, so that retries and their exhaustion take seconds.
pub const TEST_RETRY_DELAYS_MS: [u64; 5] = [200, 400, 800, 1600, 3200];

/// The original page's example, verbatim.
pub fn seed_example() -> Value {
    json!({
        "operator_id": "operator@email.com",
        "started_at": "2020-06-21T09:51:13.588Z+03",
        "direction": "incoming",
        "duration": 410.1,
        "client_phone_number": "+375332222453",
        "media_url": "https://file-examples.com/wp-content/uploads/2017/11/file_example_WAV_1MG.wav",
        "uid": "7b2331ca-adcb-4f15-811b-6b6cfddb2baf",
        "client": {
            "id": "client@email.com",
            "company_name": "Test Company",
            "first_name": "John",
            "last_name": "Doe"
        },
        "custom_fields": {
            "opened_at": "2020-06-21T09:51:13.588Z",
            "reopen_count": 5,
            "topic": "Поддержка",
            "sub-topic": "Возобновление доступа"
        }
    })
}

/// A minimal valid call for `operator@email.com` with a media URL nobody probes.
pub fn call(uid: &str) -> Value {
    json!({
        "operator_id": "operator@email.com",
        "started_at": "2024-03-01T10:00:00+03",
        "media_url": "https://recordings.invalid/x.wav",
        "uid": uid,
    })
}

pub struct TestEnv {
    pub settings: Settings,
    pub pool: PgPool,
    pub http: reqwest::Client,
    pub base_url: String,
    /// Where the admin API and /metrics are served: `base_url` unless `admin.listen` is set.
    pub admin_url: String,
    pub admin_token: String,
    db_name: String,
    gateway_stop: Option<oneshot::Sender<()>>,
    worker_stop: Option<oneshot::Sender<()>>,
    worker_task: Option<tokio::task::JoinHandle<()>>,
    worker_port: Option<u16>,
    inspector: Option<worker::calls::handler::Inspector>,
}

/// An integration of a fresh organisation, with `operator@email.com` bound and active in
/// the department "Support".
pub struct Integration {
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub token: String,
    pub url: String,
}

pub struct Options {
    pub worker: bool,
    pub customize: Box<dyn FnOnce(&mut Settings) + Send>,
    /// Sees every message the in-process workers decode, before they handle it.
    pub inspector: Option<worker::calls::handler::Inspector>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            worker: true,
            customize: Box::new(|_| {}),
            inspector: None,
        }
    }
}

impl TestEnv {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        let db_name = format!("callq_test_{}", Uuid::new_v4().simple());
        database::create(&db_name).await;
        let admin_token = format!("admin-{}", Uuid::new_v4().simple());
        let mut settings = Settings::defaults();
        settings.http.listen = "127.0.0.1:0".parse().expect("address");
        settings.database.url =
            SecretString::from(format!("postgres://postgres@127.0.0.1:5432/{db_name}"));
        settings.database.max_connections = 4;
        settings.broker.url = SecretString::from(AMQP_URL);
        settings.broker.queue_prefix = format!("test.{}", Uuid::new_v4().simple());
        settings.broker.publish_channels = 2;
        settings.broker.confirm_timeout_ms = 3000;
        settings.broker.connect_timeout_ms = 3000;
        settings.admin.token = SecretString::from(admin_token.clone());
        settings.auth.cache_ttl_secs = 1;
        // Debug builds sharing a busy machine may take longer than the default to answer a
        // refresh; one cut short would leave first-seen keys to the worker (a dead letter where
        // a test expects the gateway's 422).
        settings.auth.refresh_timeout_ms = 10_000;
        settings.worker.listen = "127.0.0.1:0".parse().expect("address");
        settings.broker.retry_delays_ms = TEST_RETRY_DELAYS_MS.to_vec();
        settings.media.allow_loopback = true;
        // Test recording hosts listen on random ports.
        settings.media.allowed_ports = shared::port_ranges::PortRanges::any();
        settings.media.timeout_ms = 2000;
        settings.media.connect_timeout_ms = 1000;
        (options.customize)(&mut settings);
        // Captured per test by the test harness: shown only for tests that fail.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(std::env::var("TEST_LOG").unwrap_or_else(|_| "warn,lapin=off".into()))
            .with_test_writer()
            .try_init();

        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(&format!("postgres://postgres@127.0.0.1:5432/{db_name}"))
            .await
            .expect("connect to the test database");

        let gateway = gateway::Application::build(settings.clone())
            .await
            .expect("build gateway");
        let base_url = format!("http://127.0.0.1:{}", gateway.port());
        let admin_url = gateway.admin_port().map_or_else(
            || base_url.clone(),
            |port| format!("http://127.0.0.1:{port}"),
        );
        let (gateway_stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(gateway.run_until_stopped(async move {
            let _ = stopped.await;
        }));

        let mut env = Self {
            settings,
            pool,
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("http client"),
            base_url,
            admin_url,
            admin_token,
            db_name,
            gateway_stop: Some(gateway_stop),
            worker_stop: None,
            worker_task: None,
            worker_port: None,
            inspector: options.inspector,
        };
        if options.worker {
            env.start_worker().await;
        }
        env
    }

    /// Like `start_with` (without its worker), then starts an in-process worker that reaches
    /// Postgres through `proxy`, so that cutting the proxy takes the worker's database away
    /// while the test and the gateway keep theirs.
    pub async fn start_with_worker_behind(proxy: &proxy::Proxy, options: Options) -> Self {
        let mut env = Self::start_with(Options {
            worker: false,
            ..options
        })
        .await;
        env.start_worker_behind(proxy).await;
        env
    }

    /// Starts the in-process worker reaching Postgres through `proxy`.
    pub async fn start_worker_behind(&mut self, proxy: &proxy::Proxy) {
        let direct = self.settings.database.clone();
        self.settings.database.url = via_port(&self.settings.database.url, proxy.port);
        self.settings.database.acquire_timeout_ms = 300;
        self.start_worker().await;
        self.settings.database = direct;
    }

    /// A real worker process holding what it takes: lanes 1, `prefetch` messages, and a
    /// database that accepts its connections and never answers (the returned proxy, which
    /// must live as long as the worker), so that the test can kill it mid-batch.
    pub async fn spawn_stuck_worker(&self, prefetch: u16) -> (tokio::process::Child, proxy::Proxy) {
        let database = proxy::Proxy::start("127.0.0.1:5432").await;
        database.hold_new();
        let child = tokio::process::Command::new(binary("worker"))
            .envs(child_env(self))
            .env(
                "APP_DATABASE__URL",
                secrecy::ExposeSecret::expose_secret(&via_port(
                    &self.settings.database.url,
                    database.port,
                )),
            )
            .env("APP_DATABASE__ACQUIRE_TIMEOUT_MS", "120000")
            .env("APP_WORKER__LANES", "1")
            .env("APP_WORKER__PREFETCH", prefetch.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the worker binary");
        (child, database)
    }

    /// Starts an in-process worker with the test's settings (one at a time).
    pub async fn start_worker(&mut self) {
        let worker = worker::Worker::build_inspected(&self.settings, self.inspector.clone())
            .await
            .expect("build worker");
        self.worker_port = Some(worker.port());
        let (stop, stopped) = oneshot::channel::<()>();
        self.worker_stop = Some(stop);
        self.worker_task = Some(tokio::spawn(worker.run_until_stopped(async move {
            let _ = stopped.await;
        })));
    }

    /// Stops the in-process worker gracefully: in-flight messages are finished and acked.
    pub async fn stop_worker(&mut self) {
        if let Some(stop) = self.worker_stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.worker_task.take() {
            let _ = task.await;
        }
    }

    /// The in-process worker's /metrics.
    pub async fn worker_metrics(&self) -> String {
        let port = self.worker_port.expect("a worker was started");
        self.text(&format!("http://127.0.0.1:{port}/metrics")).await
    }

    /// The gateway's /metrics.
    pub async fn gateway_metrics(&self) -> String {
        self.text(&format!("{}/metrics", self.admin_url)).await
    }

    async fn text(&self, url: &str) -> String {
        self.http
            .get(url)
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("body")
    }

    /// `POST`/`GET`/`DELETE` on the admin API with the admin token; (status, JSON body).
    pub async fn admin(&self, method: reqwest::Method, path_and_query: &str) -> (u16, Value) {
        let response = self
            .http
            .request(method, format!("{}{path_and_query}", self.admin_url))
            .header("Authorization", &self.admin_token)
            .send()
            .await
            .expect("admin request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub fn database_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.db_name)
    }

    pub async fn integration(&self) -> Integration {
        self.integration_with_status(202).await
    }

    pub async fn integration_with_status(&self, success_status: u16) -> Integration {
        let organisation_id =
            accounts::ensure_organisation(&self.pool, &format!("org-{}", Uuid::new_v4()))
                .await
                .expect("organisation");
        let created =
            accounts::create_integration(&self.pool, organisation_id, "PBX", success_status)
                .await
                .expect("integration");
        self.bind(
            created.id,
            &[("operator@email.com", "operator@email.com", true)],
        )
        .await;
        Integration {
            id: created.id,
            organisation_id,
            url: format!(
                "{}/api/v1/integrations/{}/phone_calls",
                self.base_url, created.id
            ),
            token: created.token,
        }
    }

    /// Replaces the integration's bindings: (email, integration_uid, active), all in "Support".
    pub async fn bind(&self, integration_id: Uuid, rows: &[(&str, &str, bool)]) {
        let rows: Vec<_> = rows
            .iter()
            .map(|(email, uid, active)| bindings::BindingRow {
                email: Some((*email).into()),
                first_name: Some("Op".into()),
                last_name: Some("Erator".into()),
                integration_uid: Some((*uid).into()),
                department: Some("Support".into()),
                active: Some(*active),
            })
            .collect();
        bindings::import(&self.pool, integration_id, &rows)
            .await
            .expect("bindings");
    }

    pub async fn post(&self, integration: &Integration, body: &Value) -> reqwest::Response {
        self.http
            .post(&integration.url)
            .header("Authorization", &integration.token)
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn get_call(&self, integration: &Integration, uid: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}/{uid}", integration.url))
            .header("Authorization", &integration.token)
            .send()
            .await
            .expect("GET");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .expect(sql)
    }

    /// Waits until `sql` (a count) reaches `expected`, or fails after `timeout`.
    pub async fn wait_for_count(&self, sql: &str, expected: i64, timeout: Duration) {
        let last = eventually(timeout, || async {
            let n = self.count(sql).await;
            (n == expected).then_some(n).ok_or(n)
        })
        .await;
        if let Err(n) = last {
            panic!("{sql} stayed at {n}, expected {expected}");
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if let Some(stop) = self.gateway_stop.take() {
            let _ = stop.send(());
        }
        if let Some(stop) = self.worker_stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.worker_task.take() {
            task.abort();
        }
        let db_name = self.db_name.clone();
        let settings = self.settings.clone();
        // Clean-up is best effort and needs async I/O; Drop is sync and may run inside the
        // test's runtime, so it gets a runtime of its own on another thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(PG_ADMIN_URL).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
                delete_queues(&settings).await;
            });
        })
        .join();
    }
}

/// The value of one sample in a /metrics text, e.g.
/// `metric(&text, "callq_worker_calls_retried_total{class=\"pool_timeout\"}")`; 0 if absent.
pub fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Sum of every sample of a metric, whatever its labels.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Polls `check` until it returns `Ok`, giving up after `timeout` with its last `Err`.
pub async fn eventually<T, E, F, Fut>(timeout: Duration, mut check: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Path of a workspace binary; `deploy/test.sh` builds them before the tests run.
pub fn binary(name: &str) -> std::path::PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("debug").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (deploy/test.sh does)",
        path.display()
    );
    path
}

/// The same database URL through another local port (a [`proxy::Proxy`] in front of it).
pub fn via_port(url: &SecretString, port: u16) -> SecretString {
    use secrecy::ExposeSecret;
    SecretString::from(
        url.expose_secret()
            .replace("127.0.0.1:5432", &format!("127.0.0.1:{port}")),
    )
}

/// Environment that points a child process at this test's database and queues.
pub fn child_env(env: &TestEnv) -> Vec<(String, String)> {
    vec![
        ("APP_DATABASE__URL".into(), env.database_url()),
        ("APP_BROKER__URL".into(), AMQP_URL.into()),
        (
            "APP_BROKER__QUEUE_PREFIX".into(),
            env.settings.broker.queue_prefix.clone(),
        ),
        ("APP_MEDIA__ALLOW_LOOPBACK".into(), "true".into()),
        ("APP_MEDIA__ALLOWED_PORTS".into(), "1-65535".into()),
        ("APP_DATABASE__MAX_CONNECTIONS".into(), "4".into()),
        ("APP_LOG__FILTER".into(), "warn".into()),
        ("APP_WORKER__LISTEN".into(), "127.0.0.1:0".into()),
        // Part of the queues' declaration: a child declaring another value would be refused.
        (
            "APP_BROKER__DELIVERY_LIMIT".into(),
            env.settings.broker.delivery_limit.to_string(),
        ),
        (
            "APP_BROKER__RETRY_DELAYS_MS".into(),
            env.settings
                .broker
                .retry_delays_ms
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(","),
        ),
    ]
}
