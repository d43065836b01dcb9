//! Where a stored call's media stands (`calls.media_status`, migration 0005).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum MediaStatus {
    /// Not probed yet, or its probe not written back yet.
    Pending,
    Reachable,
    /// An error status, a timeout, a refused connection, an open circuit.
    Unreachable,
    /// The address guard would not let the probe connect.
    Refused,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown media status {0:?}; use one of {accepted}",
    accepted = MediaStatus::ALL.map(MediaStatus::as_str).join(", ")
)]
pub struct UnknownMediaStatus(String);

impl MediaStatus {
    pub const ALL: [MediaStatus; 4] = [
        Self::Pending,
        Self::Reachable,
        Self::Unreachable,
        Self::Refused,
    ];

    /// The column's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Reachable => "reachable",
            Self::Unreachable => "unreachable",
            Self::Refused => "refused",
        }
    }
}

impl fmt::Display for MediaStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MediaStatus {
    type Err = UnknownMediaStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownMediaStatus(s.to_owned()))
    }
}

impl TryFrom<String> for MediaStatus {
    type Error = UnknownMediaStatus;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_from_its_column_value() {
        for status in MediaStatus::ALL {
            assert_eq!(status.as_str().parse::<MediaStatus>(), Ok(status));
        }
    }

    #[test]
    fn an_unknown_status_is_refused_naming_the_accepted_ones() {
        let error = "gone".parse::<MediaStatus>().unwrap_err().to_string();
        assert_eq!(
            error,
            "unknown media status \"gone\"; use one of pending, reachable, unreachable, refused"
        );
    }
}
