//! The caches of what every request reads and what changes rarely: integrations (for
//! authentication) and organisations' field definitions, so that each gateway asks Postgres
//! about a key at most once per `auth.cache_ttl_secs`, and keeps answering from what it last
//! loaded while Postgres is away.
//!
//! moka underneath: it is bounded by `auth.cache_max_entries` (and its admission policy keeps
//! the hot entries when a flood of one-off keys arrives), and `try_get_with` runs one load for
//! a missed key however many requests miss it at once, the others awaiting its answer. A
//! failed load is not cached: the next request tries again.
//!
//! An entry lives `auth.stale_max_secs`, not the TTL: past the TTL it is refreshed by the
//! first request that finds it so (the others meanwhile answer from it), and when the
//! database cannot be reached, or does not answer within `auth.refresh_timeout_ms`, the entry
//! keeps serving. moka has no refresh of its own that keeps the old value on failure.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use shared::config::AuthSettings;
use shared::domain::FieldType;
use shared::store::accounts::IntegrationAuth;
use shared::store::availability;
use uuid::Uuid;

use crate::database_circuit::DatabaseCircuit;

/// Integrations by id; `None` for an id no integration has, cached like the others so that
/// a misconfigured PBX (or a flood naming random ids) costs one lookup per id and TTL.
pub type Integrations = LastLoaded<Option<Arc<IntegrationAuth>>>;

/// Each organisation's field definitions, by organisation id.
pub type FieldDefinitions = LastLoaded<Arc<HashMap<String, FieldType>>>;

pub fn integrations(settings: &AuthSettings, circuit: DatabaseCircuit) -> Integrations {
    LastLoaded::new(settings, circuit)
}

pub fn field_definitions(settings: &AuthSettings, circuit: DatabaseCircuit) -> FieldDefinitions {
    LastLoaded::new(settings, circuit)
}

/// Values by key as last loaded from Postgres, refreshed past the TTL, served past it while
/// the database is away.
#[derive(Clone)]
pub struct LastLoaded<V> {
    entries: Cache<Uuid, Arc<Loaded<V>>>,
    fresh_for: Duration,
    refresh_timeout: Duration,
    circuit: DatabaseCircuit,
}

struct Loaded<V> {
    value: V,
    at: Instant,
    /// Set while a request refreshes the entry: the others answer from it meanwhile.
    refreshing: AtomicBool,
}

impl<V> Loaded<V> {
    fn new(value: V) -> Arc<Self> {
        Arc::new(Self {
            value,
            at: Instant::now(),
            refreshing: AtomicBool::new(false),
        })
    }
}

impl<V: Clone + Send + Sync + 'static> LastLoaded<V> {
    pub fn new(settings: &AuthSettings, circuit: DatabaseCircuit) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(settings.cache_max_entries)
                .time_to_live(settings.served_for())
                .build(),
            fresh_for: settings.fresh_for(),
            refresh_timeout: settings.refresh_timeout(),
            circuit,
        }
    }

    /// The value of `key`: as cached while fresh; otherwise what `load` gives, or, when the
    /// database cannot give it now, the value last loaded. A key never loaded (or loaded
    /// longer ago than `auth.stale_max_secs`) has nothing to fall back on: its load's error
    /// is returned.
    pub async fn get(
        &self,
        key: Uuid,
        load: impl Future<Output = Result<V, sqlx::Error>>,
    ) -> Result<V, Arc<sqlx::Error>> {
        let Some(kept) = self.entries.get(&key).await else {
            let loaded = self
                .entries
                .try_get_with(key, async { load.await.map(Loaded::new) })
                .await;
            if let Err(e) = &loaded {
                if availability::unavailable(e) {
                    self.circuit.failed();
                }
            }
            return loaded.map(|l| l.value.clone());
        };
        if kept.at.elapsed() < self.fresh_for || self.circuit.open() {
            return Ok(kept.value.clone());
        }
        let Some(_refreshing) = Claim::take(&kept.refreshing) else {
            return Ok(kept.value.clone());
        };
        let failure = match tokio::time::timeout(self.refresh_timeout, load).await {
            Ok(Ok(value)) => {
                self.entries.insert(key, Loaded::new(value.clone())).await;
                return Ok(value);
            }
            Ok(Err(e)) if !availability::unavailable(&e) => return Err(Arc::new(e)),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {:?}", self.refresh_timeout),
        };
        self.circuit.failed();
        tracing::warn!(
            error = %failure,
            age_secs = kept.at.elapsed().as_secs(),
            "database unavailable; answering from what was last loaded"
        );
        Ok(kept.value.clone())
    }

    pub async fn invalidate(&self, key: &Uuid) {
        self.entries.invalidate(key).await;
    }
}

/// The one refresh of an entry in progress; released however the refresh ends, even when
/// its request is dropped midway.
struct Claim<'a>(&'a AtomicBool);

impl<'a> Claim<'a> {
    fn take(flag: &'a AtomicBool) -> Option<Self> {
        (!flag.swap(true, Ordering::AcqRel)).then_some(Self(flag))
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests;
