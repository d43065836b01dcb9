//! Integration tokens: 256 random bits shown once, stored as SHA-256. A slow password hash
//! buys nothing for tokens this long, and keeps authentication cheap.

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Characters of a token as [`generate`] writes it: 32 bytes, hex.
pub const TOKEN_LEN: usize = 64;

/// A token presented by a client that has the shape of one we issue. Only such a token is
/// worth a lookup: anything else is refused before the database is asked about it.
#[derive(Debug, Clone, Copy)]
pub struct Presented<'a>(&'a str);

impl<'a> Presented<'a> {
    /// `None` unless `raw` is [`TOKEN_LEN`] lowercase hex digits.
    pub fn parse(raw: &'a str) -> Option<Self> {
        let well_formed = raw.len() == TOKEN_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        well_formed.then_some(Self(raw))
    }

    /// Constant-time comparison with a stored hash.
    pub fn matches(&self, stored_hash: &[u8]) -> bool {
        matches(self.0, stored_hash)
    }
}

/// Constant-time comparison of a presented token with a stored hash.
pub fn matches(presented: &str, stored_hash: &[u8]) -> bool {
    hash(presented).ct_eq(stored_hash).into()
}

/// The token from an `Authorization` header: raw (as existing clients send it) or `Bearer`.
pub fn from_header(value: &str) -> &str {
    let value = value.trim();
    match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_matches_only_its_own_hash() {
        let token = generate();
        assert_eq!(token.len(), 64);
        assert!(matches(&token, &hash(&token)));
        assert!(!matches(&generate(), &hash(&token)));
    }

    #[test]
    fn only_tokens_shaped_like_ours_are_presented() {
        let token = generate();
        assert!(Presented::parse(&token).is_some_and(|p| p.matches(&hash(&token))));
        assert!(Presented::parse(&token.to_uppercase()).is_none());
        assert!(Presented::parse(&token[1..]).is_none());
        assert!(Presented::parse(&format!("{token}0")).is_none());
        assert!(Presented::parse(&format!("g{}", &token[1..])).is_none());
        assert!(Presented::parse("").is_none());
        let multibyte = format!("é{}", &token[2..]);
        assert_eq!(multibyte.len(), TOKEN_LEN);
        assert!(Presented::parse(&multibyte).is_none());
    }

    #[test]
    fn raw_and_bearer_headers_give_the_same_token() {
        assert_eq!(from_header("abc"), "abc");
        assert_eq!(from_header("Bearer abc"), "abc");
        assert_eq!(from_header("bearer  abc "), "abc");
    }
}
