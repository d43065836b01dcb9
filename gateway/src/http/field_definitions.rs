//! A call read against its organisation's custom field definitions. Keys seen for the first
//! time are registered with their inferred type, then the call is read again against what the
//! database holds, so two first values racing for one key agree on its type.
//!
//! While Postgres is away the definitions last loaded serve (see `cache.rs`), and first-seen
//! keys cannot be registered here: the call is accepted with them listed in its message as
//! unregistered, and the worker that stores it registers them first, under the same bound
//! (`limits.max_field_definitions`) and reading the values again against what the database
//! then holds.

use std::collections::HashMap;
use std::sync::Arc;

use shared::contract::{parse_call, Body, FieldErrors};
use shared::domain::{Call, FieldType};
use shared::message::UnregisteredFields;
use shared::store::availability;
use shared::store::fields::{self, Registration};
use uuid::Uuid;

use super::error::ApiError;
use crate::state::AppState;

/// A call that may be queued.
pub struct Accepted {
    pub call: Call,
    /// First-seen keys the database could not take now, for the worker to register.
    pub unregistered: UnregisteredFields,
}

pub async fn parse_with_definitions(
    app: &AppState,
    organisation_id: Uuid,
    body: &Body<'_>,
) -> Result<Accepted, ApiError> {
    let limits = &app.settings.limits;
    let (call, unregistered) = accept(app, organisation_id, |defs| {
        parse_call(body, defs, limits).map(|p| (p.call, p.new_fields))
    })
    .await?;
    Ok(Accepted { call, unregistered })
}

/// A body read by `parse` (a call's or a text's reader) against the definitions, first-seen
/// keys registered as above; with the keys left for the worker when Postgres is away.
pub async fn accept<T>(
    app: &AppState,
    organisation_id: Uuid,
    parse: impl Fn(&HashMap<String, FieldType>) -> Result<(T, Vec<(String, FieldType)>), FieldErrors>,
) -> Result<(T, UnregisteredFields), ApiError> {
    let limits = &app.settings.limits;
    let definitions = field_definitions(app, organisation_id).await?;
    let (parsed, new_fields) = parse(definitions.as_ref()).map_err(ApiError::Invalid)?;
    if new_fields.is_empty() {
        return Ok((parsed, UnregisteredFields::new()));
    }
    let registration = match register(app, organisation_id, &new_fields).await {
        Ok(registration) => registration,
        Err(Unregistered::Unavailable(why)) => {
            tracing::warn!(
                %why,
                keys = new_fields.len(),
                "database unavailable; the worker will register the new field keys"
            );
            return Ok((parsed, new_fields.into_iter().collect()));
        }
        Err(Unregistered::Failed(e)) => return Err(e.into()),
    };
    if let Registration::Full { defined, max } = registration {
        let mut errors = FieldErrors::with_cap(limits.max_errors);
        for (key, _) in &new_fields {
            errors.push(
                &["custom_fields", key],
                format!(
                    "is a new key; with it the organisation would pass its {max} field \
                     definitions (it has {defined}; limits.max_field_definitions): send the \
                     value under a key it already has"
                ),
            );
        }
        return Err(ApiError::Invalid(errors));
    }
    app.field_definitions.invalidate(&organisation_id).await;
    let definitions = field_definitions(app, organisation_id).await?;
    let (parsed, _) = parse(definitions.as_ref()).map_err(ApiError::Invalid)?;
    Ok((parsed, UnregisteredFields::new()))
}

enum Unregistered {
    /// The database cannot be reached, did not answer within `auth.refresh_timeout_ms`, or
    /// failed less than `auth.refresh_pause_ms` ago.
    Unavailable(String),
    Failed(sqlx::Error),
}

async fn register(
    app: &AppState,
    organisation_id: Uuid,
    new_fields: &[(String, FieldType)],
) -> Result<Registration, Unregistered> {
    if app.database.open() {
        return Err(Unregistered::Unavailable("it failed a moment ago".into()));
    }
    let timeout = app.settings.auth.refresh_timeout();
    let registering = fields::register(
        &app.pool,
        organisation_id,
        new_fields,
        app.settings.limits.max_field_definitions,
    );
    // Cut short, the transaction rolls back or has committed: either way the worker's
    // registration of the same keys is right, as it changes nothing for a key already there.
    let failure = match tokio::time::timeout(timeout, registering).await {
        Ok(Ok(registration)) => return Ok(registration),
        Ok(Err(e)) if !availability::unavailable(&e) => return Err(Unregistered::Failed(e)),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {timeout:?}"),
    };
    app.database.failed();
    Err(Unregistered::Unavailable(failure))
}

async fn field_definitions(
    app: &AppState,
    organisation_id: Uuid,
) -> Result<Arc<HashMap<String, FieldType>>, ApiError> {
    Ok(app
        .field_definitions
        .get(organisation_id, async {
            fields::load(&app.pool, organisation_id).await.map(Arc::new)
        })
        .await?)
}
