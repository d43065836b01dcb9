//! The address and port guard, through real probes: every refusal is recorded as `refused`
//! with the rule that refused it, and the forbidden server counts no request.

use super::*;

const LOOPBACK_REFUSED: &str = "the recording URL's host is a loopback address, which is \
    probed only if media.allow_loopback is on: serve the recording from a public address";

fn strict() -> MediaSettings {
    MediaSettings {
        allow_loopback: false,
        ..settings()
    }
}

fn assert_refused(status: &MediaCheck, reason: &str) {
    assert_eq!(status.state, MediaStatus::Refused, "{status:?}");
    assert_eq!(status.http_status, None, "no answer was had: {status:?}");
    assert!(!status.retriable, "a refusal is final: {status:?}");
    assert_eq!(status.error.as_deref(), Some(reason));
}

#[tokio::test]
async fn loopback_literals_are_refused_unless_allowed_however_spelt() {
    let (addr, hits) = counting_server().await;
    let port = addr.port();

    for target in [
        format!("http://{addr}/a.wav"),
        format!("http://2130706433:{port}/a.wav"),
        format!("http://0177.0.0.1:{port}/a.wav"),
        format!("http://0x7f.1:{port}/a.wav"),
        format!("http://example.com@127.0.0.1:{port}/a.wav"),
        format!("http://[::ffff:127.0.0.1]:{port}/a.wav"),
    ] {
        let status = probe_with(&strict(), &url(&target)).await;

        assert_refused(&status, LOOPBACK_REFUSED);
        assert!(status.insecure);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn localhost_is_refused_by_name_unless_loopback_is_allowed() {
    let (addr, hits) = counting_server().await;

    for name in ["localhost", "localhost.", "media.localhost"] {
        let target = url(&format!("http://{name}:{}/a.wav", addr.port()));
        assert_refused(&probe_with(&strict(), &target).await, LOOPBACK_REFUSED);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    let target = url(&format!("http://localhost:{}/a.wav", addr.port()));
    let allowed = probe_with(&settings(), &target).await;
    assert!(reachable(&allowed), "{allowed:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_redirect_to_a_forbidden_literal_is_refused_before_connecting() {
    const NEVER: &str = "which is never probed: serve the recording from a public address";
    for (target, kind) in [
        ("http://0.0.0.0:9/x.wav", "an unspecified address"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "a cloud metadata address",
        ),
        (
            "http://[::ffff:169.254.169.254]/latest",
            "a cloud metadata address",
        ),
        ("http://[fd00:ec2::254]/latest", "a cloud metadata address"),
        ("http://192.0.2.10/x.wav", "a documentation address"),
    ] {
        let addr = serve(Router::new().route(
            "/moved.wav",
            any(move || async move { Redirect::temporary(target) }),
        ))
        .await;
        let lenient = MediaSettings {
            allow_private: true,
            ..settings()
        };

        let status = probe_with(&lenient, &url(&format!("http://{addr}/moved.wav"))).await;

        assert_refused(
            &status,
            &format!("the recording URL redirects to {kind}, {NEVER}"),
        );
    }

    let addr = serve(Router::new().route(
        "/moved.wav",
        any(|| async { Redirect::temporary("http://10.0.0.1/x.wav") }),
    ))
    .await;
    let status = probe_with(&settings(), &url(&format!("http://{addr}/moved.wav"))).await;
    assert_refused(
        &status,
        "the recording URL redirects to a private address, which is probed only if \
         media.allow_private is on: serve the recording from a public address",
    );
}

#[tokio::test]
async fn a_port_outside_the_allowed_list_is_refused_without_a_connection() {
    let (addr, hits) = counting_server().await;
    let only_https = MediaSettings {
        allowed_ports: PortRanges::parse(&["443"]).unwrap(),
        ..settings()
    };

    let status = probe_with(&only_https, &url(&format!("http://{addr}/a.wav"))).await;

    assert_refused(
        &status,
        &format!(
            "the recording URL's port is {}, not in media.allowed_ports (443): serve the \
             recording on one of those",
            addr.port()
        ),
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_redirect_to_a_port_outside_the_allowed_list_is_not_followed() {
    let (elsewhere, hits) = counting_server().await;
    let target = format!("http://{elsewhere}/a.wav");
    let addr = serve(Router::new().route(
        "/moved.wav",
        any(move || async move { Redirect::temporary(&target) }),
    ))
    .await;
    let only_the_first = MediaSettings {
        allowed_ports: PortRanges::parse(&[addr.port().to_string()]).unwrap(),
        ..settings()
    };

    let status = probe_with(&only_the_first, &url(&format!("http://{addr}/moved.wav"))).await;

    assert_refused(
        &status,
        &format!(
            "the recording URL redirects to port {}, not in media.allowed_ports ({}): serve \
             the recording on one of those",
            elsewhere.port(),
            addr.port()
        ),
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}
