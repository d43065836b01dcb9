//! One probe: HEAD, falling back to a one-byte ranged GET, turned into a [`MediaCheck`].

use reqwest::header::{HeaderMap, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use reqwest::{redirect, Client, Response, StatusCode};
use std::error::Error as StdError;
use std::io;
use tokio::time::Instant;
use url::Url;

use super::circuit::Health;
use super::guard::{Blocked, Guard};
use super::{MediaCheck, MediaStatus};

#[derive(Debug, thiserror::Error)]
#[error("too many redirects")]
struct TooManyRedirects;

/// Follows at most `max` redirects and refuses hops to ports, IP literals and `localhost`
/// names the guard forbids; hops to other names are checked by the resolver.
pub(super) fn redirect_policy(guard: Guard, max: usize) -> redirect::Policy {
    redirect::Policy::custom(move |attempt| {
        // `previous` starts with the original URL: it holds one entry per request made so far.
        if attempt.previous().len() > max {
            return attempt.error(TooManyRedirects);
        }
        match guard.check_redirect(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(refused) => attempt.error(refused),
        }
    })
}

/// Never fails: every outcome is a status. Also says what the probe learnt of the host, for
/// its circuit breaker.
pub(super) async fn run(client: &Client, url: &Url, deadline: Instant) -> (MediaCheck, Health) {
    let insecure = url.scheme() == "http";
    match fetch(client, url, deadline).await {
        Ok(found) => {
            let code = found.status.as_u16();
            let reachable = found.status.is_success();
            let status = MediaCheck {
                state: if reachable {
                    MediaStatus::Reachable
                } else {
                    MediaStatus::Unreachable
                },
                http_status: Some(code),
                // For an error status these would describe the error page, not the media.
                content_type: found.content_type.filter(|_| reachable),
                content_length: found.content_length.filter(|_| reachable),
                checked_at: chrono::Utc::now(),
                insecure: insecure || found.redirected_to_http,
                error: (!reachable).then(|| format!("http status {code}")),
                // Not there yet, or the server is struggling: a later probe may find it.
                retriable: matches!(code, 404 | 408 | 410 | 425 | 429 | 500..=599),
            };
            (status, Health::Answered)
        }
        Err(err) => {
            let (reason, retriable, health) = describe(&err);
            let mut status = MediaCheck::unreachable(url.as_str(), reason, retriable);
            if find_source::<Blocked>(&err).is_some() {
                status.state = MediaStatus::Refused;
            }
            (status, health)
        }
    }
}

struct Found {
    status: StatusCode,
    content_type: Option<String>,
    content_length: Option<i64>,
    redirected_to_http: bool,
}

/// The deadline spans both requests so a probe never takes longer than the configured timeout.
async fn fetch(client: &Client, url: &Url, deadline: Instant) -> Result<Found, reqwest::Error> {
    let head = client
        .head(url.clone())
        .timeout(deadline.saturating_duration_since(Instant::now()))
        .send()
        .await?;
    // S3 presigned URLs sign the method and answer HEAD with 403; other servers refuse HEAD
    // with 405 or 501.
    if !matches!(
        head.status(),
        StatusCode::FORBIDDEN | StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED
    ) {
        // reqwest's `content_length()` is the (empty) body's length for HEAD: read the header.
        let content_length = header_length(head.headers());
        return Ok(Found::new(&head, content_length));
    }

    let get = client
        .get(url.clone())
        .header(RANGE, "bytes=0-0")
        .timeout(deadline.saturating_duration_since(Instant::now()))
        .send()
        .await?;
    let content_length = if get.status() == StatusCode::PARTIAL_CONTENT {
        range_total(get.headers())
    } else {
        // The range was ignored: the whole file would follow, and `get` is dropped unread.
        header_length(get.headers())
    };
    Ok(Found::new(&get, content_length))
}

impl Found {
    fn new(response: &Response, content_length: Option<i64>) -> Self {
        Self {
            status: response.status(),
            content_type: response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
            content_length,
            redirected_to_http: response.url().scheme() == "http",
        }
    }
}

fn header_length(headers: &HeaderMap) -> Option<i64> {
    parse_length(headers.get(CONTENT_LENGTH)?.to_str().ok()?)
}

/// The complete length from `Content-Range: bytes 0-0/12345`; `*` (unknown) gives `None`.
fn range_total(headers: &HeaderMap) -> Option<i64> {
    let value = headers.get(CONTENT_RANGE)?.to_str().ok()?;
    let (_, total) = value.trim().strip_prefix("bytes")?.rsplit_once('/')?;
    parse_length(total)
}

/// Through `u64` so a negative value is rejected rather than stored.
fn parse_length(value: &str) -> Option<i64> {
    value.trim().parse::<u64>().ok()?.try_into().ok()
}

/// A short reason for the stored status, whether a later probe may do better, and what it
/// says of the host. Never the error's `Display`: it carries the URL, and presigned URLs carry
/// credentials in their query.
fn describe(err: &reqwest::Error) -> (String, bool, Health) {
    if let Some(refused) = find_source::<Blocked>(err) {
        return (refused.to_string(), false, Health::Unknown);
    }
    let (reason, retriable, health) = if find_source::<TooManyRedirects>(err).is_some() {
        ("too many redirects", false, Health::Answered)
    } else if err.is_timeout() {
        ("timeout", true, Health::Failed)
    } else if err.is_dns() {
        ("dns lookup failed", true, Health::Failed)
    } else if err.is_connect() {
        match find_source::<io::Error>(err).map(io::Error::kind) {
            Some(io::ErrorKind::ConnectionRefused) => ("connection refused", true, Health::Failed),
            _ => ("connection failed", true, Health::Failed),
        }
    } else if err.is_builder() {
        ("unsupported url", false, Health::Unknown)
    } else {
        ("request failed", true, Health::Failed)
    };
    (reason.to_owned(), retriable, health)
}

fn find_source<'a, E: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut current = err.source();
    while let Some(source) = current {
        if let Some(found) = source.downcast_ref::<E>() {
            return Some(found);
        }
        current = source.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(name: reqwest::header::HeaderName, value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn range_total_reads_the_complete_length() {
        assert_eq!(
            range_total(&headers(CONTENT_RANGE, "bytes 0-0/12345")),
            Some(12345)
        );
        assert_eq!(range_total(&headers(CONTENT_RANGE, "bytes 0-0/*")), None);
        assert_eq!(range_total(&headers(CONTENT_RANGE, "garbage")), None);
        assert_eq!(range_total(&HeaderMap::new()), None);
    }

    #[test]
    fn header_length_ignores_malformed_values() {
        assert_eq!(header_length(&headers(CONTENT_LENGTH, "1234")), Some(1234));
        assert_eq!(header_length(&headers(CONTENT_LENGTH, "-1")), None);
        assert_eq!(header_length(&headers(CONTENT_LENGTH, "x")), None);
    }
}
