//! Qolio-compatible integrations refuse a call or text of an unknown or inactive operator at
//! once, with the real API's 422 and its message, which public client code matches to import
//! the operator's binding and post again. Other integrations queue it: the worker sets it
//! aside and replays it once the operator is bound.

use shared::contract::FieldErrors;
use shared::store::accounts::IntegrationAuth;

use super::error::ApiError;
use crate::operator_check::Verdict;
use crate::state::AppState;

/// The real API's words, which clients search its answer for.
pub const QOLIO_MESSAGE: &str = "Необходимо, чтобы был определен активный оператор";

pub async fn refuse_unknown_operator(
    app: &AppState,
    integration: &IntegrationAuth,
    operator_id: &str,
) -> Result<(), ApiError> {
    if !integration.qolio_compatible {
        return Ok(());
    }
    let why = match app
        .operators
        .check(&app.pool, integration.id, operator_id)
        .await
    {
        Verdict::Active | Verdict::Unchecked => return Ok(()),
        Verdict::NotFound => "no operator is bound to it in this integration",
        Verdict::Inactive => "it is bound to an inactive operator",
    };
    app.metrics.operator_refusals.inc();
    let mut errors = FieldErrors::with_cap(app.settings.limits.max_errors);
    errors.push(
        &["operator_id"],
        format!(
            "{QOLIO_MESSAGE}: {why} ({operator_id:?}); import the operator's binding \
             (import_user_account_bindings) and post again"
        ),
    );
    Err(ApiError::Invalid(errors))
}
