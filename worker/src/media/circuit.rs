//! A circuit breaker per host. After `circuit_failures` consecutive connect failures or
//! timeouts a host's circuit opens: its probes are answered at once ("circuit open") instead
//! of each waiting out a timeout, for a cool-down that doubles each time the host is still
//! down. When the cool-down ends, one trial probe goes through and decides: success closes
//! the circuit, failure opens it again for longer.
//!
//! Only hosts with failures are tracked; a success forgets the host.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub(super) struct Circuits {
    failures_to_open: u32,
    first_cooldown: Duration,
    max_cooldown: Duration,
    hosts: Mutex<HashMap<String, Breaker>>,
}

#[derive(Debug)]
struct Breaker {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    cooldown: Duration,
    trial_in_flight: bool,
}

/// What a probe of a host may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    /// Go ahead.
    Closed,
    /// Go ahead: the one probe that decides whether the host is back.
    Trial,
    /// Do not connect: the host is known to be down.
    Open,
}

/// What a probe learnt about its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Health {
    /// It answered (whatever the status).
    Answered,
    /// It could not be reached in time: connect failure, DNS failure or timeout.
    Failed,
    /// Nothing: the probe never reached the network (deferred, or no slot in time).
    Unknown,
}

impl Circuits {
    pub(super) fn new(
        failures_to_open: u32,
        first_cooldown: Duration,
        max_cooldown: Duration,
    ) -> Self {
        Self {
            failures_to_open: failures_to_open.max(1),
            first_cooldown,
            max_cooldown: max_cooldown.max(first_cooldown),
            hosts: Mutex::default(),
        }
    }

    pub(super) fn admit(&self, host: &str) -> Admission {
        let now = Instant::now();
        let mut hosts = self.lock();
        let Some(breaker) = hosts.get_mut(host) else {
            return Admission::Closed;
        };
        match breaker.open_until {
            None => Admission::Closed,
            Some(until) if now < until || breaker.trial_in_flight => Admission::Open,
            Some(_) => {
                breaker.trial_in_flight = true;
                Admission::Trial
            }
        }
    }

    /// `admission` is what `admit` answered for this probe.
    pub(super) fn record(&self, host: &str, admission: Admission, health: Health) {
        let mut hosts = self.lock();
        match health {
            Health::Answered => {
                hosts.remove(host);
            }
            Health::Unknown => {
                if let Some(breaker) = hosts.get_mut(host) {
                    if admission == Admission::Trial {
                        breaker.trial_in_flight = false;
                    }
                }
            }
            Health::Failed => {
                let breaker = hosts.entry(host.to_owned()).or_insert(Breaker {
                    consecutive_failures: 0,
                    open_until: None,
                    cooldown: self.first_cooldown,
                    trial_in_flight: false,
                });
                breaker.consecutive_failures += 1;
                if admission == Admission::Trial {
                    breaker.trial_in_flight = false;
                    breaker.cooldown = (breaker.cooldown * 2).min(self.max_cooldown);
                    breaker.open_until = Some(Instant::now() + breaker.cooldown);
                } else if breaker.open_until.is_none()
                    && breaker.consecutive_failures >= self.failures_to_open
                {
                    breaker.open_until = Some(Instant::now() + breaker.cooldown);
                    tracing::warn!(host, cooldown = ?breaker.cooldown, "media host unreachable; circuit open");
                }
            }
        }
    }

    /// Hosts whose circuit is open (or waiting for its trial).
    pub(super) fn open(&self) -> usize {
        self.lock()
            .values()
            .filter(|b| b.open_until.is_some())
            .count()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Breaker>> {
        // Every critical section leaves the map consistent: a panic cannot half-update it.
        self.hosts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "rec.example:443";

    fn circuits() -> Circuits {
        Circuits::new(3, Duration::from_secs(10), Duration::from_secs(25))
    }

    fn fail(c: &Circuits, times: u32) {
        for _ in 0..times {
            let admission = c.admit(HOST);
            c.record(HOST, admission, Health::Failed);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_and_a_trial_decides() {
        let c = circuits();
        fail(&c, 2);
        assert_eq!(
            c.admit(HOST),
            Admission::Closed,
            "two failures are not enough"
        );
        fail(&c, 1);
        assert_eq!(c.admit(HOST), Admission::Open);
        assert_eq!(c.open(), 1);

        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(c.admit(HOST), Admission::Trial);
        assert_eq!(c.admit(HOST), Admission::Open, "one trial at a time");
        c.record(HOST, Admission::Trial, Health::Answered);
        assert_eq!(c.admit(HOST), Admission::Closed);
        assert_eq!(c.open(), 0, "a host that answered is forgotten");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_trial_doubles_the_cooldown_up_to_the_maximum() {
        let c = circuits();
        fail(&c, 3);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(c.admit(HOST), Admission::Trial);
        c.record(HOST, Admission::Trial, Health::Failed);

        tokio::time::advance(Duration::from_secs(19)).await;
        assert_eq!(c.admit(HOST), Admission::Open, "20 s now");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(c.admit(HOST), Admission::Trial);
        c.record(HOST, Admission::Trial, Health::Failed);

        tokio::time::advance(Duration::from_secs(25)).await;
        assert_eq!(c.admit(HOST), Admission::Trial, "capped at 25 s, not 40");
    }

    #[tokio::test(start_paused = true)]
    async fn a_trial_that_never_reached_the_host_lets_the_next_probe_try() {
        let c = circuits();
        fail(&c, 3);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(c.admit(HOST), Admission::Trial);
        c.record(HOST, Admission::Trial, Health::Unknown);
        assert_eq!(c.admit(HOST), Admission::Trial);
    }

    #[test]
    fn an_answer_resets_the_count() {
        let c = circuits();
        fail(&c, 2);
        c.record(HOST, Admission::Closed, Health::Answered);
        fail(&c, 2);
        assert_eq!(c.admit(HOST), Admission::Closed);
    }
}
