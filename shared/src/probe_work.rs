//! What travels on the probe queue: the media probes a batch of stored calls needs,
//! `{"version": "1", "probes": [{...}, ...]}`, one message for many probes so that probing
//! costs the broker a publish per batch of calls, not per call.
//!
//! A probe names its call by (integration, `uid`) and the `media_url` it checks: its result
//! is written only while the call still has that URL, so a probe can be done twice, late or
//! after the call changed without harm.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub integration_id: Uuid,
    pub uid: String,
    pub media_url: String,
    /// When the calls stage committed the call (or a reprobe was asked for): the probe
    /// stage's lag is measured from it.
    #[serde(with = "crate::domain::wire_time")]
    pub stored_at: DateTime<Utc>,
    /// Probes already made of this URL that found it not yet reachable (404, timeout, ...).
    #[serde(default)]
    pub attempts: u32,
    /// Times it was put off because its host already had as much waiting as it can serve.
    #[serde(default)]
    pub deferrals: u32,
    /// The trace context of the batch span that stored the call, when traces are exported:
    /// the probe's span continues the call's trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeWork {
    pub version: Version,
    pub probes: Vec<Probe>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Version {
    #[serde(rename = "1")]
    V1,
}

impl ProbeWork {
    pub fn new(probes: Vec<Probe>) -> Self {
        Self {
            version: Version::V1,
            probes,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        sonic_rs::to_vec(self).expect("probe work always serialises")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, sonic_rs::Error> {
        sonic_rs::from_slice(bytes)
    }
}

/// `probes` as one message per recording host: the probe stage acks a message once all its
/// probes are settled, so a message holding one host's probes is never held back by another
/// host's slow ones.
pub fn by_host(probes: Vec<Probe>) -> Vec<ProbeWork> {
    let mut hosts: HashMap<String, Vec<Probe>> = HashMap::new();
    for probe in probes {
        hosts
            .entry(host_of(&probe.media_url).to_owned())
            .or_default()
            .push(probe);
    }
    hosts.into_values().map(ProbeWork::new).collect()
}

/// The host (and port) part of a media URL as the gateway stored it (`scheme://host:port/...`),
/// which groups probe work by recording host without parsing the URL again.
pub fn host_of(media_url: &str) -> &str {
    let rest = media_url
        .split_once("://")
        .map_or(media_url, |(_, rest)| rest);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_work_round_trips_and_reads_probes_without_counters() {
        let work = ProbeWork::new(vec![Probe {
            integration_id: Uuid::now_v7(),
            uid: "a\"b".into(),
            media_url: "https://rec.example/1.wav".into(),
            stored_at: Utc::now(),
            attempts: 2,
            deferrals: 1,
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        }]);
        assert_eq!(ProbeWork::from_bytes(&work.to_bytes()).unwrap(), work);

        let bare = format!(
            r#"{{"version":"1","probes":[{{"integration_id":"{}","uid":"u","media_url":"http://x/","stored_at":"2026-12-03T10:00:00.000000Z"}}]}}"#,
            Uuid::nil()
        );
        let read = ProbeWork::from_bytes(bare.as_bytes()).unwrap();
        assert_eq!((read.probes[0].attempts, read.probes[0].deferrals), (0, 0));
    }

    #[test]
    fn host_of_takes_the_authority() {
        assert_eq!(
            host_of("https://rec.example:8443/a/b.wav?x=1"),
            "rec.example:8443"
        );
        assert_eq!(host_of("http://rec.example?sig=1"), "rec.example");
        assert_eq!(host_of("http://[::1]:80/a"), "[::1]:80");
        assert_eq!(host_of("no scheme"), "no scheme");
    }

    #[test]
    fn an_unknown_version_is_refused() {
        assert!(ProbeWork::from_bytes(br#"{"version":"2","probes":[]}"#).is_err());
    }
}
