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
    fn raw_and_bearer_headers_give_the_same_token() {
        assert_eq!(from_header("abc"), "abc");
        assert_eq!(from_header("Bearer abc"), "abc");
        assert_eq!(from_header("bearer  abc "), "abc");
    }
}
