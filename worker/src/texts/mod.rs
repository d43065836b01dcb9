//! Text communications in the calls stage: they arrive on the calls' work queue (see
//! `shared::text_message`), are attributed by the same operator resolution and written in the
//! same transaction as the batch's calls, and are set aside with the same reasons, so that
//! retries, dead letters and the automatic replay apply to them unchanged.

pub mod store;

use shared::domain::CallKey;
use shared::store::dead_letters::{Encoding, NewDeadLetter, Reason};
use shared::text_message::TextMessage;

/// A text of the batch that decoded.
pub struct DecodedText {
    pub message: TextMessage,
    pub key: CallKey,
}

impl DecodedText {
    pub fn new(message: TextMessage) -> Self {
        let key = message.text.storage_key();
        Self { message, key }
    }

    pub fn letter(&self, reason: Reason, detail: String) -> NewDeadLetter {
        let m = &self.message;
        NewDeadLetter {
            ingest_id: m.ingest_id,
            integration_id: Some(m.integration_id),
            operator_id: Some(m.text.operator_id.as_str().to_owned()),
            uid: Some(self.key.uid.clone()),
            reason,
            detail,
            message: m.to_bytes(),
            keep_as: Encoding::Json,
            attempts: 1,
            first_failed_at: None,
        }
    }
}
