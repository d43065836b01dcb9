//! One settings struct for every binary: the documented defaults in `config/callq.toml`
//! (compiled in), an optional file named by `APP_CONFIG_FILE`, then `APP_*` variables.

use std::net::SocketAddr;
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::port_ranges::PortRanges;

const DEFAULTS: &str = include_str!("../../config/callq.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub broker: BrokerSettings,
    pub auth: AuthSettings,
    pub admin: AdminSettings,
    pub worker: WorkerSettings,
    pub media: MediaSettings,
    pub limits: Limits,
    pub log: LogSettings,
    pub runtime: RuntimeSettings,
    pub retention: RetentionSettings,
}

/// What `admin retention apply` removes by age, and how it goes about it.
#[derive(Debug, Clone, Deserialize)]
pub struct RetentionSettings {
    pub calls_days: u32,
    pub dead_letters_days: u32,
    pub batch_rows: u32,
    pub partitions_ahead_months: u32,
    pub lock_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RuntimeSettings {
    pub worker_threads: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    pub public_base_url: String,
    pub body_limit_bytes: usize,
    pub request_timeout_ms: u64,
    pub rate_limit_per_sec: f64,
    pub rate_limit_burst: u32,
    pub queued_notes: bool,
    pub header_read_timeout_ms: u64,
    pub keep_alive_idle_ms: u64,
    pub max_concurrent_requests: usize,
    pub retry_after_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: SecretString,
    /// Empty: `url` serves the sessions too (see `session_url`).
    pub direct_url: SecretString,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BrokerSettings {
    pub url: SecretString,
    pub urls: Vec<SecretString>,
    pub queue_prefix: String,
    pub publish_channels: usize,
    pub publish_in_flight: usize,
    pub group_max_calls: usize,
    pub compress_groups: bool,
    pub confirm_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub delivery_limit: u32,
    pub retry_delays_ms: Vec<u64>,
    pub dead_delivery_limit: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    pub cache_ttl_secs: u64,
    pub cache_max_entries: u64,
    pub stale_max_secs: u64,
    pub refresh_timeout_ms: u64,
    pub refresh_pause_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AdminSettings {
    pub token: SecretString,
    /// `None` (the setting empty): the admin API is served on `http.listen`.
    #[serde(deserialize_with = "optional_address")]
    pub listen: Option<SocketAddr>,
    pub reprobe_limit: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WorkerSettings {
    pub listen: SocketAddr,
    pub lanes: usize,
    pub prefetch: u16,
    pub batch_size: usize,
    pub batch_wait_ms: u64,
    pub operator_cache_ttl_ms: u64,
    pub auto_replay_interval_ms: u64,
    pub replay_batch: usize,
    pub stages: Vec<Stage>,
}

/// What a worker process consumes: calls (storing them), probe work, or both.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Calls,
    Probes,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MediaSettings {
    pub probe: bool,
    pub connect_timeout_ms: u64,
    pub timeout_ms: u64,
    pub max_redirects: usize,
    pub per_host_concurrency: usize,
    pub allow_loopback: bool,
    pub allow_private: bool,
    pub max_in_flight: usize,
    pub host_backlog: usize,
    pub defer_ms: u64,
    pub max_deferrals: u32,
    pub retry_delays_ms: Vec<u64>,
    pub circuit_failures: u32,
    pub circuit_cooldown_ms: u64,
    pub circuit_cooldown_max_ms: u64,
    pub prefetch: u16,
    pub result_batch: usize,
    pub result_wait_ms: u64,
    pub yield_to_storage_ms: u64,
    pub max_started: usize,
    pub allowed_ports: PortRanges,
}

/// What one call may hold; past these the gateway answers 422 naming the limit.
#[derive(Debug, Clone, Deserialize)]
pub struct Limits {
    pub max_errors: usize,
    pub max_phrases: usize,
    pub max_text_parts: usize,
    pub max_custom_fields: usize,
    pub max_key_chars: usize,
    pub max_text_chars: usize,
    pub max_array_items: usize,
    pub max_field_definitions: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub filter: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(#[from] config::ConfigError);

/// An address, or none for an empty string: what a setting that may be unset reads as.
fn optional_address<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SocketAddr>, D::Error> {
    let raw = String::deserialize(deserializer)?;
    match raw.trim() {
        "" => Ok(None),
        address => address.parse().map(Some).map_err(|e| {
            serde::de::Error::custom(format!(
                "{address:?} is not an address such as 0.0.0.0:8081: {e}"
            ))
        }),
    }
}

impl Settings {
    /// Defaults, then `$APP_CONFIG_FILE` if set, then `APP_*` environment variables.
    pub fn load() -> Result<Self, ConfigError> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Ok(path) = std::env::var("APP_CONFIG_FILE") {
            builder = builder.add_source(File::with_name(&path).required(true));
        }
        let settings = builder
            .add_source(
                Environment::with_prefix("APP")
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("broker.retry_delays_ms")
                    .with_list_parse_key("broker.urls")
                    .with_list_parse_key("media.retry_delays_ms")
                    .with_list_parse_key("worker.stages")
                    .with_list_parse_key("media.allowed_ports"),
            )
            .build()?
            .try_deserialize()?;
        Ok(settings)
    }

    /// The compiled-in defaults alone: what tests start from before overriding fields.
    pub fn defaults() -> Self {
        Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .build()
            .and_then(Config::try_deserialize)
            .expect("config/callq.toml is valid")
    }
}

impl RuntimeSettings {
    /// The async runtime a gateway or worker runs on: `worker_threads` threads, or one per
    /// core when 0.
    pub fn build(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if self.worker_threads > 0 {
            builder.worker_threads(self.worker_threads);
        }
        builder.enable_all().build()
    }
}

impl HttpSettings {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    pub fn keep_alive_idle(&self) -> Duration {
        Duration::from_millis(self.keep_alive_idle_ms)
    }
}

impl DatabaseSettings {
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.acquire_timeout_ms)
    }

    /// Where connections that need a server session of their own go (LISTEN, the migrations'
    /// advisory lock): `direct_url` when set, which a pooler in transaction mode cannot give.
    pub fn session_url(&self) -> Option<&SecretString> {
        (!self.direct_url.expose_secret().is_empty()).then_some(&self.direct_url)
    }
}

impl BrokerSettings {
    pub fn confirm_timeout(&self) -> Duration {
        Duration::from_millis(self.confirm_timeout_ms)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// The nodes to connect to: `urls` when it names any, else `url` alone. Never empty.
    pub fn addresses(&self) -> Vec<SecretString> {
        let listed: Vec<_> = self
            .urls
            .iter()
            .filter(|url| !url.expose_secret().trim().is_empty())
            .cloned()
            .collect();
        if listed.is_empty() {
            vec![self.url.clone()]
        } else {
            listed
        }
    }
}

impl WorkerSettings {
    pub fn auto_replay_interval(&self) -> Duration {
        Duration::from_millis(self.auto_replay_interval_ms)
    }
}

impl MediaSettings {
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn circuit_cooldown(&self) -> Duration {
        Duration::from_millis(self.circuit_cooldown_ms)
    }

    pub fn circuit_cooldown_max(&self) -> Duration {
        Duration::from_millis(self.circuit_cooldown_max_ms)
    }

    pub fn result_wait(&self) -> Duration {
        Duration::from_millis(self.result_wait_ms)
    }
}

impl AuthSettings {
    pub fn fresh_for(&self) -> Duration {
        Duration::from_secs(self.cache_ttl_secs)
    }

    /// How old a cached value may be and still be served: never less than `fresh_for`.
    pub fn served_for(&self) -> Duration {
        Duration::from_secs(self.stale_max_secs.max(self.cache_ttl_secs))
    }

    pub fn refresh_timeout(&self) -> Duration {
        Duration::from_millis(self.refresh_timeout_ms)
    }

    pub fn refresh_pause(&self) -> Duration {
        Duration::from_millis(self.refresh_pause_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(url: &str, urls: &[&str]) -> BrokerSettings {
        let mut broker = Settings::defaults().broker;
        broker.url = SecretString::from(url);
        broker.urls = urls.iter().map(|u| SecretString::from(*u)).collect();
        broker
    }

    fn exposed(addresses: Vec<SecretString>) -> Vec<String> {
        addresses
            .iter()
            .map(|a| a.expose_secret().to_owned())
            .collect()
    }

    #[test]
    fn without_urls_the_one_url_is_the_only_node() {
        assert_eq!(exposed(broker("amqp://a", &[]).addresses()), ["amqp://a"]);
        assert_eq!(exposed(broker("amqp://a", &[""]).addresses()), ["amqp://a"]);
    }

    #[test]
    fn an_empty_admin_listen_is_none_and_an_address_is_read() {
        assert_eq!(Settings::defaults().admin.listen, None);
        let admin: AdminSettings = Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .set_override("admin.listen", "127.0.0.1:8081")
            .and_then(|b| b.build())
            .and_then(|c| c.get("admin"))
            .expect("admin settings");
        assert_eq!(admin.listen, Some("127.0.0.1:8081".parse().unwrap()));
    }

    #[test]
    fn urls_replace_url() {
        let addresses = broker("amqp://a", &["amqp://b", " ", "amqp://c"]).addresses();
        assert_eq!(exposed(addresses), ["amqp://b", "amqp://c"]);
    }

    #[test]
    fn sessions_take_direct_url_only_when_it_is_set() {
        let mut database = Settings::defaults().database;
        assert!(
            database.session_url().is_none(),
            "the default direct_url is empty"
        );
        database.direct_url = SecretString::from("postgres://db:5432/callq");
        let session = database
            .session_url()
            .map(|url| url.expose_secret().to_owned());
        assert_eq!(session.as_deref(), Some("postgres://db:5432/callq"));
    }
}
