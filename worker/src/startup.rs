//! Building a worker from settings; `main.rs` and the tests both go through here.

use std::future::Future;
use std::time::Duration;

use shared::config::Settings;

use crate::consumer::Consumer;
use crate::handler::Handler;
use crate::media::MediaProber;

pub struct Worker {
    consumer: Consumer,
}

impl Worker {
    pub fn build(settings: &Settings) -> anyhow::Result<Self> {
        let pool = shared::store::pool(&settings.database)?;
        let prober = settings
            .media
            .probe
            .then(|| MediaProber::new(&settings.media))
            .transpose()?;
        Ok(Self {
            consumer: Consumer {
                broker: settings.broker.clone(),
                prefetch: settings.worker.prefetch,
                handler: Handler {
                    pool,
                    prober,
                    requeue_delay: Duration::from_millis(settings.worker.requeue_delay_ms),
                },
            },
        })
    }

    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) {
        self.consumer.run_until_stopped(shutdown).await
    }
}
