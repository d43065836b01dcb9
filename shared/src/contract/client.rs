//! The call's `client` object.

use serde_json_borrow::Value;

use super::text::{read_id, read_text};
use super::{field, FieldErrors};
use crate::domain::Client;

/// Client names are shown beside the call; longer text is no name.
const MAX_NAME_CHARS: usize = 1000;

pub(super) fn read_client(v: &Value, errors: &mut FieldErrors) -> Option<Client> {
    let Some(obj) = v.as_object() else {
        errors.push(
            &["client"],
            "must be an object with id, company_name, first_name, last_name",
        );
        return None;
    };
    let before = errors.count();
    let mut text = |key: &str| match field(obj, key) {
        None | Some(Value::Null) => None,
        Some(v) => read_text(v, MAX_NAME_CHARS)
            .map_err(|e| errors.push(&["client", key], e))
            .ok(),
    };
    let company_name = text("company_name");
    let first_name = text("first_name");
    let last_name = text("last_name");
    let id = match field(obj, "id") {
        None | Some(Value::Null) => None,
        Some(v) => read_id(v)
            .map_err(|e| errors.push(&["client", "id"], e))
            .ok(),
    };
    (errors.count() == before).then_some(Client {
        id,
        company_name,
        first_name,
        last_name,
    })
}
