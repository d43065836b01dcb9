//! Building a worker from settings; `main.rs` and the tests both go through here.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use shared::broker::Publisher;
use shared::config::Settings;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auto_replay::AutoReplay;
use crate::consumer::{Batching, Consumer, Settler};
use crate::handler::{Handler, Inspector};
use crate::media::MediaProber;
use crate::metrics::Metrics;
use crate::operators::Operators;
use crate::retry::Retrier;

pub struct Worker {
    consumer: Consumer,
    auto_replay: Option<AutoReplay>,
    listener: TcpListener,
    metrics: Metrics,
}

impl Worker {
    /// Binds the metrics address first (port 0 works), so tests know the port.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        Self::build_inspected(settings, None).await
    }

    /// A worker whose handler shows each decoded message to `inspector` first.
    pub async fn build_inspected(
        settings: &Settings,
        inspector: Option<Inspector>,
    ) -> anyhow::Result<Self> {
        let pool = shared::store::pool(&settings.database)?;
        let prober = settings
            .media
            .probe
            .then(|| MediaProber::new(&settings.media))
            .transpose()?;
        let metrics = Metrics::default();
        let operators = Operators::new(
            pool.clone(),
            Duration::from_millis(settings.worker.operator_cache_ttl_ms),
        );
        let publisher = Publisher::new(settings.broker.clone(), "worker-publisher");
        let auto_replay = (settings.worker.auto_replay_interval_ms > 0).then(|| AutoReplay {
            pool: pool.clone(),
            publisher: publisher.clone(),
            metrics: metrics.clone(),
            operators: operators.clone(),
            interval: settings.worker.auto_replay_interval(),
            batch: settings.worker.replay_batch.max(1),
        });
        let settler = Settler {
            handler: Handler {
                pool,
                prober,
                operators,
                metrics: metrics.clone(),
                inspector,
            },
            retrier: Retrier::new(publisher.clone()),
            publisher,
            metrics: metrics.clone(),
            delivery_limit: settings.broker.delivery_limit,
        };
        Ok(Self {
            consumer: Consumer {
                broker: settings.broker.clone(),
                batching: Batching {
                    lanes: settings.worker.lanes,
                    prefetch: settings.worker.prefetch,
                    size: settings.worker.batch_size.max(1),
                    wait: Duration::from_millis(settings.worker.batch_wait_ms),
                },
                settler: Arc::new(settler),
            },
            auto_replay,
            listener: TcpListener::bind(settings.worker.listen).await?,
            metrics,
        })
    }

    /// Port of /metrics and /healthz.
    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) {
        let (stop, stopped) = watch::channel(false);
        let until_stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let http = axum::serve(self.listener, crate::http::router(self.metrics))
            .with_graceful_shutdown(until_stopped());
        let http = tokio::spawn(async move {
            if let Err(e) = http.await {
                tracing::error!(error = %e, "metrics server failed");
            }
        });
        let replay = self
            .auto_replay
            .map(|auto| tokio::spawn(auto.run_until_stopped(until_stopped())));
        let consuming = self.consumer.run_until_stopped(until_stopped());
        tokio::pin!(consuming);
        tokio::select! {
            _ = &mut consuming => {}
            _ = shutdown => {
                let _ = stop.send(true);
                consuming.await;
            }
        }
        let _ = stop.send(true);
        let _ = http.await;
        if let Some(replay) = replay {
            let _ = replay.await;
        }
    }
}
