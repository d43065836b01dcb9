//! What happens to one message: decode, resolve the operator, probe the media, store; or
//! set it aside with its reason. Returns what the consumer must tell the broker, which is
//! told only after Postgres has committed whatever the message led to.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use shared::domain::CallKey;
use shared::message::CallMessage;
use shared::store::dead_letters::{NewDeadLetter, Reason};
use sqlx::PgPool;
use tracing::Instrument;
use uuid::Uuid;

use crate::failure;
use crate::media::{MediaProber, MediaStatus};
use crate::metrics::Metrics;
use crate::operators::{self, Resolution};
use crate::store;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored, or set aside in Postgres: ack.
    Done,
    /// A failure that passes (database unavailable, deadlock, ...): try again later.
    Transient { class: &'static str, error: String },
}

/// Sees each decoded message before it is handled. The seam through which tests make the
/// handler panic on a chosen call, as a bug would.
pub type Inspector = Arc<dyn Fn(&CallMessage) + Send + Sync>;

#[derive(Clone)]
pub struct Handler {
    pub pool: PgPool,
    pub prober: Option<MediaProber>,
    pub metrics: Metrics,
    pub inspector: Option<Inspector>,
}

impl Handler {
    pub async fn handle(&self, payload: &[u8]) -> Outcome {
        let error = match self.process(payload).await {
            Ok(()) => return Outcome::Done,
            Err(e) => e,
        };
        if let Some(class) = failure::transient_class(&error) {
            tracing::warn!(%error, class, "transient database error; the call will be retried");
            return Outcome::Transient {
                class,
                error: error.to_string(),
            };
        }
        tracing::error!(%error, "the database refused the call; setting it aside");
        let detail = format!("the database refused the call: {error}");
        match self
            .set_aside(payload, Reason::DatabaseRejected, detail, 1, None)
            .await
        {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::Transient {
                class: failure::transient_class(&e).unwrap_or("database_error"),
                error: e.to_string(),
            },
        }
    }

    /// Records the message as a dead letter (whatever of it can be decoded) and clears its
    /// queued note, in one transaction.
    pub async fn set_aside(
        &self,
        payload: &[u8],
        reason: Reason,
        detail: String,
        attempts: i32,
        first_failed_at: Option<DateTime<Utc>>,
    ) -> Result<(), sqlx::Error> {
        let mut letter = match CallMessage::from_bytes(payload) {
            Ok(message) => letter_for(
                &message,
                &message.envelope().call.storage_key(),
                reason,
                detail,
            ),
            Err(_) => undecodable_letter(payload, detail),
        };
        letter.reason = reason;
        letter.attempts = attempts;
        letter.first_failed_at = first_failed_at;
        self.record(letter).await
    }

    async fn record(&self, letter: NewDeadLetter) -> Result<(), sqlx::Error> {
        tracing::info!(reason = %letter.reason, detail = %letter.detail, "setting a call aside");
        store::set_aside(&self.pool, &letter).await?;
        self.metrics
            .dead_lettered
            .get_or_create(&shared::metrics::label("reason", letter.reason.as_str()))
            .inc();
        Ok(())
    }

    async fn process(&self, payload: &[u8]) -> Result<(), sqlx::Error> {
        let message = match CallMessage::from_bytes(payload) {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(%error, "undecodable message");
                let detail =
                    format!("cannot decode the message (unknown version or corrupt): {error}");
                return self.record(undecodable_letter(payload, detail)).await;
            }
        };
        if let Some(inspect) = &self.inspector {
            inspect(&message);
        }
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

    async fn process_call(&self, message: &CallMessage, key: &CallKey) -> Result<(), sqlx::Error> {
        let envelope = message.envelope();
        let call = &envelope.call;
        let operator_id = call.operator_id.as_str();
        let operator = match operators::resolve(&self.pool, envelope.integration_id, operator_id)
            .await?
        {
            Resolution::Active(operator) => operator,
            Resolution::Inactive => {
                let detail =
                    format!("operator_id {operator_id:?} is bound to an inactive user or binding");
                let letter = letter_for(message, key, Reason::OperatorInactive, detail);
                return self.record(letter).await;
            }
            Resolution::NotFound => {
                let detail =
                    format!("no operator bound to operator_id {operator_id:?} in this integration");
                let letter = letter_for(message, key, Reason::OperatorNotFound, detail);
                return self.record(letter).await;
            }
        };

        let media = match &self.prober {
            Some(prober) => prober.probe(call.media_url.url()).await,
            None => MediaStatus::skipped(call.media_url.url()),
        };
        store::store_call(&self.pool, envelope, key, operator, &media).await?;
        self.metrics.stored.inc();
        tracing::debug!(media_reachable = media.reachable, "call stored");
        Ok(())
    }
}

fn letter_for(
    message: &CallMessage,
    key: &CallKey,
    reason: Reason,
    detail: String,
) -> NewDeadLetter {
    let envelope = message.envelope();
    NewDeadLetter {
        ingest_id: envelope.ingest_id,
        integration_id: Some(envelope.integration_id),
        operator_id: Some(envelope.call.operator_id.as_str().to_owned()),
        uid: Some(key.uid.clone()),
        reason,
        detail,
        message: serde_json::to_value(message).unwrap_or(Value::Null),
        attempts: 1,
        first_failed_at: None,
    }
}

/// Kept as JSON when it is JSON, as text otherwise. Its id comes from its content, so that
/// redeliveries of the same bytes add attempts to one dead letter instead of new ones.
fn undecodable_letter(payload: &[u8], detail: String) -> NewDeadLetter {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(payload);
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    NewDeadLetter {
        ingest_id: Uuid::new_v8(id),
        integration_id: None,
        operator_id: None,
        uid: None,
        reason: Reason::Undecodable,
        detail,
        message: serde_json::from_slice::<Value>(payload)
            .unwrap_or_else(|_| Value::from(String::from_utf8_lossy(payload).into_owned())),
        attempts: 1,
        first_failed_at: None,
    }
}
