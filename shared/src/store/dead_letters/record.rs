//! Recording a dead letter. Nothing the message holds may stop it: the message is kept in
//! the richest form Postgres accepts (see `kept_message`), and the columns people filter by
//! hold no NUL and fit in their indexes.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::kept_message::{self, Encoding};
use super::Reason;

/// Bytes of `operator_id` and `uid` kept in their indexed columns: a btree entry must fit in
/// a third of an 8 KB page, and both share an index with a uuid. Longer values (which the
/// gateway refuses anyway) stay whole in the message.
const INDEXED_BYTES: usize = 1024;

/// What is known of a message being set aside; `message` is kept whole for replay.
#[derive(Debug, Clone)]
pub struct NewDeadLetter {
    pub ingest_id: Uuid,
    pub integration_id: Option<Uuid>,
    pub operator_id: Option<String>,
    pub uid: Option<String>,
    pub reason: Reason,
    pub detail: String,
    /// The message's bytes.
    pub message: Vec<u8>,
    /// The richest form the message may be kept in: JSON, unless Postgres refused it so.
    pub keep_as: Encoding,
    /// Attempts this record stands for (the retry schedule's length, for exhausted retries).
    pub attempts: i32,
    /// When the first attempt failed, if before now.
    pub first_failed_at: Option<DateTime<Utc>>,
}

impl NewDeadLetter {
    /// The same letter with its message in the next plainer form than the one it would be
    /// kept in; `None` when that is already hex. For when Postgres refused the record for a
    /// reason this crate does not foresee.
    pub fn plainer(&self) -> Option<Self> {
        let (encoding, _) = kept_message::encode(&self.message, self.keep_as);
        Some(Self {
            keep_as: encoding.plainer()?,
            ..self.clone()
        })
    }
}

/// The same message set aside again (a redelivery) adds attempts to its row.
pub async fn record(conn: &mut PgConnection, letter: &NewDeadLetter) -> Result<(), sqlx::Error> {
    let (encoding, message) = kept_message::encode(&letter.message, letter.keep_as);
    sqlx::query(
        "INSERT INTO dead_letters
            (id, ingest_id, integration_id, operator_id, uid, reason, detail, message,
             message_encoding, attempts, first_failed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, COALESCE($11, now()))
         ON CONFLICT (ingest_id) DO UPDATE SET
            attempts = dead_letters.attempts + EXCLUDED.attempts, last_failed_at = now(),
            reason = EXCLUDED.reason, detail = EXCLUDED.detail",
    )
    .bind(Uuid::now_v7())
    .bind(letter.ingest_id)
    .bind(letter.integration_id)
    .bind(letter.operator_id.as_deref().map(indexed))
    .bind(letter.uid.as_deref().map(indexed))
    .bind(letter.reason.as_str())
    .bind(without_nul(&letter.detail))
    .bind(message)
    .bind(encoding.as_str())
    .bind(letter.attempts)
    .bind(letter.first_failed_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Text Postgres stores: NUL, which it refuses, becomes U+FFFD.
fn without_nul(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

fn indexed(text: &str) -> String {
    let mut end = text.len().min(INDEXED_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    without_nul(&text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexed_text_holds_no_nul_and_is_cut_at_a_character() {
        assert_eq!(indexed("a\0b"), "a\u{FFFD}b");
        let long = "é".repeat(INDEXED_BYTES);
        let cut = indexed(&long);
        assert!(cut.len() <= INDEXED_BYTES && cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn a_letter_gets_plainer_until_hex() {
        let letter = NewDeadLetter {
            ingest_id: Uuid::nil(),
            integration_id: None,
            operator_id: None,
            uid: None,
            reason: Reason::Undecodable,
            detail: String::new(),
            message: b"{}".to_vec(),
            keep_as: Encoding::Json,
            attempts: 1,
            first_failed_at: None,
        };
        let text = letter.plainer().expect("text");
        assert_eq!(text.keep_as, Encoding::Text);
        let hex = text.plainer().expect("hex");
        assert_eq!(hex.keep_as, Encoding::Hex);
        assert!(hex.plainer().is_none());
    }
}
