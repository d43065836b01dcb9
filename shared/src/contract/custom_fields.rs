//! The call's `custom_fields` (or `metacontent`, its old name): key -> simple value, read as
//! the organisation's definitions say; first-seen keys are inferred, to be registered.

use serde_json_borrow::{ObjectAsVec, Value};

use super::text::storable;
use super::{field, FieldDefinitions, Fields, Limits};
use crate::domain::{CustomFields, CustomValue, FieldType, NUL_REFUSAL};

pub(super) fn read_custom_fields(
    p: &mut Fields<'_>,
    defs: &impl FieldDefinitions,
) -> (CustomFields, Vec<(String, FieldType)>) {
    let mut fields = CustomFields::default();
    let mut new_fields = Vec::new();
    let (key, value) = match (field(p.obj, "custom_fields"), field(p.obj, "metacontent")) {
        (Some(_), Some(_)) => {
            p.errors.push(
                &["metacontent"],
                "is the old name of custom_fields; send only one of them",
            );
            return (fields, new_fields);
        }
        (Some(v), None) => ("custom_fields", v),
        (None, Some(v)) => ("metacontent", v),
        (None, None) => return (fields, new_fields),
    };
    let obj = match value {
        Value::Null => return (fields, new_fields),
        Value::Object(obj) => obj,
        _ => {
            p.errors
                .push(&[key], "must be an object of key -> simple value");
            return (fields, new_fields);
        }
    };
    let limits = p.limits;
    let entries = by_key(obj);
    if entries.len() > limits.max_custom_fields {
        p.errors.push(
            &[key],
            format!(
                "has {} keys; at most {} are accepted (limits.max_custom_fields)",
                entries.len(),
                limits.max_custom_fields
            ),
        );
        return (fields, new_fields);
    }
    for (name, v) in entries {
        if let Err(e) = check_key(name, limits) {
            p.errors.push(&[key, name], e);
            continue;
        }
        let ty = match defs.field_type(name) {
            Some(ty) => ty,
            None if v.is_null() => {
                fields.insert(name.to_owned(), CustomValue::Null);
                continue;
            }
            None => match FieldType::infer(v) {
                Some(ty) => {
                    new_fields.push((name.to_owned(), ty));
                    ty
                }
                None => {
                    p.errors.push(
                        &[key, name],
                        "must be a simple value: string, number, boolean, ISO 8601 date-time, URL, or an array of strings or of numbers",
                    );
                    continue;
                }
            },
        };
        match CustomValue::read(ty, v).and_then(|value| storable_value(value, limits)) {
            Ok(value) => fields.insert(name.to_owned(), value),
            Err(e) => p.errors.push(&[key, name], e),
        }
    }
    (fields, new_fields)
}

fn check_key(name: &str, limits: &Limits) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("keys must not be empty".into());
    }
    if name.contains('\0') {
        return Err(format!("is a key that {NUL_REFUSAL}"));
    }
    let max = limits.max_key_chars;
    if name.len() > max && name.chars().count() > max {
        return Err(format!(
            "is a key longer than {max} characters (limits.max_key_chars): use a shorter key"
        ));
    }
    Ok(())
}

/// The value, if Postgres can store it and it is within the limits.
fn storable_value(value: CustomValue, limits: &Limits) -> Result<CustomValue, String> {
    let max = limits.max_text_chars;
    match &value {
        CustomValue::String(s) | CustomValue::StringUrl(s) => {
            storable(s, max)?;
        }
        CustomValue::StringArray(items) => {
            check_items(items.len(), limits)?;
            for item in items {
                storable(item, max).map_err(|e| format!("holds an item that {e}"))?;
            }
        }
        CustomValue::NumberArray(items) => check_items(items.len(), limits)?,
        CustomValue::Number(_)
        | CustomValue::Duration(_)
        | CustomValue::Datetime(_)
        | CustomValue::Boolean(_)
        | CustomValue::Null => {}
    }
    Ok(value)
}

fn check_items(count: usize, limits: &Limits) -> Result<(), String> {
    if count > limits.max_array_items {
        Err(format!(
            "has {count} items; at most {} are accepted (limits.max_array_items)",
            limits.max_array_items
        ))
    } else {
        Ok(())
    }
}

/// An object's entries in key order, a key sent twice once with its last value: the order and
/// the outcome a map-backed JSON value gave, so errors and new fields do not depend on how
/// the sender ordered its keys.
fn by_key<'v>(obj: &'v ObjectAsVec<'_>) -> Vec<(&'v str, &'v Value<'v>)> {
    let mut entries: Vec<(&str, &Value)> = obj.iter().collect();
    // Stable, so of equal keys the last sent comes last; it overwrites the one kept.
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            *kept = *later;
        }
        same
    });
    entries
}
