//! A call as the contract defines it, once parsed: nothing in here can be invalid.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::custom_fields::CustomFields;
use super::text::ExternalId;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    pub operator_id: ExternalId,
    #[serde(with = "super::wire_time")]
    pub started_at: DateTime<Utc>,
    pub media_url: MediaUrl,
    pub uid: Option<ExternalId>,
    pub client_phone_number: Option<String>,
    pub direction: Option<Direction>,
    pub duration: Option<Seconds>,
    pub phone_call_chain_uid: Option<ExternalId>,
    pub client: Option<Client>,
    pub custom_fields: CustomFields,
    pub nps: Option<f64>,
    pub transcription: Option<Vec<Phrase>>,
}

impl Call {
    /// The key the call is stored under: its `uid`, or, without one, a key derived from
    /// what identifies a call (operator, start, recording), so a PBX retrying the same POST
    /// updates the call it already made instead of adding a second one.
    pub fn storage_key(&self) -> CallKey {
        match &self.uid {
            Some(uid) => CallKey {
                uid: uid.as_str().to_owned(),
                derived: false,
            },
            None => {
                let mut hash = Sha256::new();
                hash.update(self.operator_id.as_str());
                hash.update([0]);
                hash.update(self.started_at.to_rfc3339_opts(SecondsFormat::Nanos, true));
                hash.update([0]);
                hash.update(self.media_url.as_str());
                let digest = hex::encode(&hash.finalize()[..16]);
                CallKey {
                    uid: format!("derived:{digest}"),
                    derived: true,
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallKey {
    pub uid: String,
    pub derived: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Incoming,
    /// The API's own spelling; `outgoing` is read as the same.
    #[serde(alias = "outgoing")]
    Outcoming,
}

impl Direction {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "incoming" => Some(Self::Incoming),
            "outcoming" | "outgoing" => Some(Self::Outcoming),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Incoming => "incoming",
            Self::Outcoming => "outcoming",
        }
    }
}

/// A non-negative, finite number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Seconds(f64);

impl Seconds {
    pub fn new(value: f64) -> Option<Self> {
        (value.is_finite() && value >= 0.0).then_some(Self(value))
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Seconds {
    type Error = &'static str;
    fn try_from(value: f64) -> Result<Self, Self::Error> {
        Self::new(value).ok_or("seconds must be finite and >= 0")
    }
}

impl From<Seconds> for f64 {
    fn from(value: Seconds) -> Self {
        value.0
    }
}

/// An absolute http(s) URL with a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MediaUrl(url::Url);

impl MediaUrl {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let url = url::Url::parse(raw.trim()).map_err(|_| "must be an absolute http(s) URL")?;
        if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
            return Err("must be an absolute http(s) URL");
        }
        Ok(Self(url))
    }

    pub fn url(&self) -> &url::Url {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl TryFrom<String> for MediaUrl {
    type Error = &'static str;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<MediaUrl> for String {
    fn from(value: MediaUrl) -> Self {
        value.0.into()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    /// Without an id the client is kept on the call only: there is nothing to match it by.
    pub id: Option<ExternalId>,
    pub company_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Operator,
    Client,
}

/// One phrase of a transcription; `start_time <= end_time`, both seconds from the call's
/// start. Phrases may overlap (people talk over each other).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phrase {
    pub text: String,
    pub start_time: Seconds,
    pub end_time: Seconds,
    pub role: Role,
}
