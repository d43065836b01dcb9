//! Custom field keys a gateway could not register because Postgres was away when it accepted
//! the call (`unregistered_fields` of a version 2 message): registered here before the call is
//! stored, as the gateway would have, through the same `fields::register` (one organisation at
//! a time, bounded by `limits.max_field_definitions`), and the call's values read again as the
//! types the database then holds, since another call may have registered a key first.

use std::collections::{BTreeSet, HashMap};

use shared::domain::FieldType;
use shared::message::CallMessage;
use shared::store::dead_letters::Reason;
use shared::store::fields::{self, Registration};
use sqlx::PgPool;

/// Why a call cannot be stored as it is: it is set aside with this reason and detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub detail: String,
}

/// Registers the unregistered keys of `messages`, and reads their values again as registered.
/// Returns, per message, `None` when it may be stored, or why it may not: one message's
/// refusal leaves it as it was and the others registered. A database error is the batch's.
pub async fn register(
    pool: &PgPool,
    max_definitions: usize,
    messages: &mut [&mut CallMessage],
) -> Result<Vec<Option<Refusal>>, sqlx::Error> {
    let mut refusals: Vec<Option<Refusal>> = vec![None; messages.len()];
    let mut organisations = BTreeSet::new();
    for (message, refusal) in messages.iter().zip(&mut refusals) {
        let Some(unregistered) = message.unregistered_fields() else {
            continue;
        };
        let organisation_id = message.envelope().organisation_id;
        let new_fields: Vec<(String, FieldType)> = unregistered
            .iter()
            .map(|(key, ty)| (key.clone(), *ty))
            .collect();
        match fields::register(pool, organisation_id, &new_fields, max_definitions).await? {
            Registration::Registered => {
                organisations.insert(organisation_id);
            }
            Registration::Full { defined, max } => {
                let keys: Vec<&str> = unregistered.keys().map(String::as_str).collect();
                *refusal = Some(Refusal {
                    reason: Reason::FieldDefinitionsFull,
                    detail: format!(
                        "the call was accepted while the database was away with new custom \
                         field keys ({}); with them the organisation would pass its {max} field \
                         definitions (it has {defined}; limits.max_field_definitions)",
                        keys.join(", ")
                    ),
                });
            }
        }
    }
    let mut definitions = HashMap::with_capacity(organisations.len());
    for organisation_id in organisations {
        definitions.insert(organisation_id, fields::load(pool, organisation_id).await?);
    }
    for (message, refusal) in messages.iter_mut().zip(&mut refusals) {
        let organisation_id = message.envelope().organisation_id;
        let (Some(unregistered), Some(defined), None) = (
            message.unregistered_fields(),
            definitions.get(&organisation_id),
            &refusal,
        ) else {
            continue;
        };
        let mut custom_fields = message.envelope().call.custom_fields.clone();
        for key in unregistered.keys() {
            let Some(&ty) = defined.get(key) else {
                continue;
            };
            if let Err(why) = custom_fields.read_again(key, ty) {
                *refusal = Some(Refusal {
                    reason: Reason::FieldTypeConflict,
                    detail: format!(
                        "custom_fields.{key} {why}: the call was accepted while the database \
                         was away, before the key was registered as {}",
                        ty.as_str()
                    ),
                });
                break;
            }
        }
        if refusal.is_none() {
            message.envelope_mut().call.custom_fields = custom_fields;
        }
    }
    Ok(refusals)
}
