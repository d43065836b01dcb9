//! What a gateway remembers of Postgres failing: the time of the last failed refresh or
//! registration, so that for `auth.refresh_pause_ms` after it requests are answered from what
//! the gateway already holds instead of each trying (and waiting for) the database again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct DatabaseCircuit {
    started: Instant,
    /// Milliseconds from `started` to the last failure; 0 for none.
    failed_at_ms: Arc<AtomicU64>,
    pause: Duration,
}

impl DatabaseCircuit {
    pub fn new(pause: Duration) -> Self {
        Self {
            started: Instant::now(),
            failed_at_ms: Arc::new(AtomicU64::new(0)),
            pause,
        }
    }

    /// Whether the database failed less than the pause ago.
    pub fn open(&self) -> bool {
        match self.failed_at_ms.load(Ordering::Relaxed) {
            0 => false,
            at => self.now_ms().saturating_sub(at) < self.pause.as_millis() as u64,
        }
    }

    pub fn failed(&self) {
        self.failed_at_ms
            .store(self.now_ms().max(1), Ordering::Relaxed);
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_opens_the_circuit() {
        let circuit = DatabaseCircuit::new(Duration::from_secs(3600));
        assert!(!circuit.open());
        circuit.failed();
        assert!(circuit.open());
    }

    #[test]
    fn the_circuit_closes_once_the_pause_is_over() {
        let circuit = DatabaseCircuit::new(Duration::ZERO);
        circuit.failed();
        assert!(!circuit.open());
    }
}
