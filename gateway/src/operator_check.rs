//! The operator lookup of Qolio-compatible integrations: whether a call's or text's
//! `operator_id` names an active operator, asked before it is queued so that an unknown one
//! can be refused at once, as the real API does.
//!
//! Only active operators are cached (for `auth.cache_ttl_secs`, bounded by
//! `auth.cache_max_entries`): the steady traffic of known operators costs no database round
//! trip, while an unknown or inactive one is looked up again each time, so that a client that
//! repairs itself (imports the binding, posts again) is accepted on its very next post. A
//! deactivation counts after at most the TTL; the worker checks again anyway.

use std::sync::Arc;

use moka::future::Cache;
use shared::config::AuthSettings;
use sqlx::PgPool;
use uuid::Uuid;

use crate::database_circuit::DatabaseCircuit;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Active,
    NotFound,
    Inactive,
    /// The database cannot say now: the message is queued, and the worker decides.
    Unchecked,
}

#[derive(Clone)]
pub struct OperatorCheck {
    active: Cache<(Uuid, Arc<str>), ()>,
    circuit: DatabaseCircuit,
    timeout: std::time::Duration,
}

impl OperatorCheck {
    pub fn new(settings: &AuthSettings, circuit: DatabaseCircuit) -> Self {
        Self {
            active: Cache::builder()
                .max_capacity(settings.cache_max_entries)
                .time_to_live(settings.fresh_for())
                .build(),
            circuit,
            timeout: settings.refresh_timeout(),
        }
    }

    pub async fn check(&self, pool: &PgPool, integration_id: Uuid, operator_id: &str) -> Verdict {
        let key = (integration_id, Arc::<str>::from(operator_id));
        if self.active.contains_key(&key) {
            return Verdict::Active;
        }
        if self.circuit.open() {
            return Verdict::Unchecked;
        }
        let lookup = sqlx::query_scalar::<_, bool>(
            "SELECT b.active AND u.active FROM user_account_bindings b JOIN users u ON u.id = b.user_id
             WHERE b.integration_id = $1 AND b.integration_uid = $2",
        )
        .bind(integration_id)
        .bind(operator_id)
        .fetch_optional(pool);
        match tokio::time::timeout(self.timeout, lookup).await {
            Ok(Ok(Some(true))) => {
                self.active.insert(key, ()).await;
                Verdict::Active
            }
            Ok(Ok(Some(false))) => Verdict::Inactive,
            Ok(Ok(None)) => Verdict::NotFound,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot check the operator; queueing for the worker to");
                self.circuit.failed();
                Verdict::Unchecked
            }
            Err(_) => {
                tracing::warn!("no answer checking the operator; queueing for the worker to");
                self.circuit.failed();
                Verdict::Unchecked
            }
        }
    }
}
