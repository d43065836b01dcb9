//! What happens to one message: decode, resolve the operator, probe the media, store.
//! Returns what the consumer must tell the broker; the broker is told only after Postgres
//! has committed whatever the message led to.

use std::time::Duration;

use serde_json::Value;
use shared::domain::CallKey;
use shared::message::CallMessage;
use sqlx::PgPool;
use tracing::Instrument;
use uuid::Uuid;

use crate::media::{MediaProber, MediaStatus};
use crate::operators::{self, Resolution};
use crate::store::{self, DeadLetter, DeadLetterReason};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stored, or dead-lettered in Postgres: ack.
    Done,
    /// Postgres could not be reached: requeue after a pause; the delivery limit bounds it.
    Retry,
}

#[derive(Clone)]
pub struct Handler {
    pub pool: PgPool,
    pub prober: Option<MediaProber>,
    pub requeue_delay: Duration,
}

impl Handler {
    pub async fn handle(&self, payload: &[u8]) -> Outcome {
        match self.process(payload).await {
            Ok(()) => Outcome::Done,
            Err(e) => {
                tracing::warn!(error = %e, "database error, message will be requeued");
                tokio::time::sleep(self.requeue_delay).await;
                Outcome::Retry
            }
        }
    }

    async fn process(&self, payload: &[u8]) -> Result<(), sqlx::Error> {
        match CallMessage::from_bytes(payload) {
            Ok(message) => {
                let envelope = message.envelope();
                let key = envelope.call.storage_key();
                let span = tracing::info_span!(
                    "call",
                    ingest_id = %envelope.ingest_id,
                    integration = %envelope.integration_id,
                    uid = %key.uid,
                );
                self.process_call(&message, &key).instrument(span).await
            }
            Err(e) => self.set_aside_undecodable(payload, e).await,
        }
    }

    async fn process_call(&self, message: &CallMessage, key: &CallKey) -> Result<(), sqlx::Error> {
        let envelope = message.envelope();
        let call = &envelope.call;
        let operator = match operators::resolve(
            &self.pool,
            envelope.integration_id,
            call.operator_id.as_str(),
        )
        .await?
        {
            Resolution::Active(operator) => operator,
            unresolved => {
                let (reason, detail) = match unresolved {
                    Resolution::Inactive => (
                        DeadLetterReason::OperatorInactive,
                        format!(
                            "operator_id {:?} is bound to an inactive user or binding",
                            call.operator_id.as_str()
                        ),
                    ),
                    _ => (
                        DeadLetterReason::OperatorNotFound,
                        format!(
                            "no operator bound to operator_id {:?} in this integration",
                            call.operator_id.as_str()
                        ),
                    ),
                };
                tracing::info!(reason = reason.as_str(), "dead-lettering call");
                return store::dead_letter(
                    &self.pool,
                    DeadLetter {
                        ingest_id: envelope.ingest_id,
                        integration_id: Some(envelope.integration_id),
                        operator_id: Some(call.operator_id.as_str()),
                        uid: Some(&key.uid),
                        reason,
                        detail,
                        message: serde_json::to_value(message).unwrap_or(Value::Null),
                    },
                )
                .await;
            }
        };

        let media = match &self.prober {
            Some(prober) => prober.probe(call.media_url.url()).await,
            None => MediaStatus::skipped(call.media_url.url()),
        };
        store::store_call(&self.pool, envelope, key, operator, &media).await?;
        tracing::debug!(media_reachable = media.reachable, "call stored");
        Ok(())
    }

    async fn set_aside_undecodable(
        &self,
        payload: &[u8],
        error: serde_json::Error,
    ) -> Result<(), sqlx::Error> {
        tracing::warn!(%error, "undecodable message");
        let as_json = serde_json::from_slice::<Value>(payload)
            .unwrap_or_else(|_| Value::from(String::from_utf8_lossy(payload).into_owned()));
        store::dead_letter(
            &self.pool,
            DeadLetter {
                ingest_id: Uuid::now_v7(),
                integration_id: None,
                operator_id: None,
                uid: None,
                reason: DeadLetterReason::Undecodable,
                detail: format!("cannot decode the message (unknown version or corrupt): {error}"),
                message: as_json,
            },
        )
        .await
    }
}
