//! `started_at` and datetime custom fields: ISO 8601 with a zone, read leniently the way
//! integrators actually write it (the page's own examples are not RFC 3339).

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Utc};

pub const ZONE_EXAMPLE: &str = "2019-08-09T18:31:42+03";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("must include a time zone, e.g. {ZONE_EXAMPLE}")]
    MissingZone,
    #[error("must be an ISO 8601 date-time with a time zone, e.g. {ZONE_EXAMPLE}")]
    Malformed,
    #[error("must be a date-time between the years 0001 and 9999")]
    OutOfRange,
}

/// Accepts RFC 3339 and the forms the page uses: offsets `Z`, `+03`, `+0300`, `+03:00`,
/// fractional seconds of any length, and `Z+03`, which is read as the explicit offset.
/// Years are those RFC 3339 can write (chrono would read `+200000-01-01`, which Postgres
/// cannot store and the queue message could not carry).
pub fn parse_zoned(input: &str) -> Result<DateTime<Utc>, TimeError> {
    let s = input.trim();
    let (local, zone) = split_zone(s)?;
    let local = parse_local(local).ok_or(TimeError::Malformed)?;
    let offset = parse_offset(zone).ok_or(TimeError::Malformed)?;
    let utc = local
        .and_local_timezone(offset)
        .single()
        .map(|t| t.with_timezone(&Utc))
        .ok_or(TimeError::Malformed)?;
    if (1..=9999).contains(&utc.year()) {
        Ok(utc)
    } else {
        Err(TimeError::OutOfRange)
    }
}

/// Splits `2020-06-21T09:51:13.588Z+03` into the local part and `Z+03`.
fn split_zone(s: &str) -> Result<(&str, &str), TimeError> {
    let time_start = s.find(['T', 't', ' ']).ok_or(TimeError::Malformed)? + 1;
    let zone_at = s[time_start..]
        .find(['Z', 'z', '+', '-'])
        .map(|i| time_start + i)
        .ok_or(TimeError::MissingZone)?;
    Ok((&s[..zone_at], &s[zone_at..]))
}

fn parse_local(s: &str) -> Option<NaiveDateTime> {
    let (date, time) = s.split_at(s.find(['T', 't', ' '])?);
    let date = match fixed_digits(date, b"dddd-dd-dd")
        .and_then(|[y, m, d]| NaiveDate::from_ymd_opt(y as i32, m, d))
    {
        Some(date) => date,
        None => NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?,
    };
    let time = &time[1..];
    let (hms, frac) = match time.split_once('.') {
        Some((hms, frac)) => (hms, Some(frac)),
        None => (time, None),
    };
    let hms = match fixed_digits(hms, b"dd:dd:dd")
        .and_then(|[h, m, s]| NaiveTime::from_hms_opt(h, m, s))
    {
        Some(time) => time,
        None => NaiveTime::parse_from_str(hms, "%H:%M:%S").ok()?,
    };
    let nanos = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => f
            .bytes()
            .chain(std::iter::repeat(b'0'))
            .take(9)
            .fold(0, |n, b| n * 10 + u32::from(b - b'0')),
        Some(_) => return None,
    };
    Some(date.and_time(hms) + chrono::Duration::nanoseconds(i64::from(nanos)))
}

/// The three numbers of `2019-08-09` or `18:31:42` written exactly as `shape` (`d` a digit):
/// the form nearly every call uses, read without chrono's format parser, which cost the
/// gateway a few percent of its CPU. Anything else (other widths, a leap second) is left to
/// that parser, so what is accepted does not change.
fn fixed_digits(s: &str, shape: &[u8]) -> Option<[u32; 3]> {
    if s.len() != shape.len() {
        return None;
    }
    let mut numbers = [0u32; 3];
    let mut i = 0;
    for (&b, &want) in s.as_bytes().iter().zip(shape) {
        match want {
            b'd' if b.is_ascii_digit() => numbers[i] = numbers[i] * 10 + u32::from(b - b'0'),
            b'd' => return None,
            separator if b == separator => i += 1,
            _ => return None,
        }
    }
    Some(numbers)
}

fn parse_offset(zone: &str) -> Option<FixedOffset> {
    let explicit = zone.trim_start_matches(['Z', 'z']);
    if explicit.is_empty() {
        return FixedOffset::east_opt(0);
    }
    let (sign, digits) = match explicit.as_bytes()[0] {
        b'+' => (1, &explicit[1..]),
        b'-' => (-1, &explicit[1..]),
        _ => return None,
    };
    let digits: String = digits.chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (hours, minutes) = match digits.len() {
        2 => (digits.parse::<i32>().ok()?, 0),
        4 => (
            digits[..2].parse::<i32>().ok()?,
            digits[2..].parse::<i32>().ok()?,
        ),
        _ => return None,
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_pages_z_plus_offset_form_is_read_as_the_explicit_offset() {
        assert_eq!(
            parse_zoned("2020-06-21T09:51:13.588Z+03").unwrap(),
            utc("2020-06-21T06:51:13.588Z")
        );
    }

    #[test]
    fn an_hour_only_offset_is_accepted() {
        assert_eq!(
            parse_zoned("2019-08-09T18:31:42+03").unwrap(),
            utc("2019-08-09T15:31:42Z")
        );
    }

    #[test]
    fn every_offset_spelling_means_the_same_instant() {
        let expected = utc("2019-08-09T21:01:42Z");
        for s in [
            "2019-08-09T18:31:42-02:30",
            "2019-08-09T18:31:42-0230",
            "2019-08-09 18:31:42-02:30",
        ] {
            assert_eq!(parse_zoned(s).unwrap(), expected, "{s}");
        }
        assert_eq!(
            parse_zoned("2019-08-09T18:31:42Z").unwrap(),
            utc("2019-08-09T18:31:42Z")
        );
        assert_eq!(
            parse_zoned("2019-08-09T18:31:42+00:00").unwrap(),
            utc("2019-08-09T18:31:42Z")
        );
    }

    #[test]
    fn fractional_seconds_of_any_length_are_kept() {
        assert_eq!(
            parse_zoned("2019-08-09T18:31:42.1Z").unwrap(),
            utc("2019-08-09T18:31:42.100Z")
        );
        assert_eq!(
            parse_zoned("2019-08-09T18:31:42.123456789123+01").unwrap(),
            utc("2019-08-09T17:31:42.123456789Z")
        );
    }

    #[test]
    fn a_time_without_zone_is_refused_with_an_example() {
        let err = parse_zoned("2019-08-09T18:31:42").unwrap_err();
        assert_eq!(err, TimeError::MissingZone);
        assert!(err.to_string().contains(ZONE_EXAMPLE));
    }

    #[test]
    fn the_fixed_width_fast_path_reads_as_chrono_does() {
        for (date, time) in [
            ("2019-08-09", "18:31:42"),
            ("2020-02-29", "00:00:00"),
            ("1999-12-31", "23:59:59"),
            ("2019-02-30", "18:31:42"),
            ("2019-08-09", "23:59:60"),
            ("2019-8-9", "8:3:4"),
            ("2019-08-09", "24:00:00"),
        ] {
            let ours = parse_local(&format!("{date}T{time}"));
            let chrono = NaiveDate::parse_from_str(date, "%Y-%m-%d")
                .ok()
                .zip(NaiveTime::parse_from_str(time, "%H:%M:%S").ok())
                .map(|(d, t)| d.and_time(t));
            assert_eq!(ours, chrono, "{date}T{time}");
        }
    }

    #[test]
    fn garbage_is_refused() {
        for s in [
            "",
            "yesterday",
            "2019-08-09",
            "2019-13-09T18:31:42Z",
            "2019-08-09T25:31:42Z",
            "2019-08-09T18:31:42+3",
            "2019-08-09T18:31:42+24:00",
            "2019-08-09T18:31:42.Z",
            "2019-08-09T18:31:42Zjunk",
        ] {
            assert!(parse_zoned(s).is_err(), "{s} should be refused");
        }
    }

    #[test]
    fn years_rfc_3339_cannot_write_are_refused() {
        for s in [
            "+200000-01-01T00:00:00Z",
            "-100000-01-01T00:00:00Z",
            "0000-12-31T23:00:00Z",
            "0001-01-01T00:30:00+01",
        ] {
            assert_eq!(parse_zoned(s), Err(TimeError::OutOfRange), "{s}");
        }
        assert!(parse_zoned("0001-01-01T00:00:00Z").is_ok());
        assert!(parse_zoned("9999-12-31T23:59:59.999999999Z").is_ok());
    }
}
