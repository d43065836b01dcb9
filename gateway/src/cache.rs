//! A small time-bounded cache: integrations and field definitions are read on every
//! request but change rarely, so each gateway asks Postgres at most once per TTL per key.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

pub struct TtlCache<K, V> {
    ttl: Duration,
    entries: RwLock<HashMap<K, (Instant, Arc<V>)>>,
}

impl<K: Eq + Hash + Clone, V> TtlCache<K, V> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The cached value, or `load`'s, which is then cached (negative answers too: an
    /// unknown integration hammered by a misconfigured PBX costs one query per TTL).
    pub async fn get_or_load<E, F>(&self, key: &K, load: F) -> Result<Arc<V>, E>
    where
        F: std::future::Future<Output = Result<V, E>>,
    {
        if let Some(value) = self.fresh(key) {
            return Ok(value);
        }
        let value = Arc::new(load.await?);
        let mut entries = self.entries.write().expect("cache lock poisoned");
        if entries.len() > 100_000 {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
        }
        entries.insert(key.clone(), (Instant::now(), value.clone()));
        Ok(value)
    }

    pub fn invalidate(&self, key: &K) {
        self.entries
            .write()
            .expect("cache lock poisoned")
            .remove(key);
    }

    fn fresh(&self, key: &K) -> Option<Arc<V>> {
        let entries = self.entries.read().expect("cache lock poisoned");
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }
}
