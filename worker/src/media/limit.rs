//! Probes per host (host:port): at most `per_host` in flight, so that one slow host cannot
//! take every slot and a customer's server is not hammered by a burst of calls; and, beyond
//! `backlog` more waiting, no more in a line the host would not get through within `budget`
//! (judged by how long its probes have been taking), so that a host that cannot keep up has
//! its excess put off instead of held. A fast host's long line is served in milliseconds and
//! is not cut; a host not yet heard from counts as slow.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Hosts remembered with nobody in their line; past this, all such are forgotten at once.
const REMEMBERED_HOSTS: usize = 10_000;

#[derive(Debug)]
pub(super) struct HostLimiter {
    per_host: usize,
    backlog: usize,
    budget: Duration,
    hosts: Mutex<HashMap<String, Host>>,
}

#[derive(Debug)]
struct Host {
    slots: Arc<Semaphore>,
    /// Probes of this host in flight or waiting for a slot.
    queued: usize,
    /// How long its probes take, smoothed; `None` until one has finished.
    typical: Option<Duration>,
    /// Told when its first probe finishes.
    heard_from: Arc<Notify>,
}

/// The answer to a probe asking to join a host's line.
pub(super) enum Join<'a> {
    InLine(InLine<'a>),
    /// The line is full and the host would not get through it in time.
    Full,
    /// The line is full and nothing is known of the host yet: told when something is.
    NotHeardFrom(Arc<Notify>),
}

/// A probe's place in its host's line; dropping it leaves the line. A host nobody is in line
/// for is forgotten unless it has answered: how long its probes take is kept for its next
/// burst, until more than [`REMEMBERED_HOSTS`] hosts are known.
pub(super) struct InLine<'a> {
    limiter: &'a HostLimiter,
    host: String,
    slots: Arc<Semaphore>,
}

impl HostLimiter {
    /// `per_host` must be in `1..=Semaphore::MAX_PERMITS` (checked by the caller).
    pub(super) fn new(per_host: usize, backlog: usize, budget: Duration) -> Self {
        Self {
            per_host,
            backlog,
            budget,
            hosts: Mutex::default(),
        }
    }

    /// Joins the host's line, unless `may_refuse` and the line is full.
    pub(super) fn join(&self, host: &str, may_refuse: bool) -> Join<'_> {
        let mut hosts = self.lock();
        if hosts.len() > REMEMBERED_HOSTS {
            hosts.retain(|_, h| h.queued > 0);
        }
        let entry = hosts.entry(host.to_owned()).or_insert_with(|| Host {
            slots: Arc::new(Semaphore::new(self.per_host)),
            queued: 0,
            typical: None,
            heard_from: Arc::default(),
        });
        if may_refuse && entry.queued >= self.per_host + self.backlog {
            let rounds = u32::try_from(entry.queued / self.per_host + 1).unwrap_or(u32::MAX);
            match entry.typical {
                None => return Join::NotHeardFrom(Arc::clone(&entry.heard_from)),
                Some(typical) if typical.saturating_mul(rounds) > self.budget => return Join::Full,
                Some(_) => {}
            }
        }
        entry.queued += 1;
        Join::InLine(InLine {
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

    /// A probe of the host took `took` (a timeout counts in full).
    pub(super) fn took(&self, took: Duration) {
        if let Some(host) = self.limiter.lock().get_mut(&self.host) {
            host.typical = Some(match host.typical {
                None => {
                    host.heard_from.notify_waiters();
                    took
                }
                Some(typical) => typical.mul_f64(0.8) + took.mul_f64(0.2),
            });
        }
    }
}

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        let mut hosts = self.limiter.lock();
        if let Some(host) = hosts.get_mut(&self.host) {
            host.queued -= 1;
            if host.queued == 0 && host.typical.is_none() {
                hosts.remove(&self.host);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_line(join: Join<'_>) -> InLine<'_> {
        match join {
            Join::InLine(in_line) => in_line,
            _ => panic!("refused"),
        }
    }

    #[tokio::test]
    async fn a_host_that_never_answered_is_forgotten_once_nobody_is_in_its_line() {
        let limiter = HostLimiter::new(2, 0, Duration::from_secs(1));
        let first = in_line(limiter.join("a.example:80", false));
        let second = in_line(limiter.join("a.example:80", false));
        let other = in_line(limiter.join("b.example:80", false));
        other.took(Duration::from_millis(3));
        assert_eq!(limiter.tracked_hosts(), 2);

        drop(first);
        assert_eq!(limiter.tracked_hosts(), 2);
        drop(second);
        assert_eq!(limiter.tracked_hosts(), 1);
        drop(other);
        assert_eq!(
            limiter.tracked_hosts(),
            1,
            "b answered: remembered for its next burst"
        );
    }

    #[tokio::test]
    async fn a_full_line_refuses_those_who_may_be_put_off_and_no_other_host() {
        let limiter = HostLimiter::new(1, 1, Duration::from_secs(1));
        let first = in_line(limiter.join("a.example:80", true));
        let _slot = first.slot().await.unwrap();
        let _waiting = in_line(limiter.join("a.example:80", true));

        assert!(
            matches!(limiter.join("a.example:80", true), Join::NotHeardFrom(_)),
            "in flight 1 + backlog 1, and nothing known of the host"
        );
        first.took(Duration::from_secs(5));
        assert!(matches!(limiter.join("a.example:80", true), Join::Full));
        assert!(
            matches!(limiter.join("a.example:80", false), Join::InLine(_)),
            "put off too often: waits"
        );
        assert!(matches!(
            limiter.join("b.example:80", true),
            Join::InLine(_)
        ));
    }

    #[tokio::test]
    async fn a_fast_hosts_long_line_is_not_cut() {
        let limiter = HostLimiter::new(1, 0, Duration::from_millis(100));
        let first = in_line(limiter.join("a.example:80", true));
        first.took(Duration::from_millis(1));
        let line: Vec<_> = (0..50)
            .map(|_| limiter.join("a.example:80", true))
            .collect();
        assert!(
            line.iter().all(|j| matches!(j, Join::InLine(_))),
            "served in about 50 ms"
        );

        first.took(Duration::from_secs(10));
        assert!(
            matches!(limiter.join("a.example:80", true), Join::Full),
            "slow now: the line is cut"
        );
    }
}
