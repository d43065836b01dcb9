//! Probes in flight per host, so one slow host cannot take every worker slot (and we do not
//! hammer a customer's server with a burst of calls).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug)]
pub(super) struct HostLimiter {
    per_host: usize,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// Holds one of a host's slots; dropping it frees the slot and forgets hosts nobody uses, so
/// the map does not grow with every host ever probed.
pub(super) struct HostPermit<'a> {
    limiter: &'a HostLimiter,
    host: String,
    semaphore: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
}

impl HostLimiter {
    /// `per_host` must be in `1..=Semaphore::MAX_PERMITS` (checked by the caller).
    pub(super) fn new(per_host: usize) -> Self {
        Self {
            per_host,
            hosts: Mutex::default(),
        }
    }

    pub(super) async fn acquire(&self, host: &str) -> HostPermit<'_> {
        let semaphore = Arc::clone(
            self.lock()
                .entry(host.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_host))),
        );
        // Acquiring fails only on a closed semaphore and these are never closed.
        let permit = Arc::clone(&semaphore).acquire_owned().await.ok();
        HostPermit {
            limiter: self,
            host: host.to_owned(),
            semaphore,
            permit,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Semaphore>>> {
        // Every critical section is a single map operation: a panic cannot leave it half done.
        self.hosts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn tracked_hosts(&self) -> usize {
        self.lock().len()
    }
}

impl Drop for HostPermit<'_> {
    fn drop(&mut self) {
        drop(self.permit.take());
        let mut hosts = self.limiter.lock();
        // Clones are only taken under this lock, so two references (the map's and ours) means
        // nobody else holds or awaits a slot of this host.
        if Arc::strong_count(&self.semaphore) == 2 {
            hosts.remove(&self.host);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_host_is_forgotten_once_its_last_permit_is_dropped() {
        let limiter = HostLimiter::new(2);
        let first = limiter.acquire("a.example").await;
        let second = limiter.acquire("a.example").await;
        let other = limiter.acquire("b.example").await;
        assert_eq!(limiter.tracked_hosts(), 2);

        drop(first);
        assert_eq!(limiter.tracked_hosts(), 2);
        drop(second);
        assert_eq!(limiter.tracked_hosts(), 1);
        drop(other);
        assert_eq!(limiter.tracked_hosts(), 0);
    }

    #[tokio::test]
    async fn a_waiting_probe_keeps_its_host_tracked() {
        let limiter = Arc::new(HostLimiter::new(1));
        let held = limiter.acquire("a.example").await;

        let waiter = tokio::spawn({
            let limiter = Arc::clone(&limiter);
            async move {
                let _permit = limiter.acquire("a.example").await;
            }
        });
        // The map, `held` and its permit hold three references; the waiter adds its own.
        while Arc::strong_count(&held.semaphore) < 4 {
            tokio::task::yield_now().await;
        }

        drop(held);
        assert_eq!(limiter.tracked_hosts(), 1);
        waiter.await.expect("waiter finishes");
        assert_eq!(limiter.tracked_hosts(), 0);
    }
}
