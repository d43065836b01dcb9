//! Checks that a call's `media_url` can be fetched, without downloading it and without letting
//! a customer-supplied URL reach our own network.

mod guard;
mod limit;
mod probe;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::config::MediaSettings;
use tokio::sync::Semaphore;
use url::Url;

use guard::{Guard, GuardedResolver};
use limit::HostLimiter;

/// What a probe found, stored with the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaStatus {
    pub reachable: bool,
    /// The final status, after redirects.
    pub http_status: Option<u16>,
    /// Only when reachable: otherwise it would describe an error page.
    pub content_type: Option<String>,
    /// Only when reachable: the HEAD's `Content-Length`, or the total of the ranged GET's
    /// `Content-Range`.
    pub content_length: Option<i64>,
    pub checked_at: DateTime<Utc>,
    /// Plain `http://` (the URL or where it redirects): a player on an https page will not
    /// play it.
    pub insecure: bool,
    /// A short reason when not reachable ("timeout", "http status 404", "blocked: ...").
    pub error: Option<String>,
}

impl MediaStatus {
    /// The status recorded when probing is turned off.
    pub fn skipped(url: &Url) -> Self {
        Self {
            reachable: false,
            http_status: None,
            content_type: None,
            content_length: None,
            checked_at: Utc::now(),
            insecure: url.scheme() == "http",
            error: Some("not probed".to_owned()),
        }
    }

    fn refused(url: &Url, reason: String) -> Self {
        Self {
            error: Some(reason),
            ..Self::skipped(url)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("media.per_host_concurrency must be between 1 and {max}, got {got}")]
    PerHostConcurrency { got: usize, max: usize },
    #[error("cannot build the media HTTP client")]
    Client(#[source] reqwest::Error),
}

/// Probes media URLs. Cheap to clone: clones share the client and the per-host limits.
#[derive(Debug, Clone)]
pub struct MediaProber {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: reqwest::Client,
    guard: Guard,
    timeout: Duration,
    hosts: HostLimiter,
}

impl MediaProber {
    pub fn new(settings: &MediaSettings) -> Result<Self, MediaError> {
        let per_host = settings.per_host_concurrency;
        if !(1..=Semaphore::MAX_PERMITS).contains(&per_host) {
            return Err(MediaError::PerHostConcurrency {
                got: per_host,
                max: Semaphore::MAX_PERMITS,
            });
        }
        let guard = Guard::new(settings);
        let client = reqwest::Client::builder()
            .user_agent(concat!("callq-worker/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(settings.connect_timeout())
            .no_proxy()
            .redirect(probe::redirect_policy(guard, settings.max_redirects))
            .dns_resolver(GuardedResolver(guard))
            .build()
            .map_err(MediaError::Client)?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                guard,
                timeout: settings.timeout(),
                hosts: HostLimiter::new(per_host),
            }),
        })
    }

    /// Never fails: every outcome is recorded in the status.
    #[tracing::instrument(skip_all, fields(host = url.host_str()))]
    pub async fn probe(&self, url: &Url) -> MediaStatus {
        let inner = &self.inner;
        // Checked before taking a slot: a refusal needs no network and should not wait.
        if let Err(refused) = inner.guard.check_url(url) {
            tracing::debug!(%refused, "media url refused");
            return MediaStatus::refused(url, refused.to_string());
        }
        let _slot = inner
            .hosts
            .acquire(url.host_str().unwrap_or_default())
            .await;
        let status = probe::run(&inner.client, url, inner.timeout).await;
        tracing::debug!(
            reachable = status.reachable,
            http_status = status.http_status,
            error = status.error.as_deref(),
            "media probed"
        );
        status
    }
}

#[cfg(test)]
mod tests;
