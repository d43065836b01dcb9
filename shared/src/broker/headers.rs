//! What a message carries from one attempt to the next, in AMQP headers, so that its body
//! stays byte-identical to what the gateway published. A replay publishes without them:
//! replayed messages start with fresh attempt counts.

use chrono::{DateTime, TimeZone, Utc};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;

const FAILED_ATTEMPTS: &str = "x-callq-failed-attempts";
const FIRST_FAILED_AT: &str = "x-callq-first-failed-at";
const LAST_ERROR: &str = "x-callq-last-error";
const CALLS: &str = "x-callq-calls";
const SET_ASIDE_REASON: &str = "x-callq-set-aside-reason";
const SET_ASIDE_DETAIL: &str = "x-callq-set-aside-detail";
/// W3C trace context of a message holding one call, under the header name the W3C
/// AMQP binding uses.
const TRACEPARENT: &str = "traceparent";
/// A group's calls' trace contexts, in the group's order: each call was its own request.
const TRACEPARENTS: &str = "x-callq-traceparents";

/// How many calls a group message holds, so a worker sizes its batches without parsing.
pub fn group_headers(calls: usize) -> FieldTable {
    let mut headers = FieldTable::default();
    headers.insert(
        ShortString::from(CALLS),
        AMQPValue::LongLongInt(i64::try_from(calls).unwrap_or(i64::MAX)),
    );
    headers
}

/// `traceparents` (one per call that has one) into `headers`: `traceparent` for one,
/// `x-callq-traceparents` for more.
pub fn add_traceparents(headers: &mut FieldTable, traceparents: &[String]) {
    match traceparents {
        [] => {}
        [one] => {
            headers.insert(
                ShortString::from(TRACEPARENT),
                AMQPValue::LongString(LongString::from(one.as_str())),
            );
        }
        many => {
            headers.insert(
                ShortString::from(TRACEPARENTS),
                AMQPValue::FieldArray(
                    many.iter()
                        .map(|t| AMQPValue::LongString(LongString::from(t.as_str())))
                        .collect::<Vec<_>>()
                        .into(),
                ),
            );
        }
    }
}

/// The trace contexts a delivery carries, in its calls' order; none without telemetry.
pub fn traceparents(properties: &BasicProperties) -> Vec<String> {
    let Some(headers) = properties.headers() else {
        return Vec::new();
    };
    let headers = headers.inner();
    if let Some(one) = headers.get(TRACEPARENT).and_then(as_string) {
        return vec![one];
    }
    match headers.get(TRACEPARENTS) {
        Some(AMQPValue::FieldArray(many)) => many.as_slice().iter().filter_map(as_string).collect(),
        _ => Vec::new(),
    }
}

/// The calls a delivery holds: 1 unless it is a group.
pub fn calls(properties: &BasicProperties) -> usize {
    properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(CALLS).and_then(as_i64))
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(1)
        .max(1)
}

/// The transient failures a message has met so far, and the trace contexts of its calls, so
/// that a retry continues their traces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attempts {
    pub failed: u32,
    pub first_failed_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub traceparents: Vec<String>,
}

impl Attempts {
    pub fn read(properties: &BasicProperties) -> Self {
        let Some(headers) = properties.headers() else {
            return Self::default();
        };
        let headers = headers.inner();
        let int = |key: &str| headers.get(key).and_then(as_i64);
        Self {
            failed: int(FAILED_ATTEMPTS)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
            first_failed_at: int(FIRST_FAILED_AT)
                .and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
            last_error: headers.get(LAST_ERROR).and_then(as_string),
            traceparents: traceparents(properties),
        }
    }

    /// These attempts plus one that just failed with `error`.
    pub fn and_failure(&self, error: &str) -> Self {
        Self {
            failed: self.failed + 1,
            first_failed_at: Some(self.first_failed_at.unwrap_or_else(Utc::now)),
            last_error: Some(error.to_owned()),
            traceparents: self.traceparents.clone(),
        }
    }

    /// The attempts of a group's call `index` (of `calls`) going on alone: the group's, with
    /// that call's trace context only (none when the group did not carry one for each).
    pub fn of_call(&self, index: usize, calls: usize) -> Self {
        let traceparents = match self.traceparents.get(index) {
            Some(own) if self.traceparents.len() == calls => vec![own.clone()],
            _ => Vec::new(),
        };
        Self {
            traceparents,
            ..self.clone()
        }
    }

    pub fn to_headers(&self) -> FieldTable {
        let mut headers = FieldTable::default();
        headers.insert(
            ShortString::from(FAILED_ATTEMPTS),
            AMQPValue::LongLongInt(i64::from(self.failed)),
        );
        if let Some(at) = self.first_failed_at {
            headers.insert(
                ShortString::from(FIRST_FAILED_AT),
                AMQPValue::LongLongInt(at.timestamp_millis()),
            );
        }
        if let Some(error) = &self.last_error {
            headers.insert(
                ShortString::from(LAST_ERROR),
                AMQPValue::LongString(LongString::from(error.as_str())),
            );
        }
        add_traceparents(&mut headers, &self.traceparents);
        headers
    }
}

/// Why the broker itself dead-lettered a message out of a queue: that queue's `x-death`
/// entry, e.g. `delivery_limit` or `rejected`, and how often deliveries were tried. Asked
/// for by queue: a message parked from the dead queue and moved back carries the dead
/// queue's entry too, newest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Death {
    pub reason: String,
    pub queue: Option<String>,
    pub delivery_count: Option<i64>,
}

impl Death {
    pub fn read(properties: &BasicProperties, queue: &str) -> Option<Self> {
        let headers = properties.headers().as_ref()?.inner();
        let AMQPValue::FieldArray(entries) = headers.get("x-death")? else {
            return None;
        };
        let entry = entries.as_slice().iter().find_map(|entry| match entry {
            AMQPValue::FieldTable(entry)
                if entry.inner().get("queue").and_then(as_string).as_deref() == Some(queue) =>
            {
                Some(entry.inner())
            }
            _ => None,
        })?;
        Some(Self {
            reason: entry.get("reason").and_then(as_string)?,
            queue: Some(queue.to_owned()),
            delivery_count: headers.get("x-delivery-count").and_then(as_i64),
        })
    }
}

/// Why a worker put a message on the dead queue itself, having failed to record it (its
/// dead letter was refused too), so that whoever records it from there says the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    /// A `dead_letters` reason.
    pub reason: String,
    pub detail: String,
}

impl SetAside {
    pub fn read(properties: &BasicProperties) -> Option<Self> {
        let headers = properties.headers().as_ref()?.inner();
        Some(Self {
            reason: headers.get(SET_ASIDE_REASON).and_then(as_string)?,
            detail: headers
                .get(SET_ASIDE_DETAIL)
                .and_then(as_string)
                .unwrap_or_default(),
        })
    }

    pub fn to_headers(&self) -> FieldTable {
        let mut headers = FieldTable::default();
        headers.insert(
            ShortString::from(SET_ASIDE_REASON),
            AMQPValue::LongString(LongString::from(self.reason.as_str())),
        );
        headers.insert(
            ShortString::from(SET_ASIDE_DETAIL),
            AMQPValue::LongString(LongString::from(self.detail.as_str())),
        );
        headers
    }
}

fn as_i64(value: &AMQPValue) -> Option<i64> {
    match value {
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::LongUInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortInt(n) => Some(i64::from(*n)),
        AMQPValue::Timestamp(n) => i64::try_from(*n).ok(),
        _ => None,
    }
}

fn as_string(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_survive_the_round_trip_through_headers() {
        let first = Attempts::default().and_failure("pool timed out");
        let second = Attempts::read(&BasicProperties::default().with_headers(first.to_headers()))
            .and_failure("connection refused");
        let read = Attempts::read(&BasicProperties::default().with_headers(second.to_headers()));
        assert_eq!(read.failed, 2);
        assert_eq!(
            read.first_failed_at.map(|t| t.timestamp_millis()),
            first.first_failed_at.map(|t| t.timestamp_millis())
        );
        assert_eq!(read.last_error.as_deref(), Some("connection refused"));
    }

    #[test]
    fn why_a_message_was_set_aside_survives_the_headers() {
        let set_aside = SetAside {
            reason: "database_rejected".into(),
            detail: "the database refused the call".into(),
        };
        let read = SetAside::read(&BasicProperties::default().with_headers(set_aside.to_headers()));
        assert_eq!(read, Some(set_aside));
        assert_eq!(SetAside::read(&BasicProperties::default()), None);
    }

    #[test]
    fn the_death_asked_for_is_the_one_out_of_that_queue() {
        let death = |queue: &str, reason: &str| {
            let mut entry = FieldTable::default();
            entry.insert("queue".into(), AMQPValue::LongString(queue.into()));
            entry.insert("reason".into(), AMQPValue::LongString(reason.into()));
            AMQPValue::FieldTable(entry)
        };
        let mut headers = FieldTable::default();
        headers.insert(
            "x-death".into(),
            AMQPValue::FieldArray(
                vec![
                    death("p.dead", "delivery_limit"),
                    death("p.calls", "rejected"),
                ]
                .into(),
            ),
        );
        let parked = BasicProperties::default().with_headers(headers);
        let read = Death::read(&parked, "p.calls").expect("died out of p.calls");
        assert_eq!(read.reason, "rejected");
        assert_eq!(Death::read(&parked, "p.retry.1000ms"), None);
    }

    #[test]
    fn a_group_says_how_many_calls_it_holds() {
        let group = BasicProperties::default().with_headers(group_headers(17));
        assert_eq!(calls(&group), 17);
        assert_eq!(calls(&BasicProperties::default()), 1);
    }

    #[test]
    fn trace_contexts_survive_the_headers_for_one_call_and_for_a_group() {
        let one = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned();
        let two = "00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-01".to_owned();
        for carried in [vec![one.clone()], vec![one, two], vec![]] {
            let mut headers = FieldTable::default();
            add_traceparents(&mut headers, &carried);
            let properties = BasicProperties::default().with_headers(headers);
            assert_eq!(traceparents(&properties), carried);
        }
    }

    #[test]
    fn a_call_of_a_group_going_on_alone_keeps_its_own_trace_context_only() {
        let group = Attempts {
            traceparents: vec!["a".into(), "b".into(), "c".into()],
            ..Attempts::default()
        };
        assert_eq!(group.of_call(1, 3).traceparents, vec!["b".to_owned()]);
        assert!(group.of_call(1, 4).traceparents.is_empty());
    }

    #[test]
    fn a_message_without_headers_has_no_failed_attempts() {
        assert_eq!(
            Attempts::read(&BasicProperties::default()),
            Attempts::default()
        );
        assert_eq!(Death::read(&BasicProperties::default(), "q.calls"), None);
    }
}
