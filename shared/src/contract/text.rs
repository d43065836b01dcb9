//! Identifiers and free text, as Postgres can store them.

use serde_json_borrow::Value;

use crate::domain::{ExternalId, NUL_REFUSAL};

pub(super) fn read_id(v: &Value) -> Result<ExternalId, String> {
    match v {
        Value::Str(s) => ExternalId::parse(s).map_err(|e| e.to_string()),
        Value::Number(n) if n.is_i64() || n.is_u64() => {
            ExternalId::parse(&n.to_string()).map_err(|e| e.to_string())
        }
        _ => Err("must be a string, or an integer of at most 64 bits".into()),
    }
}

/// A short text (a name, a phone number), trimmed.
pub(super) fn read_text(v: &Value, max: usize) -> Result<String, String> {
    match v {
        Value::Str(s) => storable(s, max).map(|s| s.trim().to_owned()),
        // serde_json's form (1e+20), which stored calls have always held; Rust's own is
        // 100000000000000000000.
        Value::Number(n) => Ok(serde_json::Number::from(*n).to_string()),
        _ => Err("must be a string".into()),
    }
}

/// `s` if Postgres can store it and it is at most `max` characters.
pub(super) fn storable(s: &str, max: usize) -> Result<&str, String> {
    // Counting characters costs a pass over the text; bytes bound them from above.
    if s.len() > max && s.chars().count() > max {
        Err(format!("must be at most {max} characters"))
    } else if s.contains('\0') {
        Err(NUL_REFUSAL.to_owned())
    } else {
        Ok(s)
    }
}
