use std::collections::HashMap;
use std::sync::Arc;

use shared::broker::Publisher;
use shared::config::Settings;
use shared::domain::FieldType;
use shared::store::accounts::IntegrationAuth;
use sqlx::PgPool;
use uuid::Uuid;

use crate::cache::TtlCache;
use crate::grouping::GroupPublisher;
use crate::metrics::Metrics;
use crate::queued::QueuedNotes;
use crate::rate_limit::RateLimiter;

/// What every request handler may use; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub pool: PgPool,
    pub publisher: Publisher,
    /// Publishes accepted calls, grouping those that arrive together.
    pub calls: GroupPublisher,
    /// `None` when `http.queued_notes` is off.
    pub queued: Option<QueuedNotes>,
    pub integrations: Arc<TtlCache<Uuid, Option<IntegrationAuth>>>,
    pub field_definitions: Arc<TtlCache<Uuid, HashMap<String, FieldType>>>,
    pub rate_limiter: Option<Arc<RateLimiter>>,
    pub metrics: Metrics,
}
