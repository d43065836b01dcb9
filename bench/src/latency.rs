//! Exact percentiles of recorded latencies (nearest rank over every sample).

use serde::Serialize;

pub struct Latencies {
    sorted_micros: Vec<u64>,
}

/// What the report keeps of a set of latencies.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latencies {
    pub fn from_micros(mut micros: Vec<u64>) -> Self {
        micros.sort_unstable();
        Self {
            sorted_micros: micros,
        }
    }

    /// `q` in 0..=1; 0 when there are no samples.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let n = self.sorted_micros.len();
        if n == 0 {
            return 0.0;
        }
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        self.sorted_micros[rank - 1] as f64 / 1000.0
    }

    pub fn summary(&self) -> Summary {
        Summary {
            samples: self.sorted_micros.len(),
            p50_ms: self.quantile_ms(0.5),
            p99_ms: self.quantile_ms(0.99),
            p999_ms: self.quantile_ms(0.999),
            max_ms: self.quantile_ms(1.0),
        }
    }
}
