//! What travels on the queue: a versioned envelope around a parsed call. A worker refuses
//! (dead-letters) a version it does not know rather than guessing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::Call;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "version")]
pub enum CallMessage {
    #[serde(rename = "1")]
    V1(CallEnvelope),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallEnvelope {
    /// Time-ordered (UUIDv7): with `received_at` it orders two versions of one call.
    pub ingest_id: Uuid,
    pub integration_id: Uuid,
    pub organisation_id: Uuid,
    pub received_at: DateTime<Utc>,
    pub call: Call,
}

impl CallMessage {
    pub fn envelope(&self) -> &CallEnvelope {
        match self {
            Self::V1(envelope) => envelope,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a call message always serialises")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
