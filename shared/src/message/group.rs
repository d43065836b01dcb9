//! Groups exist for throughput: a gateway puts the calls that arrive while its earlier
//! publishes await their confirms into one message, so the broker stores, confirms,
//! delivers and acks them once instead of once each. Each element is byte for byte the
//! message that call would have been alone; retries, dead letters and replays carry single
//! calls.

use std::borrow::Cow;

/// The `content_encoding` of a compressed group: LZ4 block format, the decompressed length
/// first (4 bytes, little-endian).
pub const LZ4: &str = "lz4";

/// The most a compressed message may claim to hold: a group is at most 1 MiB of calls, and a
/// corrupt length must not make a worker allocate gigabytes.
const MAX_DECOMPRESSED_BYTES: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("unknown content_encoding {0:?}; only {LZ4:?} is written")]
    UnknownEncoding(String),
    #[error("the {LZ4} body claims {0} bytes, more than a message may hold")]
    TooLarge(usize),
    #[error("the {LZ4} body cannot be decompressed: {0}")]
    Corrupt(String),
}

pub fn compress(body: &[u8]) -> Vec<u8> {
    lz4_flex::compress_prepend_size(body)
}

/// A delivery's JSON, given its `content_encoding`.
pub fn decompress<'a>(
    content_encoding: Option<&str>,
    data: &'a [u8],
) -> Result<Cow<'a, [u8]>, BodyError> {
    match content_encoding {
        None | Some("" | "identity") => Ok(Cow::Borrowed(data)),
        Some(LZ4) => {
            let (size, _) = lz4_flex::block::uncompressed_size(data)
                .map_err(|e| BodyError::Corrupt(e.to_string()))?;
            if size > MAX_DECOMPRESSED_BYTES {
                return Err(BodyError::TooLarge(size));
            }
            // lz4_flex returns what a truncated block held, shorter than the size it declared:
            // taken as whole, a cut group would lose its last calls.
            let body = lz4_flex::decompress_size_prepended(data)
                .map_err(|e| BodyError::Corrupt(e.to_string()))?;
            if body.len() == size {
                Ok(Cow::Owned(body))
            } else {
                Err(BodyError::Corrupt(format!(
                    "{} bytes decompressed of the {size} declared",
                    body.len()
                )))
            }
        }
        Some(other) => Err(BodyError::UnknownEncoding(other.to_owned())),
    }
}

/// One message holding `calls`, each an encoded single-call message; a lone call is sent
/// as itself.
pub fn group(mut calls: Vec<Vec<u8>>) -> Vec<u8> {
    if calls.len() == 1 {
        return calls.remove(0);
    }
    let mut body = Vec::with_capacity(calls.iter().map(|c| c.len() + 1).sum::<usize>() + 1);
    body.push(b'[');
    for (i, call) in calls.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(call);
    }
    body.push(b']');
    body
}

/// The single-call messages a body holds, as slices of it. A body that is not a well-formed
/// group (unbalanced, empty, or with something after its closing bracket) is returned whole,
/// to be refused as undecodable like any corrupt message.
///
/// Only the group's structure is read here: strings are skipped, not validated, since each
/// call is decoded (and validated) right after. Parsing the group as JSON first read every
/// byte twice and took a tenth of the worker's instructions.
pub fn split(body: &[u8]) -> Vec<&[u8]> {
    split_group(body).unwrap_or_else(|| vec![body])
}

fn split_group(body: &[u8]) -> Option<Vec<&[u8]>> {
    if body.first() != Some(&b'[') {
        return None;
    }
    let mut calls = Vec::new();
    let mut depth = 0usize;
    let mut start = 1;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => i = string_end(body, i + 1)?,
            b'[' | b'{' => depth += 1,
            b']' | b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    calls.push(element(&body[start..i])?);
                    let rest = &body[i + 1..];
                    return rest.iter().all(u8::is_ascii_whitespace).then_some(calls);
                }
            }
            b',' if depth == 1 => {
                calls.push(element(&body[start..i])?);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The index of the quote closing the string whose contents start at `from`. Most of a
/// call's bytes are in strings, so they are searched for quotes and backslashes with SIMD
/// rather than looked at one by one.
fn string_end(body: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let at = from + memchr::memchr2(b'"', b'\\', body.get(from..)?)?;
        if body[at] == b'"' {
            return Some(at);
        }
        from = at + 2;
    }
}

/// One element of a group, without the whitespace around it; none is not an element.
fn element(raw: &[u8]) -> Option<&[u8]> {
    let start = raw.iter().position(|b| !b.is_ascii_whitespace())?;
    let end = raw.iter().rposition(|b| !b.is_ascii_whitespace())?;
    Some(&raw[start..=end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::tests::message;
    use crate::message::CallMessage;

    #[test]
    fn a_compressed_group_comes_back_byte_for_byte() {
        let body = group((0..17).map(|_| message().to_bytes()).collect());
        let compressed = compress(&body);
        assert!(
            compressed.len() * 3 < body.len(),
            "{} of {}",
            compressed.len(),
            body.len()
        );
        assert_eq!(decompress(Some(LZ4), &compressed).unwrap(), body.as_slice());
        assert_eq!(decompress(None, &body).unwrap(), body.as_slice());
    }

    #[test]
    fn bodies_that_cannot_be_decompressed_say_why() {
        let compressed = compress(&group((0..3).map(|_| message().to_bytes()).collect()));
        let truncated = &compressed[..compressed.len() / 2];
        assert!(matches!(
            decompress(Some(LZ4), truncated),
            Err(BodyError::Corrupt(_))
        ));
        let mut huge = compressed.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decompress(Some(LZ4), &huge),
            Err(BodyError::TooLarge(_))
        ));
        assert!(matches!(
            decompress(Some("gzip"), &compressed),
            Err(BodyError::UnknownEncoding(_))
        ));
    }

    #[test]
    fn a_group_splits_back_into_the_very_bytes_of_its_calls() {
        let calls: Vec<Vec<u8>> = (0..3).map(|_| message().to_bytes()).collect();
        let body = group(calls.clone());
        let parts = split(&body);
        assert_eq!(parts.len(), 3);
        for (part, call) in parts.iter().zip(&calls) {
            assert_eq!(*part, call.as_slice());
            assert!(CallMessage::from_bytes(part).is_ok());
        }
    }

    #[test]
    fn a_lone_call_is_not_wrapped() {
        let call = message().to_bytes();
        assert_eq!(group(vec![call.clone()]), call);
        assert_eq!(split(&call), vec![call.as_slice()]);
    }

    #[test]
    fn a_corrupt_group_stays_whole() {
        for body in [
            &b"[{\"version\": \"1\""[..],
            b"[]",
            b"not json",
            b"[{}}]",
            b"[{},]",
            b"[{} , , {}]",
            b"[{}] x",
            b"[{\"a\": \"]\"}",
        ] {
            assert_eq!(split(body), vec![body], "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn brackets_commas_and_quotes_inside_strings_do_not_split() {
        let body = br#"[ {"a": "x],[{\"y\\", "b": [1, {"c": 2}]} ,{"d": "\\"} ]"#;
        let parts = split(body);
        assert_eq!(
            parts,
            vec![
                &br#"{"a": "x],[{\"y\\", "b": [1, {"c": 2}]}"#[..],
                br#"{"d": "\\"}"#
            ]
        );
        for part in parts {
            serde_json::from_slice::<serde_json::Value>(part).expect("a whole JSON value");
        }
    }
}
