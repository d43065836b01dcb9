//! Custom fields: key -> simple value, typed by the organisation's field definitions.
//!
//! A key seen for the first time is registered with a type inferred from its value:
//! JSON booleans and the strings "true"/"false" -> `boolean`; numbers -> `number`;
//! strings that parse as a zoned date-time -> `datetime`; http(s) URLs -> `string_url`;
//! other strings -> `string`; arrays of strings (or empty arrays) -> `string_array`;
//! arrays of numbers -> `number_array`. `duration` is never inferred (it looks like a
//! number): define it ahead with `admin define-field`. Later values must be readable as
//! the key's type; `null` means "no value" and is accepted for any type.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json_borrow::Value;

use super::time::parse_zoned;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    Number,
    StringArray,
    StringUrl,
    NumberArray,
    Datetime,
    Boolean,
    Duration,
}

impl FieldType {
    pub const ALL: [FieldType; 8] = [
        Self::String,
        Self::Number,
        Self::StringArray,
        Self::StringUrl,
        Self::NumberArray,
        Self::Datetime,
        Self::Boolean,
        Self::Duration,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Number => "number",
            Self::StringArray => "string_array",
            Self::StringUrl => "string_url",
            Self::NumberArray => "number_array",
            Self::Datetime => "datetime",
            Self::Boolean => "boolean",
            Self::Duration => "duration",
        }
    }

    /// The type a first-seen value gets; `None` when the value is no simple type.
    pub fn infer(value: &Value) -> Option<Self> {
        match value {
            Value::Bool(_) => Some(Self::Boolean),
            Value::Number(_) => Some(Self::Number),
            Value::Str(s) => Some(if parse_bool(s).is_some() {
                Self::Boolean
            } else if parse_zoned(s).is_ok() {
                Self::Datetime
            } else if is_http_url(s) {
                Self::StringUrl
            } else {
                Self::String
            }),
            Value::Array(items) if items.iter().all(Value::is_string) => Some(Self::StringArray),
            Value::Array(items) if items.iter().all(Value::is_number) => Some(Self::NumberArray),
            _ => None,
        }
    }
}

impl FromStr for FieldType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|t| t.as_str()).collect();
                format!("unknown field type {s:?}; one of {}", names.join(", "))
            })
    }
}

/// A custom field value, already read as its field's type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum CustomValue {
    String(String),
    Number(f64),
    StringArray(Vec<String>),
    StringUrl(String),
    NumberArray(Vec<f64>),
    Datetime(#[serde(with = "super::wire_time")] DateTime<Utc>),
    Boolean(bool),
    Duration(f64),
    Null,
}

impl CustomValue {
    /// Reads `value` as `ty`, or says why it cannot be.
    pub fn read(ty: FieldType, value: &Value) -> Result<Self, String> {
        if value.is_null() {
            return Ok(Self::Null);
        }
        let refuse = || {
            format!(
                "must be a {} value (this field is defined as {})",
                ty.as_str(),
                ty.as_str()
            )
        };
        match ty {
            FieldType::String => value
                .as_str()
                .map(|s| Self::String(s.to_owned()))
                .ok_or_else(refuse),
            FieldType::Number => read_number(value).map(Self::Number).ok_or_else(refuse),
            FieldType::Duration => match read_number(value) {
                Some(n) if n >= 0.0 => Ok(Self::Duration(n)),
                Some(_) => Err("must be a duration in seconds, >= 0".into()),
                None => Err(refuse()),
            },
            FieldType::Boolean => match value {
                Value::Bool(b) => Ok(Self::Boolean(*b)),
                Value::Str(s) => parse_bool(s).map(Self::Boolean).ok_or_else(refuse),
                _ => Err(refuse()),
            },
            FieldType::Datetime => match value.as_str().map(parse_zoned) {
                Some(Ok(t)) => Ok(Self::Datetime(t)),
                Some(Err(e)) => Err(e.to_string()),
                None => Err(refuse()),
            },
            FieldType::StringUrl => match value.as_str() {
                Some(s) if is_http_url(s) => Ok(Self::StringUrl(s.to_owned())),
                _ => Err("must be an http(s) URL".into()),
            },
            FieldType::StringArray => value
                .as_array()
                .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_owned)).collect())
                .map(Self::StringArray)
                .ok_or_else(|| "must be an array of strings".into()),
            FieldType::NumberArray => value
                .as_array()
                .and_then(|a| a.iter().map(Value::as_f64).collect())
                .map(Self::NumberArray)
                .ok_or_else(|| "must be an array of numbers".into()),
        }
    }

    /// The plain JSON stored and shown: typed values normalised (datetimes in UTC).
    /// Serialized straight into the statement's buffer: a worker writes hundreds a batch.
    pub fn stored(&self) -> StoredValue<'_> {
        StoredValue(self)
    }

    /// The type it was read as; `None` for null, which every type accepts.
    pub fn field_type(&self) -> Option<FieldType> {
        match self {
            Self::String(_) => Some(FieldType::String),
            Self::Number(_) => Some(FieldType::Number),
            Self::StringArray(_) => Some(FieldType::StringArray),
            Self::StringUrl(_) => Some(FieldType::StringUrl),
            Self::NumberArray(_) => Some(FieldType::NumberArray),
            Self::Datetime(_) => Some(FieldType::Datetime),
            Self::Boolean(_) => Some(FieldType::Boolean),
            Self::Duration(_) => Some(FieldType::Duration),
            Self::Null => None,
        }
    }
}

pub struct StoredValue<'a>(&'a CustomValue);

impl Serialize for StoredValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            CustomValue::String(s) | CustomValue::StringUrl(s) => serializer.serialize_str(s),
            CustomValue::Number(n) | CustomValue::Duration(n) => {
                StoredNumber(*n).serialize(serializer)
            }
            CustomValue::StringArray(a) => a.serialize(serializer),
            CustomValue::NumberArray(a) => {
                serializer.collect_seq(a.iter().copied().map(StoredNumber))
            }
            CustomValue::Datetime(t) => super::wire_time::serialize(t, serializer),
            CustomValue::Boolean(b) => serializer.serialize_bool(*b),
            CustomValue::Null => serializer.serialize_unit(),
        }
    }
}

/// Whole numbers stay integers (`5`, not `5.0`), as the sender wrote them.
struct StoredNumber(f64);

impl Serialize for StoredNumber {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let n = self.0;
        if n.fract() == 0.0 && n.abs() < 9.0e15 {
            serializer.serialize_i64(n as i64)
        } else {
            serializer.serialize_f64(n)
        }
    }
}

/// Numbers, and numeric strings ("410.1"), which many PBXs send.
pub(crate) fn read_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::Str(s) => s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
        _ => None,
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn is_http_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CustomFields(BTreeMap<String, CustomValue>);

impl CustomFields {
    pub fn insert(&mut self, key: String, value: CustomValue) {
        self.0.insert(key, value);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The plain JSON object stored and shown; see [`CustomValue::stored`].
    pub fn stored(&self) -> StoredFields<'_> {
        StoredFields(self)
    }

    /// Reads the value of `key` again as `ty`, from its stored form: for a value read as the
    /// type inferred for a new key, when the key was registered with another type meanwhile.
    pub fn read_again(&mut self, key: &str, ty: FieldType) -> Result<(), String> {
        let Some(value) = self.0.get_mut(key) else {
            return Ok(());
        };
        if value.field_type().is_none_or(|read_as| read_as == ty) {
            return Ok(());
        }
        let stored = serde_json::to_value(value.stored()).map_err(|e| e.to_string())?;
        *value = CustomValue::read(ty, &Value::from(&stored))?;
        Ok(())
    }
}

pub struct StoredFields<'a>(&'a CustomFields);

impl Serialize for StoredFields<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0 .0.iter().map(|(k, v)| (k, v.stored())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn infer(json: &serde_json::Value) -> Option<FieldType> {
        FieldType::infer(&Value::from(json))
    }

    fn read(ty: FieldType, json: serde_json::Value) -> Result<CustomValue, String> {
        CustomValue::read(ty, &Value::from(&json))
    }

    #[test]
    fn the_pages_examples_infer_their_documented_types() {
        let cases = [
            (json!("Минск"), FieldType::String),
            (json!(220010), FieldType::Number),
            (json!(["ru", "by", "kz"]), FieldType::StringArray),
            (
                json!("https://static.tildacdn.com/x.png"),
                FieldType::StringUrl,
            ),
            (json!([175, 998, 556]), FieldType::NumberArray),
            (json!("2020-06-21T09:51:13.588Z"), FieldType::Datetime),
            (json!("true"), FieldType::Boolean),
        ];
        for (value, ty) in cases {
            assert_eq!(infer(&value), Some(ty), "{value}");
        }
        assert_eq!(infer(&json!({"a": 1})), None);
        assert_eq!(infer(&json!([1, "a"])), None);
    }

    #[test]
    fn values_are_read_as_their_defined_type() {
        assert_eq!(
            read(FieldType::Duration, json!(120)),
            Ok(CustomValue::Duration(120.0))
        );
        assert_eq!(
            read(FieldType::Number, json!("5.5")),
            Ok(CustomValue::Number(5.5))
        );
        assert_eq!(
            read(FieldType::Boolean, json!("TRUE")),
            Ok(CustomValue::Boolean(true))
        );
        assert!(read(FieldType::Number, json!("five")).is_err());
        assert!(read(FieldType::Duration, json!(-1)).is_err());
        assert!(read(FieldType::Datetime, json!("2020-06-21T09:51:13"))
            .unwrap_err()
            .contains("time zone"));
        assert!(read(FieldType::NumberArray, json!([1, "x"])).is_err());
        assert_eq!(
            read(FieldType::String, serde_json::Value::Null),
            Ok(CustomValue::Null)
        );
    }

    #[test]
    fn the_stored_form_is_plain_json_with_whole_numbers_as_integers() {
        let mut fields = CustomFields::default();
        for (key, value) in [
            ("city", CustomValue::String("Минск".into())),
            ("zip", CustomValue::Number(220010.0)),
            ("score", CustomValue::Number(2.5)),
            ("wait", CustomValue::Duration(410.1)),
            (
                "langs",
                CustomValue::StringArray(vec!["ru".into(), "by".into()]),
            ),
            ("codes", CustomValue::NumberArray(vec![175.0, 0.5])),
            (
                "logo",
                CustomValue::StringUrl("https://static.tildacdn.com/x.png".into()),
            ),
            ("vip", CustomValue::Boolean(true)),
            ("gone", CustomValue::Null),
        ] {
            fields.insert(key.into(), value);
        }
        assert_eq!(
            serde_json::to_value(fields.stored()).unwrap(),
            json!({
                "city": "Минск", "zip": 220010, "score": 2.5, "wait": 410.1,
                "langs": ["ru", "by"], "codes": [175, 0.5],
                "logo": "https://static.tildacdn.com/x.png", "vip": true, "gone": null,
            })
        );
        assert_eq!(
            serde_json::to_string(&CustomValue::Number(5.0).stored()).unwrap(),
            "5"
        );
    }

    #[test]
    fn a_value_is_read_again_as_the_type_its_key_was_registered_with() {
        let mut fields = CustomFields::default();
        fields.insert("wait".into(), CustomValue::Number(120.0));
        fields.insert("code".into(), CustomValue::String("abc".into()));
        fields.insert("gone".into(), CustomValue::Null);
        fields.read_again("wait", FieldType::Duration).unwrap();
        fields.read_again("gone", FieldType::Number).unwrap();
        fields.read_again("absent", FieldType::Number).unwrap();
        assert!(fields
            .read_again("code", FieldType::Number)
            .unwrap_err()
            .contains("number"));
        assert_eq!(
            serde_json::to_value(fields.stored()).unwrap(),
            json!({"wait": 120, "code": "abc", "gone": null})
        );
        assert_eq!(fields.0["wait"], CustomValue::Duration(120.0));
    }

    #[test]
    fn datetimes_are_stored_in_utc() {
        let v = read(FieldType::Datetime, json!("2020-06-21T09:51:13.588+03")).unwrap();
        assert_eq!(
            serde_json::to_value(v.stored()).unwrap(),
            json!("2020-06-21T06:51:13.588Z")
        );
    }
}
