//! Bounded text values: identifiers and names arrive as free text from PBXs.

use serde::{Deserialize, Serialize};

pub const MAX_ID_LEN: usize = 255;

/// An identifier from the customer's system (`operator_id`, `uid`, `client.id`, chain uid):
/// non-empty after trimming, at most 255 characters. PBXs sometimes send extensions as JSON
/// numbers, so integers are accepted and kept as their decimal text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ExternalId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {MAX_ID_LEN} characters")]
    TooLong,
    #[error("{}", super::NUL_REFUSAL)]
    Nul,
}

impl ExternalId {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            Err(IdError::Empty)
        } else if trimmed.chars().count() > MAX_ID_LEN {
            Err(IdError::TooLong)
        } else if trimmed.contains('\0') {
            Err(IdError::Nul)
        } else {
            Ok(Self(trimmed.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ExternalId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ExternalId> for String {
    fn from(value: ExternalId) -> Self {
        value.0
    }
}

impl std::fmt::Display for ExternalId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_trimmed_and_bounded() {
        assert_eq!(
            ExternalId::parse("  op@x.org ").unwrap().as_str(),
            "op@x.org"
        );
        assert_eq!(ExternalId::parse("   "), Err(IdError::Empty));
        assert_eq!(ExternalId::parse(&"x".repeat(256)), Err(IdError::TooLong));
        assert_eq!(ExternalId::parse("op\0x"), Err(IdError::Nul));
    }
}
