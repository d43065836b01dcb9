//! `media.allowed_ports`: the ports a media probe may connect to, parsed once when the
//! settings load so that a mistyped entry stops the service at start, not at the first probe.

use std::fmt;
use std::ops::RangeInclusive;

use serde::Deserialize;

/// Ports and ranges of ports, e.g. `80`, `443`, `8000-8100`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Listed")]
pub struct PortRanges(Vec<RangeInclusive<u16>>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortRangesError {
    #[error("must name at least one port")]
    Empty,
    #[error("{0:?} is neither a port (1-65535) nor a range of ports such as 8000-8100")]
    Entry(String),
}

impl PortRanges {
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, PortRangesError> {
        if entries.is_empty() {
            return Err(PortRangesError::Empty);
        }
        entries
            .iter()
            .map(|entry| parse_entry(entry.as_ref()))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Every port, for a machine whose recordings are served on arbitrary ports (tests).
    pub fn any() -> Self {
        Self(vec![1..=u16::MAX])
    }

    pub fn contains(&self, port: u16) -> bool {
        self.0.iter().any(|range| range.contains(&port))
    }
}

fn parse_entry(entry: &str) -> Result<RangeInclusive<u16>, PortRangesError> {
    let invalid = || PortRangesError::Entry(entry.to_owned());
    let port = |text: &str| match text.trim().parse::<u16>() {
        Ok(0) | Err(_) => Err(invalid()),
        Ok(port) => Ok(port),
    };
    let range = match entry.split_once('-') {
        Some((first, last)) => port(first)?..=port(last)?,
        None => {
            let single = port(entry)?;
            single..=single
        }
    };
    if range.is_empty() {
        return Err(invalid());
    }
    Ok(range)
}

impl fmt::Display for PortRanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, range) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match (range.start(), range.end()) {
                (first, last) if first == last => write!(f, "{first}")?,
                (first, last) => write!(f, "{first}-{last}")?,
            }
        }
        Ok(())
    }
}

/// What the settings may hold: a TOML list of strings or numbers, a comma-separated variable
/// (`APP_MEDIA__ALLOWED_PORTS=80,443`), or one value alone, which the environment source reads
/// as a number rather than a list.
#[derive(Deserialize)]
#[serde(untagged)]
enum Listed {
    Many(Vec<Entry>),
    One(Entry),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Entry {
    Number(i64),
    Text(String),
}

impl TryFrom<Listed> for PortRanges {
    type Error = PortRangesError;

    fn try_from(listed: Listed) -> Result<Self, Self::Error> {
        let entries: Vec<String> = match listed {
            Listed::Many(entries) => entries.into_iter().map(Entry::into_text).collect(),
            Listed::One(entry) => vec![entry.into_text()],
        };
        Self::parse(&entries)
    }
}

impl Entry {
    fn into_text(self) -> String {
        match self {
            Entry::Number(port) => port.to_string(),
            Entry::Text(text) => text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_ranges_are_read_and_shown_as_written() {
        let ports = PortRanges::parse(&["80", "443", "8000-8100"]).unwrap();

        assert!(ports.contains(80));
        assert!(ports.contains(443));
        assert!(ports.contains(8000));
        assert!(ports.contains(8050));
        assert!(ports.contains(8100));
        assert!(!ports.contains(81));
        assert!(!ports.contains(8101));
        assert_eq!(ports.to_string(), "80, 443, 8000-8100");
    }

    #[test]
    fn any_holds_every_port() {
        let any = PortRanges::any();
        assert!(any.contains(1));
        assert!(any.contains(u16::MAX));
        assert_eq!(any.to_string(), "1-65535");
    }

    #[test]
    fn a_malformed_entry_is_refused_by_name() {
        for entry in ["0", "65536", "http", "-80", "80-", "90-80", "", "1-2-3"] {
            assert_eq!(
                PortRanges::parse(&[entry]),
                Err(PortRangesError::Entry(entry.to_owned())),
                "{entry:?}"
            );
        }
    }

    #[test]
    fn an_empty_list_is_refused() {
        assert_eq!(PortRanges::parse::<&str>(&[]), Err(PortRangesError::Empty));
    }

    #[test]
    fn numbers_strings_and_a_lone_value_all_deserialize() {
        let from = |json: &str| serde_json::from_str::<PortRanges>(json);

        assert_eq!(
            from(r#"["80", 443, "8000-8100"]"#).unwrap(),
            PortRanges::parse(&["80", "443", "8000-8100"]).unwrap()
        );
        assert_eq!(from("443").unwrap(), PortRanges::parse(&["443"]).unwrap());
        assert!(from(r#"["80", "x"]"#).is_err());
    }
}
