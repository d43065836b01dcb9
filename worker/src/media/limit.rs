//! Probes per host (host:port): at most `per_host` in flight, so that one slow host cannot
//! take every slot and a customer's server is not hammered by a burst of calls; and at most
//! `backlog` more waiting, so that a host that cannot keep up has its excess put off instead
//! of held.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug)]
pub(super) struct HostLimiter {
    per_host: usize,
    backlog: usize,
    hosts: Mutex<HashMap<String, Host>>,
}

#[derive(Debug)]
struct Host {
    slots: Arc<Semaphore>,
    /// Probes of this host in flight or waiting for a slot.
    queued: usize,
}

/// A probe's place in its host's line; dropping it leaves the line, and a host nobody is in
/// line for is forgotten, so the map does not grow with every host ever probed.
pub(super) struct InLine<'a> {
    limiter: &'a HostLimiter,
    host: String,
    slots: Arc<Semaphore>,
}

impl HostLimiter {
    /// `per_host` must be in `1..=Semaphore::MAX_PERMITS` (checked by the caller).
    pub(super) fn new(per_host: usize, backlog: usize) -> Self {
        Self {
            per_host,
            backlog,
            hosts: Mutex::default(),
        }
    }

    /// Joins the host's line, unless `may_refuse` and the line is full.
    pub(super) fn join(&self, host: &str, may_refuse: bool) -> Option<InLine<'_>> {
        let mut hosts = self.lock();
        let entry = hosts.entry(host.to_owned()).or_insert_with(|| Host {
            slots: Arc::new(Semaphore::new(self.per_host)),
            queued: 0,
        });
        if may_refuse && entry.queued >= self.per_host + self.backlog {
            return None;
        }
        entry.queued += 1;
        Some(InLine {
            limiter: self,
            host: host.to_owned(),
            slots: Arc::clone(&entry.slots),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Host>> {
        // Every critical section is a single map operation: a panic cannot leave it half done.
        self.hosts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn tracked_hosts(&self) -> usize {
        self.lock().len()
    }
}

impl InLine<'_> {
    pub(super) async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        // Acquiring fails only on a closed semaphore and these are never closed.
        Arc::clone(&self.slots).acquire_owned().await.ok()
    }
}

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        let mut hosts = self.limiter.lock();
        if let Some(host) = hosts.get_mut(&self.host) {
            host.queued -= 1;
            if host.queued == 0 {
                hosts.remove(&self.host);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_host_is_forgotten_once_nobody_is_in_its_line() {
        let limiter = HostLimiter::new(2, 0);
        let first = limiter.join("a.example:80", false).unwrap();
        let second = limiter.join("a.example:80", false).unwrap();
        let other = limiter.join("b.example:80", false).unwrap();
        assert_eq!(limiter.tracked_hosts(), 2);

        drop(first);
        assert_eq!(limiter.tracked_hosts(), 2);
        drop(second);
        assert_eq!(limiter.tracked_hosts(), 1);
        drop(other);
        assert_eq!(limiter.tracked_hosts(), 0);
    }

    #[tokio::test]
    async fn a_full_line_refuses_those_who_may_be_put_off_and_no_other_host() {
        let limiter = HostLimiter::new(1, 1);
        let first = limiter.join("a.example:80", true).unwrap();
        let _slot = first.slot().await.unwrap();
        let _waiting = limiter.join("a.example:80", true).unwrap();

        assert!(
            limiter.join("a.example:80", true).is_none(),
            "in flight 1 + backlog 1"
        );
        assert!(
            limiter.join("a.example:80", false).is_some(),
            "put off too often: waits"
        );
        assert!(limiter.join("b.example:80", true).is_some());
    }
}
