//! Checks that a call's `media_url` can be fetched, without downloading it, without letting
//! a customer-supplied URL reach our own network, and without letting one host's trouble
//! cost the others: slots per host and in all, one deadline per probe that includes its wait
//! for them, and a circuit breaker per host.

mod circuit;
mod guard;
mod limit;
mod probe;
mod ranges;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use shared::config::MediaSettings;
pub use shared::domain::MediaStatus;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use url::Url;

use circuit::{Admission, Circuits, Health};
use guard::{Guard, GuardedResolver};
use limit::{HostLimiter, Join};

/// The error recorded for a probe not made because its host's circuit is open.
pub const CIRCUIT_OPEN: &str = "circuit open";

/// What a probe found, written back to the call.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaCheck {
    /// Never `Pending`: that is a call's status before any check.
    pub state: MediaStatus,
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
    /// A short reason when not reachable ("timeout", "http status 404", "circuit open", the
    /// guard's rule), which never shows an address the URL's host resolved to.
    pub error: Option<String>,
    /// A later probe may find what this one did not (a recording not uploaded yet, a host
    /// that is down for now).
    pub retriable: bool,
}

impl MediaCheck {
    fn unreachable(media_url: &str, reason: impl Into<String>, retriable: bool) -> Self {
        Self {
            state: MediaStatus::Unreachable,
            http_status: None,
            content_type: None,
            content_length: None,
            checked_at: Utc::now(),
            // The gateway stores URLs normalised: the scheme is lower case.
            insecure: media_url.starts_with("http:"),
            error: Some(reason.into()),
            retriable,
        }
    }

    /// What is recorded when probing `media_url` panicked: final, a bug to look at.
    pub fn crashed(media_url: &str) -> Self {
        Self::unreachable(media_url, "probe failed", false)
    }

    fn refused(url: &Url, reason: String) -> Self {
        Self {
            state: MediaStatus::Refused,
            ..Self::unreachable(url.as_str(), reason, false)
        }
    }
}

/// The outcome of asking for a probe.
#[derive(Debug, Clone, PartialEq)]
pub enum Probed {
    /// `network`: how long the requests took, when any were made.
    Found {
        status: MediaCheck,
        network: Option<Duration>,
    },
    /// The host already has as many probes waiting as it can serve: try again later.
    Deferred,
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("media.per_host_concurrency must be between 1 and {max}, got {got}")]
    PerHostConcurrency { got: usize, max: usize },
    #[error("media.max_in_flight must be between 1 and {max}, got {got}")]
    MaxInFlight { got: usize, max: usize },
    #[error("cannot build the media HTTP client")]
    Client(#[source] reqwest::Error),
}

/// Probes media URLs. Cheap to clone: clones share the client, the slots and the circuits.
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
    /// How long a probe over a full line waits for a new host's first answer.
    first_answer_grace: Duration,
    slots: Semaphore,
    circuits: Circuits,
}

impl MediaProber {
    pub fn new(settings: &MediaSettings) -> Result<Self, MediaError> {
        let (per_host, max_in_flight) = (settings.per_host_concurrency, settings.max_in_flight);
        let max = Semaphore::MAX_PERMITS;
        if !(1..=max).contains(&per_host) {
            return Err(MediaError::PerHostConcurrency { got: per_host, max });
        }
        if !(1..=max).contains(&max_in_flight) {
            return Err(MediaError::MaxInFlight {
                got: max_in_flight,
                max,
            });
        }
        let guard = Guard::new(settings);
        let client = reqwest::Client::builder()
            .user_agent(concat!("callq-worker/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(settings.connect_timeout())
            .no_proxy()
            .redirect(probe::redirect_policy(
                guard.clone(),
                settings.max_redirects,
            ))
            .dns_resolver(GuardedResolver(guard.clone()))
            .build()
            .map_err(MediaError::Client)?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                guard,
                timeout: settings.timeout(),
                // A probe let into a line expects its slot within a quarter of its deadline.
                hosts: HostLimiter::new(per_host, settings.host_backlog, settings.timeout() / 4),
                first_answer_grace: settings.timeout() / 40,
                slots: Semaphore::new(max_in_flight),
                circuits: Circuits::new(
                    settings.circuit_failures,
                    settings.circuit_cooldown(),
                    settings.circuit_cooldown_max(),
                ),
            }),
        })
    }

    /// Probes `media_url` within `media.timeout_ms` from now, slots included. With
    /// `may_defer`, a probe whose host already has its line full is not made but deferred.
    pub async fn probe(&self, media_url: &str, may_defer: bool) -> Probed {
        let inner = &*self.inner;
        let deadline = Instant::now() + inner.timeout;
        let found = |status| Probed::Found {
            status,
            network: None,
        };
        let url = match Url::parse(media_url) {
            Ok(url) => url,
            // The gateway accepts only absolute http(s) URLs: this is a message from elsewhere.
            Err(_) => return found(MediaCheck::unreachable(media_url, "unsupported url", false)),
        };
        // Checked before taking a slot: a refusal needs no network and should not wait.
        if let Err(refused) = inner.guard.check_url(&url) {
            return found(MediaCheck::refused(&url, refused.to_string()));
        }
        let host = host_key(&url);
        let admission = inner.circuits.admit(&host);
        if admission == Admission::Open {
            return found(MediaCheck::unreachable(media_url, CIRCUIT_OPEN, true));
        }
        let in_line = match inner.hosts.join(&host, may_defer) {
            Join::InLine(in_line) => Some(in_line),
            Join::Full => None,
            // A burst for a host nobody has heard from yet: its first answer tells whether
            // the line is worth waiting in, so wait a little for it.
            Join::NotHeardFrom(heard_from) => {
                let _ = tokio::time::timeout(inner.first_answer_grace, heard_from.notified()).await;
                match inner.hosts.join(&host, may_defer) {
                    Join::InLine(in_line) => Some(in_line),
                    Join::Full | Join::NotHeardFrom(_) => None,
                }
            }
        };
        let Some(in_line) = in_line else {
            inner.circuits.record(&host, admission, Health::Unknown);
            return Probed::Deferred;
        };
        // The host's slot first: a probe waiting in a slow host's line must not hold one of
        // the slots every host shares.
        let slots = async {
            let own = in_line.slot().await;
            let any = inner.slots.acquire().await.ok();
            (own, any)
        };
        let Ok(_slots) = tokio::time::timeout_at(deadline, slots).await else {
            inner.circuits.record(&host, admission, Health::Unknown);
            return found(MediaCheck::unreachable(
                media_url,
                "timeout waiting for a probe slot",
                true,
            ));
        };
        let started = Instant::now();
        let (status, health) = probe::run(&inner.client, &url, deadline).await;
        in_line.took(started.elapsed());
        inner.circuits.record(&host, admission, health);
        tracing::debug!(
            host,
            state = status.state.as_str(),
            http_status = status.http_status,
            error = status.error.as_deref(),
            "media probed"
        );
        Probed::Found {
            status,
            network: Some(started.elapsed()),
        }
    }

    /// Hosts whose circuit is open now.
    pub fn open_circuits(&self) -> usize {
        self.inner.circuits.open()
    }
}

/// Ports count: two servers on one machine are two hosts to their owners.
fn host_key(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests;
