//! Which user (and so which department) a call's `operator_id` means for its integration:
//! resolved for a whole batch in one query, behind a short-lived cache of active operators.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operator {
    pub user_id: Uuid,
    pub department_id: Option<Uuid>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Active(Operator),
    /// No binding of this `operator_id` in the integration.
    NotFound,
    /// Bound, but the binding or the user is deactivated.
    Inactive,
}

/// (integration, `operator_id`)
pub type OperatorKey = (Uuid, String);

/// Only active operators are cached: an unknown or inactive one is looked up again each
/// time, so a new binding counts at once. A deactivation counts after at most the TTL, or at
/// once on the workers that hear the import's notification (they clear the cache).
#[derive(Clone)]
pub struct Operators {
    pool: PgPool,
    ttl: Duration,
    cache: Arc<Mutex<HashMap<OperatorKey, (Operator, Instant)>>>,
}

impl Operators {
    pub fn new(pool: PgPool, ttl: Duration) -> Self {
        Self {
            pool,
            ttl,
            cache: Arc::default(),
        }
    }

    pub fn forget_all(&self) {
        self.lock().clear();
    }

    pub async fn resolve(
        &self,
        keys: &[OperatorKey],
    ) -> Result<HashMap<OperatorKey, Resolution>, sqlx::Error> {
        let mut resolved = HashMap::with_capacity(keys.len());
        let mut missing: Vec<&OperatorKey> = Vec::new();
        {
            let cache = self.lock();
            for key in keys {
                match cache.get(key) {
                    Some((operator, at)) if at.elapsed() < self.ttl => {
                        resolved.insert(key.clone(), Resolution::Active(*operator));
                    }
                    _ if resolved.contains_key(key) => {}
                    _ => missing.push(key),
                }
            }
        }
        missing.sort();
        missing.dedup();
        if missing.is_empty() {
            return Ok(resolved);
        }
        let integrations: Vec<Uuid> = missing.iter().map(|(i, _)| *i).collect();
        let operator_ids: Vec<&str> = missing.iter().map(|(_, o)| o.as_str()).collect();
        let rows: Vec<(Uuid, String, Uuid, Option<Uuid>, bool)> = sqlx::query_as(
            "SELECT b.integration_id, b.integration_uid, u.id, u.department_id, b.active AND u.active
             FROM UNNEST($1::uuid[], $2::text[]) AS k(integration_id, operator_id)
             JOIN user_account_bindings b
               ON b.integration_id = k.integration_id AND b.integration_uid = k.operator_id
             JOIN users u ON u.id = b.user_id",
        )
        .bind(&integrations)
        .bind(&operator_ids)
        .fetch_all(&self.pool)
        .await?;
        for key in missing {
            resolved.insert(key.clone(), Resolution::NotFound);
        }
        let now = Instant::now();
        let mut cache = self.lock();
        for (integration_id, operator_id, user_id, department_id, active) in rows {
            let key = (integration_id, operator_id);
            let resolution = if active {
                let operator = Operator {
                    user_id,
                    department_id,
                };
                cache.insert(key.clone(), (operator, now));
                Resolution::Active(operator)
            } else {
                cache.remove(&key);
                Resolution::Inactive
            };
            resolved.insert(key, resolution);
        }
        Ok(resolved)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<OperatorKey, (Operator, Instant)>> {
        // A panic while holding the lock cannot leave the map half-updated in a harmful way.
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
