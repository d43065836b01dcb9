//! Dead letters made from messages: a call's, keyed by its ingest id, or an undecodable
//! message's, keyed by its content; and why a call's or text's operator sets it aside.

use std::collections::HashMap;

use shared::domain::CallKey;
use shared::message::CallMessage;
use shared::store::dead_letters::{Encoding, NewDeadLetter, Reason};
use uuid::Uuid;

use crate::operators::{Operator, OperatorKey, Resolution};

pub fn letter_for(
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
        message: message.to_bytes(),
        keep_as: Encoding::Json,
        attempts: 1,
        first_failed_at: None,
    }
}

/// Its id comes from its content, so that redeliveries of the same bytes add attempts to
/// one dead letter instead of new ones.
pub fn undecodable_letter(payload: &[u8], detail: String) -> NewDeadLetter {
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
        message: payload.to_vec(),
        keep_as: Encoding::Json,
        attempts: 1,
        first_failed_at: None,
    }
}

/// The operator of `key`, or why the message is set aside.
pub fn attribute(
    resolved: &HashMap<OperatorKey, Resolution>,
    key: &OperatorKey,
) -> Result<Operator, (Reason, String)> {
    let operator_id = key.1.as_str();
    match resolved.get(key).copied().unwrap_or(Resolution::NotFound) {
        Resolution::Active(operator) => Ok(operator),
        Resolution::Inactive => Err((
            Reason::OperatorInactive,
            format!("operator_id {operator_id:?} is bound to an inactive user or binding"),
        )),
        Resolution::NotFound => Err((
            Reason::OperatorNotFound,
            format!("no operator bound to operator_id {operator_id:?} in this integration"),
        )),
    }
}
