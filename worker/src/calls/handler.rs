//! What happens to a batch of messages: decode, resolve the operators (one query), and write
//! everything in one transaction; or set a message aside with its reason. Returns, per
//! message, what the consumer must tell the broker, which is told only after Postgres has
//! committed whatever the message led to, and the media probes the stored calls need.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::{BoxFuture, FutureExt};
use shared::domain::CallKey;
use shared::message::{self, CallMessage};
use shared::metrics::label;
use shared::probe_work::Probe;
use shared::store::dead_letters::{NewDeadLetter, Reason};
use shared::text_message::TextMessage;
use sqlx::PgPool;
use uuid::Uuid;

use super::letters::{attribute, letter_for, undecodable_letter};
use super::registration::{self, Refusal};
use super::store::{self, Ready};
use crate::failure::{self, Failure};
use crate::metrics::Metrics;
use crate::operators::{OperatorKey, Operators};
use crate::texts::store::ReadyText;
use crate::texts::DecodedText;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored, superseded by a newer version in its batch, or set aside in Postgres: ack.
    Done,
    /// A failure that passes (database unavailable, deadlock, ...): try again later.
    Transient { class: &'static str, error: String },
    /// Handling it panicked: a bug, or a message that triggers one.
    Panicked(String),
    /// The database refused the call, and then its dead letter too (the reason says why):
    /// handed to the dead queue, which parks it if it cannot be recorded from there either.
    Unrecordable(String),
}

/// A batch's outcomes, one per payload in order, and the probes of what it stored.
pub struct Handled {
    pub outcomes: Vec<Outcome>,
    pub probes: Vec<Probe>,
}

/// Sees each decoded message before it is handled. The seam through which tests make the
/// handler panic on a chosen call, as a bug would.
pub type Inspector = Arc<dyn Fn(&CallMessage) + Send + Sync>;

#[derive(Clone)]
pub struct Handler {
    pub pool: PgPool,
    /// `media.probe`: whether stored calls get their media probed.
    pub probe_media: bool,
    pub operators: Operators,
    pub metrics: Metrics,
    pub inspector: Option<Inspector>,
    /// `limits.max_field_definitions`, for keys a gateway could not register.
    pub max_field_definitions: usize,
}

/// What a payload holds.
enum Payload {
    Call(CallMessage),
    Text(TextMessage),
}

/// A call of the batch that decoded.
struct Decoded {
    message: CallMessage,
    key: CallKey,
}

impl Handler {
    pub fn handle_batch<'a>(&'a self, payloads: &'a [&'a [u8]]) -> BoxFuture<'a, Handled> {
        // Boxed: a batch the database refuses is handled again in halves.
        async move {
            let mut outcomes = vec![Outcome::Done; payloads.len()];
            let mut letters = Vec::new();
            let mut decoded = Vec::with_capacity(payloads.len());
            let mut texts = Vec::new();
            for (index, payload) in payloads.iter().enumerate() {
                match catch_unwind(AssertUnwindSafe(|| self.decode(payload))) {
                    Err(panic) => outcomes[index] = Outcome::Panicked(panic_message(&*panic)),
                    Ok(Err(letter)) => letters.push(*letter),
                    Ok(Ok(Payload::Call(message))) => {
                        let key = message.envelope().call.storage_key();
                        decoded.push(Decoded { message, key });
                    }
                    Ok(Ok(Payload::Text(message))) => texts.push(DecodedText::new(message)),
                }
            }
            let written = match self.register_fields(decoded, &mut letters).await {
                Ok(decoded) => self.write(&decoded, &texts, letters).await,
                Err(error) => Err(error),
            };
            match written {
                Ok(probes) => Handled { outcomes, probes },
                Err(error) => self.failed(payloads, outcomes, error).await,
            }
        }
        .boxed()
    }

    /// A call, or else a text (few: they pay for the call's attempt first).
    fn decode(&self, payload: &[u8]) -> Result<Payload, Box<NewDeadLetter>> {
        let message = match CallMessage::from_bytes(payload) {
            Ok(message) => message,
            Err(error) => {
                if let Ok(text) = TextMessage::from_bytes(payload) {
                    return Ok(Payload::Text(text));
                }
                tracing::warn!(%error, "undecodable message");
                return Err(Box::new(undecodable_letter(
                    payload,
                    format!("cannot decode the message (unknown version or corrupt): {error}"),
                )));
            }
        };
        if let Some(inspect) = &self.inspector {
            inspect(&message);
        }
        Ok(Payload::Call(message))
    }

    /// Registers the custom field keys gateways could not (see `registration.rs`); the calls
    /// whose keys cannot be are set aside. Asks nothing of the database when no call has any.
    async fn register_fields(
        &self,
        mut decoded: Vec<Decoded>,
        letters: &mut Vec<NewDeadLetter>,
    ) -> Result<Vec<Decoded>, sqlx::Error> {
        if decoded
            .iter()
            .all(|d| d.message.unregistered_fields().is_none())
        {
            return Ok(decoded);
        }
        let mut messages: Vec<&mut CallMessage> =
            decoded.iter_mut().map(|d| &mut d.message).collect();
        let refusals =
            registration::register(&self.pool, self.max_field_definitions, &mut messages).await?;
        let mut kept = Vec::with_capacity(decoded.len());
        for (d, refusal) in decoded.into_iter().zip(refusals) {
            match refusal {
                None => kept.push(d),
                Some(Refusal { reason, detail }) => {
                    let envelope = d.message.envelope();
                    tracing::warn!(
                        %reason,
                        %detail,
                        ingest_id = %envelope.ingest_id,
                        uid = %d.key.uid,
                        "setting the call aside"
                    );
                    letters.push(letter_for(&d.message, &d.key, reason, detail));
                }
            }
        }
        Ok(kept)
    }

    async fn write(
        &self,
        decoded: &[Decoded],
        texts: &[DecodedText],
        mut letters: Vec<NewDeadLetter>,
    ) -> Result<Vec<Probe>, sqlx::Error> {
        let mut keys: Vec<OperatorKey> = decoded
            .iter()
            .map(|d| {
                let envelope = d.message.envelope();
                (
                    envelope.integration_id,
                    envelope.call.operator_id.as_str().to_owned(),
                )
            })
            .collect();
        keys.extend(texts.iter().map(|t| {
            let m = &t.message;
            (m.integration_id, m.text.operator_id.as_str().to_owned())
        }));
        let resolved = self.operators.resolve(&keys).await?;
        let (call_keys, text_keys) = keys.split_at(decoded.len());
        let mut attributed = Vec::with_capacity(decoded.len());
        for (d, key) in decoded.iter().zip(call_keys) {
            match attribute(&resolved, key) {
                Ok(operator) => attributed.push((d, operator)),
                Err((reason, detail)) => {
                    letters.push(letter_for(&d.message, &d.key, reason, detail))
                }
            }
        }
        let mut ready_texts = Vec::with_capacity(texts.len());
        for (text, key) in texts.iter().zip(text_keys) {
            match attribute(&resolved, key) {
                Ok(operator) => ready_texts.push(ReadyText { text, operator }),
                Err((reason, detail)) => letters.push(text.letter(reason, detail)),
            }
        }
        let ready: Vec<Ready> = attributed
            .iter()
            .map(|(d, operator)| Ready {
                envelope: d.message.envelope(),
                key: d.key.clone(),
                operator: *operator,
            })
            .collect();
        let mut handled: Vec<Uuid> = decoded
            .iter()
            .map(|d| d.message.envelope().ingest_id)
            .collect();
        handled.extend(texts.iter().map(|t| t.message.ingest_id));
        handled.extend(letters.iter().map(|l| l.ingest_id));
        let started = std::time::Instant::now();
        let written =
            store::write_batch_with_texts(&self.pool, &ready, &ready_texts, &letters, &handled)
                .await;
        self.metrics
            .batch_write_seconds
            .observe(started.elapsed().as_secs_f64());
        let stored = written?;
        let committed = Utc::now();
        for r in &ready {
            let waited = (committed - r.envelope.received_at)
                .to_std()
                .unwrap_or_default();
            self.metrics
                .post_to_row_seconds
                .observe(waited.as_secs_f64());
        }
        self.metrics.stored.inc_by(stored as u64);
        self.metrics.texts_stored.inc_by(ready_texts.len() as u64);
        self.metrics.batches.inc();
        for letter in &letters {
            self.count_dead_letter(letter);
        }
        Ok(self.probes(&ready))
    }

    /// One per stored call (a call updated twice in the batch is probed twice: harmless).
    fn probes(&self, stored: &[Ready]) -> Vec<Probe> {
        if !self.probe_media {
            return Vec::new();
        }
        let stored_at = Utc::now();
        let traceparent = shared::trace_context::traceparent(&tracing::Span::current());
        stored
            .iter()
            .map(|r| Probe {
                integration_id: r.envelope.integration_id,
                uid: r.key.uid.clone(),
                media_url: r.envelope.call.media_url.as_str().to_owned(),
                stored_at,
                attempts: 0,
                deferrals: 0,
                traceparent: traceparent.clone(),
            })
            .collect()
    }

    /// The batch's transaction failed: retry all of it later if the failure may pass;
    /// otherwise find the calls the database refuses by writing each half of the batch
    /// apart, so that the rest are stored (one refused call among n costs about 2 log2 n
    /// writes), and set each refused call aside at once: retrying cannot change a refusal.
    async fn failed(
        &self,
        payloads: &[&[u8]],
        mut outcomes: Vec<Outcome>,
        error: sqlx::Error,
    ) -> Handled {
        let pending: Vec<usize> = (0..payloads.len())
            .filter(|&i| !matches!(outcomes[i], Outcome::Panicked(_)))
            .collect();
        if let Failure::Transient(class) = failure::classify(&error) {
            self.metrics.failed_batches.inc();
            tracing::warn!(%error, class, calls = pending.len(), "transient database error; the calls will be retried");
            for i in pending {
                outcomes[i] = Outcome::Transient {
                    class,
                    error: error.to_string(),
                };
            }
            return Handled {
                outcomes,
                probes: Vec::new(),
            };
        }
        let mut probes = Vec::new();
        if pending.len() > 1 {
            tracing::warn!(%error, calls = pending.len(), "the database refused a batch; writing its halves apart");
            let (left, right) = pending.split_at(pending.len() / 2);
            for half in [left, right] {
                let part: Vec<&[u8]> = half.iter().map(|&i| payloads[i]).collect();
                let handled = self.handle_batch(&part).await;
                for (&i, outcome) in half.iter().zip(handled.outcomes) {
                    outcomes[i] = outcome;
                }
                probes.extend(handled.probes);
            }
            return Handled { outcomes, probes };
        }
        for i in pending {
            let detail = format!(
                "the database refused the call: {}",
                failure::refusal(&error)
            );
            let ids = CallMessage::from_bytes(payloads[i])
                .ok()
                .map(|m| (m.envelope().ingest_id, m.envelope().call.storage_key().uid));
            tracing::error!(
                %detail,
                ingest_id = ids.as_ref().map(|(id, _)| tracing::field::display(id)),
                uid = ids.as_ref().map(|(_, uid)| tracing::field::display(uid)),
                "setting the call aside"
            );
            outcomes[i] = match self
                .set_aside(
                    payloads[i],
                    Reason::DatabaseRejected,
                    detail.clone(),
                    1,
                    None,
                )
                .await
            {
                Ok(()) => Outcome::Done,
                Err(e) => match failure::classify(&e) {
                    Failure::Transient(class) => Outcome::Transient {
                        class,
                        error: e.to_string(),
                    },
                    Failure::Refused => {
                        tracing::error!(error = %e, "the database refused the call's dead letter too; handing it to the dead queue");
                        Outcome::Unrecordable(detail)
                    }
                },
            };
        }
        Handled { outcomes, probes }
    }

    /// Records the message as a dead letter (whatever of it can be decoded), or each call of
    /// a group as one, and clears their queued notes, in one transaction.
    pub async fn set_aside(
        &self,
        payload: &[u8],
        reason: Reason,
        detail: String,
        attempts: i32,
        first_failed_at: Option<DateTime<Utc>>,
    ) -> Result<(), sqlx::Error> {
        let mut letters: Vec<NewDeadLetter> = message::split(payload)
            .into_iter()
            .map(|call| {
                let mut letter = match CallMessage::from_bytes(call) {
                    Ok(message) => {
                        let key = message.envelope().call.storage_key();
                        letter_for(&message, &key, reason, detail.clone())
                    }
                    Err(_) => match TextMessage::from_bytes(call) {
                        Ok(text) => DecodedText::new(text).letter(reason, detail.clone()),
                        Err(_) => undecodable_letter(call, detail.clone()),
                    },
                };
                letter.reason = reason;
                letter.attempts = attempts;
                letter.first_failed_at = first_failed_at;
                letter
            })
            .collect();
        tracing::info!(%reason, %detail, calls = letters.len(), "setting calls aside");
        // A message is kept in a plainer form when Postgres refuses the richer one for a
        // reason `record` does not foresee; a refusal of hex is not about the message.
        while let Err(e) = store::set_aside(&self.pool, &letters).await {
            let plainer: Option<Vec<NewDeadLetter>> = match failure::classify(&e) {
                Failure::Refused => letters.iter().map(NewDeadLetter::plainer).collect(),
                Failure::Transient(_) => None,
            };
            let Some(plainer) = plainer else {
                return Err(e);
            };
            tracing::warn!(error = %e, "the database refused a dead letter; keeping its message in a plainer form");
            letters = plainer;
        }
        for letter in &letters {
            self.count_dead_letter(letter);
        }
        Ok(())
    }

    fn count_dead_letter(&self, letter: &NewDeadLetter) {
        self.metrics
            .dead_lettered
            .get_or_create(&label("reason", letter.reason.as_str()))
            .inc();
    }
}

pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}
