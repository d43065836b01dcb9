//! Media URLs that try to reach our own network: however the address is spelt or reached, the
//! call is stored, its media is refused with the rule that refused it (never an address), and
//! nothing connects where it may not.

use std::net::IpAddr;
use std::time::Duration;

use pipeline_tests::media_server::MediaServer;
use pipeline_tests::{call, eventually, Integration, Options, TestEnv};
use serde_json::{json, Value};
use shared::config::Settings;
use shared::port_ranges::PortRanges;

const WAIT: Duration = Duration::from_secs(20);

const LOOPBACK: &str = "the recording URL's host is a loopback address, which is probed only \
    if media.allow_loopback is on: serve the recording from a public address";

fn never(lead: &str, kind: &str) -> String {
    format!("{lead} {kind}, which is never probed: serve the recording from a public address")
}

async fn env_with(customize: impl FnOnce(&mut Settings) + Send + 'static) -> TestEnv {
    TestEnv::start_with(Options {
        customize: Box::new(customize),
        ..Default::default()
    })
    .await
}

/// Posts one call per URL (uids `<prefix>-0`, ...) and returns each call's media as its sender
/// reads it through GET once probed: the call is stored whatever its URL.
async fn probed(env: &TestEnv, prefix: &str, urls: &[String]) -> Vec<Value> {
    let integration = env.integration().await;
    for (i, url) in urls.iter().enumerate() {
        let mut body = call(&format!("{prefix}-{i}"));
        body["media_url"] = json!(url);
        assert_eq!(env.post(&integration, &body).await.status(), 202, "{url}");
    }
    let mut media = Vec::new();
    for i in 0..urls.len() {
        media.push(probed_media(env, &integration, &format!("{prefix}-{i}")).await);
    }
    media
}

async fn probed_media(env: &TestEnv, integration: &Integration, uid: &str) -> Value {
    eventually(WAIT, || async {
        let (status, body) = env.get_call(integration, uid).await;
        let media = &body["data"]["attributes"]["media"];
        match media["status"].as_str() {
            Some(state) if status == 200 && state != "pending" => Ok(media.clone()),
            _ => Err((status, body)),
        }
    })
    .await
    .unwrap_or_else(|last| panic!("{uid} was not probed: {last:?}"))
}

/// Refused before any answer, finally, for `reason`, which holds no address of any spelling.
fn assert_refused(media: &Value, url: &str, reason: &str) {
    assert_eq!(media["status"], "refused", "{url}: {media}");
    assert_eq!(media["reachable"], false, "{url}: {media}");
    assert_eq!(
        media["http_status"],
        Value::Null,
        "{url}: no answer was had"
    );
    assert_eq!(
        media["next_probe_at"],
        Value::Null,
        "{url}: a refusal is final"
    );
    let error = media["error"].as_str().expect("a reason");
    assert_eq!(error, reason, "{url}");
    for word in error.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == ':')) {
        let word = word.trim_end_matches(['.', ':']);
        assert!(
            word.parse::<IpAddr>().is_err(),
            "{url}: {error} shows {word}"
        );
    }
}

#[tokio::test]
async fn loopback_spelt_as_decimal_octal_hex_behind_userinfo_or_as_localhost_is_refused() {
    let server = MediaServer::start(Duration::ZERO).await;
    let port = server.base.rsplit(':').next().unwrap().to_owned();
    let env = env_with(|s| s.media.allow_loopback = false).await;
    let urls = [
        format!("http://2130706433:{port}/ok.wav"),
        format!("http://0177.0.0.1:{port}/ok.wav"),
        format!("http://0x7f.1:{port}/ok.wav"),
        format!("http://example.com@127.0.0.1:{port}/ok.wav"),
        format!("http://127.0.0.1:{port}#@example.com/ok.wav"),
        format!("http://[::ffff:127.0.0.1]:{port}/ok.wav"),
        format!("http://localhost.:{port}/ok.wav"),
        format!("http://media.localhost:{port}/ok.wav"),
    ];

    let media = probed(&env, "loopback", &urls).await;

    for (media, url) in media.iter().zip(&urls) {
        assert_refused(media, url, LOOPBACK);
    }
    assert_eq!(server.hits(), 0, "nothing reached the loopback host");
}

#[tokio::test]
async fn metadata_unspecified_and_documentation_addresses_are_refused_with_every_switch_on() {
    let server = MediaServer::start(Duration::ZERO).await;
    let port = server.base.rsplit(':').next().unwrap().to_owned();
    let env = env_with(|s| {
        s.media.allow_loopback = true;
        s.media.allow_private = true;
    })
    .await;
    let host_is = "the recording URL's host is";
    let metadata = never(host_is, "a cloud metadata address");
    let cases = [
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            &metadata,
        ),
        (
            "http://[::ffff:169.254.169.254]/latest/meta-data/".to_owned(),
            &metadata,
        ),
        (
            "http://[fd00:ec2::254]/latest/meta-data/".to_owned(),
            &metadata,
        ),
        (
            "http://100.100.100.200/latest/meta-data/".to_owned(),
            &metadata,
        ),
        // 6to4 of the metadata address.
        ("http://[2002:a9fe:a9fe::1]/".to_owned(), &metadata),
        // On Linux 0.0.0.0 reaches the machine itself: here, the media server.
        (
            format!("http://0.0.0.0:{port}/ok.wav"),
            &never(host_is, "an unspecified address"),
        ),
        (
            "http://192.0.2.1/x.wav".to_owned(),
            &never(host_is, "a documentation address"),
        ),
    ];
    let urls: Vec<String> = cases.iter().map(|(url, _)| url.clone()).collect();

    let media = probed(&env, "never", &urls).await;

    for (media, (url, reason)) in media.iter().zip(&cases) {
        assert_refused(media, url, reason);
    }
    assert_eq!(server.hits(), 0, "nothing reached the machine itself");
}

#[tokio::test]
async fn a_redirect_from_an_allowed_host_to_a_metadata_address_is_not_followed() {
    let server = MediaServer::start(Duration::ZERO).await;
    let env = TestEnv::start().await;
    let port = server.base.rsplit(':').next().unwrap();
    let redirects_to = "the recording URL redirects to";
    let cases = [
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            never(redirects_to, "a cloud metadata address"),
        ),
        (
            "http://[::ffff:a9fe:a9fe]/latest/meta-data/".to_owned(),
            never(redirects_to, "a cloud metadata address"),
        ),
        (
            format!("http://0.0.0.0:{port}/ok.wav"),
            never(redirects_to, "an unspecified address"),
        ),
    ];
    let urls: Vec<String> = cases
        .iter()
        .map(|(to, _)| format!("{}/redirect?to={to}", server.base))
        .collect();

    let media = probed(&env, "redirected", &urls).await;

    for (media, (url, (_, reason))) in media.iter().zip(urls.iter().zip(&cases)) {
        assert_refused(media, url, reason);
    }
    assert_eq!(
        server.hits(),
        cases.len(),
        "one request each for the redirect, none where it led"
    );
}

#[tokio::test]
async fn a_port_outside_the_allowed_list_is_refused_without_a_connection() {
    let allowed = MediaServer::start(Duration::ZERO).await;
    let elsewhere = MediaServer::start(Duration::ZERO).await;
    let allowed_port = allowed.base.rsplit(':').next().unwrap().to_owned();
    let elsewhere_port = elsewhere.base.rsplit(':').next().unwrap().to_owned();
    let env = env_with({
        let allowed_port = allowed_port.clone();
        move |s| s.media.allowed_ports = PortRanges::parse(&[allowed_port]).unwrap()
    })
    .await;
    let urls = [
        format!("{}/ok.wav", elsewhere.base),
        format!("{}/redirect?to={}/ok.wav", allowed.base, elsewhere.base),
        format!("{}/ok.wav", allowed.base),
    ];

    let media = probed(&env, "ports", &urls).await;

    assert_refused(
        &media[0],
        &urls[0],
        &format!(
            "the recording URL's port is {elsewhere_port}, not in media.allowed_ports \
             ({allowed_port}): serve the recording on one of those"
        ),
    );
    assert_refused(
        &media[1],
        &urls[1],
        &format!(
            "the recording URL redirects to port {elsewhere_port}, not in \
             media.allowed_ports ({allowed_port}): serve the recording on one of those"
        ),
    );
    assert_eq!(media[2]["status"], "reachable", "an allowed port is probed");
    assert_eq!(elsewhere.hits(), 0, "nothing reached the other port");
    assert_eq!(allowed.hits(), 2, "the redirect, and the allowed recording");
}
