use std::sync::Arc;

use shared::broker::Publisher;
use shared::config::Settings;
use sqlx::PgPool;

use crate::cache::{FieldDefinitions, Integrations};
use crate::database_circuit::DatabaseCircuit;
use crate::grouping::GroupPublisher;
use crate::metrics::Metrics;
use crate::operator_check::OperatorCheck;
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
    pub integrations: Integrations,
    pub field_definitions: FieldDefinitions,
    /// Shared by both caches and the registration of new field keys: one database.
    pub database: DatabaseCircuit,
    pub rate_limiter: Option<Arc<RateLimiter>>,
    /// Asked only for Qolio-compatible integrations.
    pub operators: OperatorCheck,
    pub metrics: Metrics,
}
