//! `DateTime<Utc>` in our own messages, answers and stored JSON, for `#[serde(with)]`.
//!
//! The text is chrono's own (`2024-03-01T07:00:00.123Z`: UTC, `Z`, a fraction of 0, 3, 6 or
//! 9 digits), so what either side wrote before reads the same. It is written and read by
//! hand because chrono goes through `core::fmt` one character at a time: with three
//! date-times a call, a measurable share of a gateway's instructions (docs/benchmark.md).
//! Years outside 0..=9999
//! and leap seconds, which that fixed layout cannot hold, are left to chrono.

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Timelike, Utc};
use serde::de::{self, Visitor};
use serde::{Deserializer, Serialize, Serializer};

/// `2024-03-01T07:00:00.123456789Z`
const LONGEST: usize = 30;

pub fn serialize<S: Serializer>(t: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; LONGEST];
    match write(t, &mut buf).map(|n| std::str::from_utf8(&buf[..n])) {
        Some(Ok(text)) => serializer.serialize_str(text),
        _ => t.serialize(serializer),
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    deserializer.deserialize_str(UtcVisitor)
}

/// Writes `t` into `buf` and returns its length, or `None` where chrono must write it.
fn write(t: &DateTime<Utc>, buf: &mut [u8; LONGEST]) -> Option<usize> {
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    let nanos = t.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    digits(&mut buf[0..4], year);
    buf[4] = b'-';
    digits(&mut buf[5..7], t.month());
    buf[7] = b'-';
    digits(&mut buf[8..10], t.day());
    buf[10] = b'T';
    digits(&mut buf[11..13], t.hour());
    buf[13] = b':';
    digits(&mut buf[14..16], t.minute());
    buf[16] = b':';
    digits(&mut buf[17..19], t.second());
    let mut end = 19;
    let (fraction, width) = match nanos {
        0 => (0, 0),
        n if n % 1_000_000 == 0 => (n / 1_000_000, 3),
        n if n % 1_000 == 0 => (n / 1_000, 6),
        n => (n, 9),
    };
    if width > 0 {
        buf[end] = b'.';
        digits(&mut buf[end + 1..end + 1 + width], fraction);
        end += 1 + width;
    }
    buf[end] = b'Z';
    Some(end + 1)
}

/// `n` as exactly `out.len()` decimal digits, zero-padded.
fn digits(out: &mut [u8], mut n: u32) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

struct UtcVisitor;

impl Visitor<'_> for UtcVisitor {
    type Value = DateTime<Utc>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an RFC 3339 date-time")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        match read(s.as_bytes()) {
            Some(t) => Ok(t),
            None => s.parse().map_err(E::custom),
        }
    }
}

/// Reads exactly the layout `write` writes; `None` for anything else.
fn read(s: &[u8]) -> Option<DateTime<Utc>> {
    if s.len() < 20 || s.len() > LONGEST || s[s.len() - 1] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| {
        s.get(range)?.iter().try_fold(0u32, |n, b| {
            b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
        })
    };
    if [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')]
        .iter()
        .any(|&(i, c)| s[i] != c)
    {
        return None;
    }
    let nanos = match &s[19..s.len() - 1] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            number(20..s.len() - 1)? * 10u32.pow(9 - fraction.len() as u32)
        }
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(number(0..4)? as i32, number(5..7)?, number(8..10)?)?;
    let time =
        NaiveTime::from_hms_nano_opt(number(11..13)?, number(14..16)?, number(17..19)?, nanos)?;
    Some(date.and_time(time).and_utc())
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use serde::Deserialize;

    use super::*;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Ours(#[serde(with = "super")] DateTime<Utc>);

    fn samples() -> Vec<DateTime<Utc>> {
        let base = Utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 59).unwrap();
        let mut out = vec![
            base,
            Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 1, 1, 0, 0, 0).unwrap(),
            Utc::now(),
        ];
        for nanos in [
            1,
            10,
            999,
            1_000,
            120_000,
            1_000_000,
            588_000_000,
            999_999_999,
        ] {
            out.push(base + Duration::nanoseconds(nanos));
        }
        // A leap second: chrono keeps it as 1.5 s of nanoseconds in second 59.
        out.push(
            NaiveDate::from_ymd_opt(2016, 12, 31)
                .unwrap()
                .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
                .unwrap()
                .and_utc(),
        );
        out
    }

    #[test]
    fn writes_what_chrono_writes_and_reads_it_back() {
        for t in samples() {
            let ours = serde_json::to_string(&Ours(t)).unwrap();
            assert_eq!(ours, serde_json::to_string(&t).unwrap(), "{t:?}");
            assert_eq!(
                serde_json::from_str::<Ours>(&ours).unwrap(),
                Ours(t),
                "{ours}"
            );
        }
    }

    #[test]
    fn reads_what_chrono_reads() {
        for (text, expected) in [
            ("2024-03-01T10:00:00+03:00", "2024-03-01T07:00:00Z"),
            ("2024-03-01T07:00:00.1Z", "2024-03-01T07:00:00.100Z"),
            ("2024-03-01t07:00:00z", "2024-03-01T07:00:00Z"),
        ] {
            let ours: Ours = serde_json::from_str(&format!("{text:?}")).unwrap();
            assert_eq!(ours.0, DateTime::parse_from_rfc3339(expected).unwrap());
        }
        for bad in [
            "2024-02-30T07:00:00Z",
            "2024-03-01T07:00:00.Z",
            "2024-03-01T07:00Z",
            "x",
        ] {
            assert!(
                serde_json::from_str::<Ours>(&format!("{bad:?}")).is_err(),
                "{bad}"
            );
            assert!(bad.parse::<DateTime<Utc>>().is_err(), "chrono reads {bad}");
        }
    }
}
