//! The test's queues: what waits in them, what consumes them, raw publishes around the
//! gateway, and their removal.

use std::time::Duration;

use serde_json::Value;
use shared::broker::{ProbeTopology, Publisher};
use shared::config::Settings;
use shared::message::{self, CallEnvelope, CallMessage};
use uuid::Uuid;

use crate::{eventually, Integration, TestEnv, AMQP_URL};

impl TestEnv {
    pub fn work_queue(&self) -> String {
        format!("{}.calls", self.settings.broker.queue_prefix)
    }

    /// Messages ready in the work queue (not counting those a worker holds unacked); 0 when
    /// nothing has declared the queue yet.
    pub async fn ready_count(&self) -> u32 {
        self.ready_in(&self.work_queue()).await
    }

    /// Messages ready in `queue`; 0 when nothing has declared it yet.
    pub async fn ready_in(&self, queue: &str) -> u32 {
        self.queue_counts(queue).await.0
    }

    /// Consumers of `queue`; 0 when nothing has declared it yet.
    pub async fn consumers(&self, queue: &str) -> u32 {
        self.queue_counts(queue).await.1
    }

    /// (ready messages, consumers) of `queue`, from a passive declare.
    async fn queue_counts(&self, queue: &str) -> (u32, u32) {
        let conn = lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
            .await
            .expect("broker");
        let channel = conn.create_channel().await.expect("channel");
        let passive = lapin::options::QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let counts = channel
            .queue_declare(queue.into(), passive, Default::default())
            .await
            .map(|q| (q.message_count(), q.consumer_count()))
            .unwrap_or((0, 0));
        shared::broker::close(&conn, "").await;
        counts
    }

    /// Waits until the work queue holds exactly `expected` ready messages.
    pub async fn wait_for_ready(&self, expected: u32, timeout: Duration) {
        let last = eventually(timeout, || async {
            let n = self.ready_count().await;
            (n == expected).then_some(n).ok_or(n)
        })
        .await;
        if let Err(n) = last {
            panic!(
                "{} stayed at {n} ready messages, expected {expected}",
                self.work_queue()
            );
        }
    }

    /// Publishes bytes straight onto the work queue, as a gateway of another version (or a
    /// corrupted message) would, and waits for the broker's confirm. Declares the queues
    /// first, as a gateway does on connecting: right after start, no one may have yet.
    pub async fn publish_raw(&self, payload: &[u8]) {
        self.publish_raw_with(payload, lapin::BasicProperties::default())
            .await;
    }

    /// `publish_raw` with `properties` (persistent whatever they say).
    pub async fn publish_raw_with(&self, payload: &[u8], properties: lapin::BasicProperties) {
        let conn = lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
            .await
            .expect("broker");
        let channel = conn.create_channel().await.expect("channel");
        shared::broker::Topology::new(&self.settings.broker)
            .declare(&channel)
            .await
            .expect("declare the queues");
        channel
            .confirm_select(Default::default())
            .await
            .expect("confirms");
        let confirmation = channel
            .basic_publish(
                "".into(),
                self.work_queue().as_str().into(),
                lapin::options::BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                payload,
                properties.with_delivery_mode(2),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert_eq!(
            confirmation,
            lapin::Confirmation::Ack(None),
            "the work queue took the message"
        );
        shared::broker::close(&conn, "").await;
    }

    /// The properties and body of every message ready on the work queue, all left there:
    /// taken unacked, they go back when the connection closes.
    pub async fn peek_work_queue(&self) -> Vec<(lapin::BasicProperties, Vec<u8>)> {
        let conn = lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
            .await
            .expect("broker");
        let channel = conn.create_channel().await.expect("channel");
        let mut peeked = Vec::new();
        while let Some(message) = channel
            .basic_get(self.work_queue().as_str().into(), Default::default())
            .await
            .expect("basic.get")
        {
            peeked.push((message.properties.clone(), message.delivery.data.clone()));
        }
        shared::broker::close(&conn, "").await;
        peeked
    }

    /// Publishes `calls` of `integration` as one group message onto the work queue, the
    /// way a gateway under load does, through the same publisher; waits for the confirm.
    pub async fn publish_group(&self, integration: &Integration, calls: &[Value]) {
        let messages = Self::messages(integration, calls);
        let count = messages.len();
        Publisher::new(self.settings.broker.clone(), "test")
            .publish_group(&message::group(messages), count)
            .await
            .expect("the broker confirmed the group");
    }

    /// `calls` of `integration` encoded as a gateway would put them on the queue.
    pub fn messages(integration: &Integration, calls: &[Value]) -> Vec<Vec<u8>> {
        calls
            .iter()
            .map(|body| {
                let call = shared::contract::parse_call(
                    &body.into(),
                    &std::collections::HashMap::new(),
                    &Settings::defaults().limits,
                )
                .expect("a valid call")
                .call;
                CallMessage::V1(CallEnvelope {
                    ingest_id: Uuid::now_v7(),
                    integration_id: integration.id,
                    organisation_id: integration.organisation_id,
                    received_at: chrono::Utc::now(),
                    call,
                })
                .to_bytes()
            })
            .collect()
    }
}

/// Every queue of the test's prefix: the calls' and the probe stage's.
pub async fn delete_queues(settings: &Settings) {
    let Ok(conn) =
        lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default()).await
    else {
        return;
    };
    if let Ok(channel) = conn.create_channel().await {
        let calls = shared::broker::Topology::new(&settings.broker);
        let probes = ProbeTopology::new(&settings.broker.queue_prefix, &settings.media);
        for queue in calls.queues().into_iter().chain(probes.queues()) {
            let _ = channel
                .queue_delete(queue.into(), lapin::options::QueueDeleteOptions::default())
                .await;
        }
    }
    shared::broker::close(&conn, "").await;
}
