//! The consuming loop: manual acks, bounded prefetch, a session rebuilt whenever the broker
//! connection is lost, and a shutdown that finishes (and acks) in-flight messages first.

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use shared::broker::{self, Topology};
use shared::config::BrokerSettings;
use tokio::task::JoinSet;

use crate::handler::{Handler, Outcome};

const RECONNECT_DELAY: Duration = Duration::from_secs(1);

pub struct Consumer {
    pub broker: BrokerSettings,
    pub prefetch: u16,
    pub handler: Handler,
}

enum SessionEnd {
    Stopped,
    Lost(String),
}

impl Consumer {
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let topology = Topology::new(&self.broker);
        loop {
            match self.session(&topology, &mut shutdown).await {
                SessionEnd::Stopped => return,
                SessionEnd::Lost(why) => {
                    tracing::warn!(%why, "broker session lost; reconnecting");
                    tokio::select! {
                        _ = &mut shutdown => return,
                        _ = tokio::time::sleep(RECONNECT_DELAY) => {}
                    }
                }
            }
        }
    }

    async fn session(
        &self,
        topology: &Topology,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
    ) -> SessionEnd {
        let connection = match broker::connect(&self.broker, "worker").await {
            Ok(c) => c,
            Err(e) => return SessionEnd::Lost(e.to_string()),
        };
        let setup = async {
            let channel = connection.create_channel().await?;
            topology.declare(&channel).await?;
            channel
                .basic_qos(self.prefetch, BasicQosOptions::default())
                .await?;
            let consumer = channel
                .basic_consume(
                    topology.work_queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            Ok::<_, lapin::Error>((channel, consumer))
        };
        let (channel, mut consumer) = match setup.await {
            Ok(v) => v,
            Err(e) => return SessionEnd::Lost(e.to_string()),
        };
        tracing::info!(queue = %topology.work_queue, prefetch = self.prefetch, "consuming");

        let mut in_flight = JoinSet::new();
        let end = loop {
            tokio::select! {
                _ = &mut *shutdown => {
                    let _ = channel.basic_cancel(consumer.tag(), BasicCancelOptions::default()).await;
                    break SessionEnd::Stopped;
                }
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        let handler = self.handler.clone();
                        in_flight.spawn(async move {
                            let outcome = handler.handle(&delivery.data).await;
                            settle(delivery, outcome).await
                        });
                    }
                    Some(Err(e)) => break SessionEnd::Lost(e.to_string()),
                    None => break SessionEnd::Lost("the broker cancelled the consumer".into()),
                },
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            }
        };
        // Messages being handled are finished (and acked if the channel still lives);
        // whatever is not acked goes back to the queue when the connection closes.
        while in_flight.join_next().await.is_some() {}
        let _ = connection.close(200, "worker stopping".into()).await;
        end
    }
}

async fn settle(delivery: Delivery, outcome: Outcome) {
    let result = match outcome {
        Outcome::Done => delivery.acker.ack(BasicAckOptions::default()).await,
        Outcome::Retry => {
            delivery
                .acker
                .nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                })
                .await
        }
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not settle a delivery; the broker will redeliver it");
    }
}
