//! A message set aside is kept whatever it holds. jsonb holds it as it is when it is JSON
//! that Postgres accepts; otherwise it is kept as a JSON string: its text, with `\` doubled
//! and NUL written `\u0000` (Postgres stores NUL in neither text nor jsonb), when it is UTF-8;
//! its bytes in hex when it is not. `message_encoding` says which, and every reader (GET,
//! the CLI, replays) gets the original back.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Encoding {
    Json,
    Text,
    Hex,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Text => "text",
            Self::Hex => "hex",
        }
    }

    /// What `message_encoding` holds; a value no version wrote reads as JSON, the column's
    /// default.
    pub fn from_column(column: &str) -> Self {
        match column {
            "text" => Self::Text,
            "hex" => Self::Hex,
            _ => Self::Json,
        }
    }

    /// The next form, which Postgres refuses less; `None` after hex, which is plain ASCII.
    pub fn plainer(self) -> Option<Self> {
        match self {
            Self::Json => Some(Self::Text),
            Self::Text => Some(Self::Hex),
            Self::Hex => None,
        }
    }
}

/// `bytes` in the first form, from `richest` on, that can hold them, and the value stored.
pub fn encode(bytes: &[u8], richest: Encoding) -> (Encoding, Value) {
    if richest == Encoding::Json {
        if let Ok(json) = serde_json::from_slice::<Value>(bytes) {
            if !holds_nul(&json) {
                return (Encoding::Json, json);
            }
        }
    }
    if richest <= Encoding::Text {
        if let Ok(text) = std::str::from_utf8(bytes) {
            return (Encoding::Text, Value::String(escape(text)));
        }
    }
    (Encoding::Hex, Value::String(hex::encode(bytes)))
}

/// The bytes that were set aside. JSON comes back as JSON of the same content: jsonb keeps
/// neither the spacing nor the order of keys. A stored value that is not what its encoding
/// says (written by hand) comes back as the JSON it is.
pub fn decode(encoding: Encoding, kept: &Value) -> Vec<u8> {
    match (encoding, kept) {
        (Encoding::Text, Value::String(text)) => unescape(text).into_bytes(),
        (Encoding::Hex, Value::String(digits)) => {
            hex::decode(digits).unwrap_or_else(|_| digits.clone().into_bytes())
        }
        (_, json) => serde_json::to_vec(json).unwrap_or_default(),
    }
}

/// The message as people are shown it: the JSON it is, even JSON that Postgres could not
/// hold; else its text; else its bytes in hex.
pub fn shown(encoding: Encoding, kept: &Value) -> Value {
    match (encoding, kept) {
        (Encoding::Text, Value::String(text)) => {
            let text = unescape(text);
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        }
        (_, other) => other.clone(),
    }
}

fn holds_nul(json: &Value) -> bool {
    match json {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(fields) => fields.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\0', "\\u0000")
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('\\') {
            out.push('\\');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("u0000") {
            out.push('\0');
            rest = tail;
        } else {
            out.push('\\');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(bytes: &[u8]) -> (Encoding, Vec<u8>) {
        let (encoding, kept) = encode(bytes, Encoding::Json);
        // Through its stored form: jsonb reads back what serde_json writes.
        let stored: Value = serde_json::from_str(&kept.to_string()).unwrap();
        (encoding, decode(encoding, &stored))
    }

    #[test]
    fn json_without_nul_is_kept_as_json() {
        let (encoding, back) = round_trip(br#"{"a":[1,"x"]}"#);
        assert_eq!(encoding, Encoding::Json);
        assert_eq!(back, br#"{"a":[1,"x"]}"#);
    }

    #[test]
    fn json_holding_nul_is_kept_as_text_and_comes_back_whole() {
        let original = br#"{"call":{"custom_fields":{"note":"a\u0000b"}},"path":"C:\\x"}"#;
        let (encoding, back) = round_trip(original);
        assert_eq!(encoding, Encoding::Text);
        assert_eq!(back, original);
        let (_, kept) = encode(original, Encoding::Json);
        assert!(!kept.as_str().unwrap().contains('\0'), "{kept}");
    }

    #[test]
    fn text_holding_a_raw_nul_and_backslashes_comes_back_whole() {
        let original = "not json \0 with \\u0000 written out and \\\\ doubled".as_bytes();
        let (encoding, back) = round_trip(original);
        assert_eq!(encoding, Encoding::Text);
        assert_eq!(back, original);
        let (_, kept) = encode(original, Encoding::Json);
        assert!(!kept.as_str().unwrap().contains('\0'));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_kept_in_hex() {
        let original = [0xff, 0x00, b'{', 0xc3];
        let (encoding, back) = round_trip(&original);
        assert_eq!(encoding, Encoding::Hex);
        assert_eq!(back, original);
    }

    #[test]
    fn a_plainer_form_can_be_asked_for() {
        let (encoding, kept) = encode(b"{}", Encoding::Hex);
        assert_eq!((encoding, kept), (Encoding::Hex, Value::from("7b7d")));
        assert_eq!(encode(b"{}", Encoding::Text).0, Encoding::Text);
    }

    #[test]
    fn json_kept_as_text_is_shown_as_the_json_it_is() {
        let original = br#"{"note":"a\u0000b"}"#;
        let (encoding, kept) = encode(original, Encoding::Json);
        assert_eq!(shown(encoding, &kept)["note"], "a\0b");
        let (encoding, kept) = encode(b"plain \0 text", Encoding::Json);
        assert_eq!(shown(encoding, &kept), Value::from("plain \0 text"));
    }
}
