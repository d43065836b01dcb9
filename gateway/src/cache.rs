//! The caches of what every request reads and what changes rarely: integrations (for
//! authentication) and organisations' field definitions, so that each gateway asks Postgres
//! about a key at most once per `auth.cache_ttl_secs`.
//!
//! moka rather than a map: it is bounded by `auth.cache_max_entries` (and its admission
//! policy keeps the hot entries when a flood of one-off keys arrives), entries expire after
//! the TTL, and `try_get_with` runs one load for a missed key however many requests miss it
//! at once, the others awaiting its answer. A failed load is not cached: the next request
//! tries again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use shared::config::AuthSettings;
use shared::domain::FieldType;
use shared::store::accounts::IntegrationAuth;
use uuid::Uuid;

/// Integrations by id; `None` for an id no integration has, cached like the others so that
/// a misconfigured PBX (or a flood naming random ids) costs one lookup per id and TTL.
pub type Integrations = Cache<Uuid, Option<Arc<IntegrationAuth>>>;

/// Each organisation's field definitions, by organisation id.
pub type FieldDefinitions = Cache<Uuid, Arc<HashMap<String, FieldType>>>;

pub fn integrations(settings: &AuthSettings) -> Integrations {
    bounded(settings)
}

pub fn field_definitions(settings: &AuthSettings) -> FieldDefinitions {
    bounded(settings)
}

fn bounded<V: Clone + Send + Sync + 'static>(settings: &AuthSettings) -> Cache<Uuid, V> {
    Cache::builder()
        .max_capacity(settings.cache_max_entries)
        .time_to_live(Duration::from_secs(settings.cache_ttl_secs))
        .build()
}
