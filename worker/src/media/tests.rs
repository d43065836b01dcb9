//! Probes against real HTTP servers on 127.0.0.1. Nothing here may send traffic anywhere
//! else: refusals of other addresses must happen before connecting, which is what is tested.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{any, get, head};
use axum::Router;
use futures_util::stream::{self, StreamExt};

use super::*;

fn settings() -> MediaSettings {
    MediaSettings {
        connect_timeout_ms: 1_000,
        timeout_ms: 3_000,
        max_redirects: 3,
        per_host_concurrency: 4,
        allow_loopback: true,
        allow_private: false,
        ..shared::config::Settings::defaults().media
    }
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a test port");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move { axum::serve(listener, router).await.expect("test server") });
    addr
}

fn url(text: &str) -> Url {
    Url::parse(text).expect("test url parses")
}

async fn probe_with(settings: &MediaSettings, target: &Url) -> MediaCheck {
    MediaProber::new(settings)
        .expect("prober builds")
        .probe(target.as_str(), false)
        .await
        .status()
}

impl Probed {
    fn status(self) -> MediaCheck {
        match self {
            Probed::Found { status, .. } => status,
            Probed::Deferred => panic!("deferred, though not allowed to be"),
        }
    }
}

fn reachable(status: &MediaCheck) -> bool {
    status.state == MediaStatus::Reachable
}

/// A port nothing listens on: bound, then released.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a test port");
    listener.local_addr().expect("local addr").port()
}

/// A server counting every request it receives, whatever the path or method.
async fn counting_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let router = Router::new().fallback({
        let hits = Arc::clone(&hits);
        move || async move {
            hits.fetch_add(1, Ordering::SeqCst);
            StatusCode::OK
        }
    });
    (serve(router).await, hits)
}

#[tokio::test]
async fn head_200_reports_type_and_length() {
    let addr = serve(Router::new().route(
        "/call.wav",
        head(|| async { [(CONTENT_TYPE, "audio/wav"), (CONTENT_LENGTH, "1234")] }),
    ))
    .await;

    let status = probe_with(&settings(), &url(&format!("http://{addr}/call.wav"))).await;

    assert!(reachable(&status), "{status:?}");
    assert_eq!(status.http_status, Some(200));
    assert_eq!(status.content_type.as_deref(), Some("audio/wav"));
    assert_eq!(status.content_length, Some(1234));
    assert!(status.insecure);
    assert_eq!(status.error, None);
}

#[tokio::test]
async fn refused_head_falls_back_to_a_ranged_get() {
    for head_status in [
        StatusCode::METHOD_NOT_ALLOWED,
        StatusCode::FORBIDDEN,
        StatusCode::NOT_IMPLEMENTED,
    ] {
        let seen_range = Arc::new(Mutex::new(None::<String>));
        let ranged_get = {
            let seen_range = Arc::clone(&seen_range);
            move |headers: HeaderMap| async move {
                *seen_range.lock().unwrap() = headers
                    .get(RANGE)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned);
                (
                    StatusCode::PARTIAL_CONTENT,
                    [
                        (CONTENT_TYPE, "audio/mpeg"),
                        (CONTENT_RANGE, "bytes 0-0/5000"),
                    ],
                    "x",
                )
            }
        };
        let addr = serve(Router::new().route(
            "/call.mp3",
            get(ranged_get).head(move || async move { head_status }),
        ))
        .await;

        let status = probe_with(&settings(), &url(&format!("http://{addr}/call.mp3"))).await;

        assert!(reachable(&status), "{head_status}: {status:?}");
        assert_eq!(status.http_status, Some(206));
        assert_eq!(status.content_type.as_deref(), Some("audio/mpeg"));
        assert_eq!(status.content_length, Some(5000), "{head_status}");
        assert_eq!(
            seen_range.lock().unwrap().as_deref(),
            Some("bytes=0-0"),
            "{head_status}"
        );
    }
}

#[tokio::test]
async fn ranged_get_answered_200_takes_content_length_without_reading_the_body() {
    // The body never ends: reading it would run into the timeout.
    let endless = || async {
        let body = stream::once(async { Ok::<_, Infallible>(Bytes::from_static(b"RIFF")) })
            .chain(stream::pending());
        ([(CONTENT_LENGTH, "10000000")], Body::from_stream(body))
    };
    let addr = serve(Router::new().route(
        "/call.wav",
        get(endless).head(|| async { StatusCode::METHOD_NOT_ALLOWED }),
    ))
    .await;

    let status = probe_with(
        &MediaSettings {
            timeout_ms: 1_000,
            ..settings()
        },
        &url(&format!("http://{addr}/call.wav")),
    )
    .await;

    assert!(reachable(&status), "{status:?}");
    assert_eq!(status.http_status, Some(200));
    assert_eq!(status.content_length, Some(10_000_000));
}

#[tokio::test]
async fn missing_file_is_not_reachable() {
    let addr = serve(Router::new()).await;

    let status = probe_with(&settings(), &url(&format!("http://{addr}/gone.wav"))).await;

    assert!(!reachable(&status));
    assert_eq!(status.http_status, Some(404));
    assert_eq!(status.error.as_deref(), Some("http status 404"));
    assert_eq!(status.content_length, None);
}

#[tokio::test]
async fn slow_server_times_out() {
    let addr = serve(Router::new().route(
        "/slow.wav",
        head(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            StatusCode::OK
        }),
    ))
    .await;
    let started = std::time::Instant::now();

    let status = probe_with(
        &MediaSettings {
            timeout_ms: 300,
            ..settings()
        },
        &url(&format!("http://{addr}/slow.wav")),
    )
    .await;

    assert!(!reachable(&status));
    assert_eq!(status.http_status, None);
    assert_eq!(status.error.as_deref(), Some("timeout"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn closed_port_is_connection_refused() {
    let port = closed_port();

    let status = probe_with(&settings(), &url(&format!("http://127.0.0.1:{port}/a.wav"))).await;

    assert!(!reachable(&status));
    assert_eq!(status.error.as_deref(), Some("connection refused"));
    assert!(status.insecure);
}

#[tokio::test]
async fn https_url_is_not_flagged_insecure() {
    let port = closed_port();

    let status = probe_with(
        &settings(),
        &url(&format!("https://127.0.0.1:{port}/a.wav")),
    )
    .await;

    assert!(!status.insecure);
    assert!(!reachable(&status));
    assert_eq!(status.error.as_deref(), Some("connection refused"));
}

#[tokio::test]
async fn loopback_literal_is_refused_unless_allowed() {
    let (addr, hits) = counting_server().await;
    let strict = MediaSettings {
        allow_loopback: false,
        ..settings()
    };

    let status = probe_with(&strict, &url(&format!("http://{addr}/a.wav"))).await;

    assert!(!reachable(&status));
    assert_eq!(
        status.error.as_deref(),
        Some("blocked: loopback address 127.0.0.1 not allowed")
    );
    assert!(status.insecure);
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn localhost_is_refused_by_the_resolver_unless_loopback_is_allowed() {
    let (addr, hits) = counting_server().await;
    let target = url(&format!("http://localhost:{}/a.wav", addr.port()));

    let refused = probe_with(
        &MediaSettings {
            allow_loopback: false,
            ..settings()
        },
        &target,
    )
    .await;
    assert!(!reachable(&refused));
    let reason = refused.error.unwrap_or_default();
    assert!(reason.starts_with("blocked: loopback address"), "{reason}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    let allowed = probe_with(&settings(), &target).await;
    assert!(reachable(&allowed), "{allowed:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn redirect_to_a_private_literal_is_refused_before_connecting() {
    for (target, reason) in [
        (
            "http://0.0.0.0:9/x.wav",
            "blocked: unspecified address 0.0.0.0 not allowed",
        ),
        (
            "http://10.0.0.1/x.wav",
            "blocked: private address 10.0.0.1 not allowed",
        ),
        (
            "http://[::ffff:169.254.169.254]/latest",
            "blocked: link-local address ::ffff:169.254.169.254 not allowed",
        ),
    ] {
        let addr = serve(Router::new().route(
            "/moved.wav",
            any(move || async move { Redirect::temporary(target) }),
        ))
        .await;

        let status = probe_with(&settings(), &url(&format!("http://{addr}/moved.wav"))).await;

        assert!(!reachable(&status), "{target}");
        assert_eq!(status.http_status, None, "{target}");
        assert_eq!(status.error.as_deref(), Some(reason));
    }
}

#[tokio::test]
async fn redirects_are_followed_to_the_final_answer() {
    let addr = serve(
        Router::new()
            .route(
                "/old.wav",
                any(|| async { Redirect::permanent("/new.wav") }),
            )
            .route(
                "/new.wav",
                head(|| async { [(CONTENT_TYPE, "audio/wav"), (CONTENT_LENGTH, "42")] }),
            ),
    )
    .await;

    let status = probe_with(&settings(), &url(&format!("http://{addr}/old.wav"))).await;

    assert!(reachable(&status), "{status:?}");
    assert_eq!(status.http_status, Some(200));
    assert_eq!(status.content_length, Some(42));
}

#[tokio::test]
async fn redirect_loop_stops_after_max_redirects() {
    let hits = Arc::new(AtomicUsize::new(0));
    let addr = serve(Router::new().route(
        "/loop.wav",
        any({
            let hits = Arc::clone(&hits);
            move || async move {
                hits.fetch_add(1, Ordering::SeqCst);
                Redirect::temporary("/loop.wav")
            }
        }),
    ))
    .await;

    let status = probe_with(
        &MediaSettings {
            max_redirects: 2,
            ..settings()
        },
        &url(&format!("http://{addr}/loop.wav")),
    )
    .await;

    assert!(!reachable(&status));
    assert_eq!(status.error.as_deref(), Some("too many redirects"));
    // The original request and the two redirects followed.
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn non_http_scheme_is_not_fetched() {
    let status = probe_with(&settings(), &url("ftp://127.0.0.1/a.wav")).await;

    assert!(!reachable(&status));
    assert_eq!(status.error.as_deref(), Some("unsupported url"));
}

#[tokio::test]
async fn probes_to_one_host_are_limited() {
    #[derive(Default)]
    struct Load {
        in_flight: AtomicUsize,
        max_seen: AtomicUsize,
    }
    let load = Arc::new(Load::default());
    let addr = serve(Router::new().route(
        "/a.wav",
        head({
            let load = Arc::clone(&load);
            move || async move {
                let now = load.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                load.max_seen.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
                load.in_flight.fetch_sub(1, Ordering::SeqCst);
                StatusCode::OK.into_response()
            }
        }),
    ))
    .await;
    let prober = MediaProber::new(&MediaSettings {
        per_host_concurrency: 2,
        ..settings()
    })
    .expect("prober builds");
    let target = url(&format!("http://{addr}/a.wav"));

    let statuses =
        futures_util::future::join_all((0..6).map(|_| prober.probe(target.as_str(), false))).await;

    assert!(statuses
        .into_iter()
        .all(|probed| reachable(&probed.status())));
    let max_seen = load.max_seen.load(Ordering::SeqCst);
    assert!(max_seen <= 2, "{max_seen} probes in flight");
    assert_eq!(max_seen, 2, "the limit should still allow two at once");
}

#[test]
fn zero_per_host_concurrency_is_rejected() {
    let err = MediaProber::new(&MediaSettings {
        per_host_concurrency: 0,
        ..settings()
    })
    .unwrap_err();

    assert!(matches!(err, MediaError::PerHostConcurrency { got: 0, .. }));
}

/// A server whose HEAD answers after `delay`.
async fn slow_server(delay: Duration) -> SocketAddr {
    serve(Router::new().route(
        "/a.wav",
        head(move || async move {
            tokio::time::sleep(delay).await;
            StatusCode::OK
        }),
    ))
    .await
}

#[tokio::test]
async fn a_full_line_puts_off_the_probes_that_may_be_put_off() {
    // The host's first answer comes after the 125 ms a new host is given (a fortieth of the
    // deadline): the second probe cannot know the line is worth waiting in.
    let addr = slow_server(Duration::from_millis(1500)).await;
    let prober = MediaProber::new(&MediaSettings {
        per_host_concurrency: 1,
        host_backlog: 0,
        timeout_ms: 5_000,
        ..settings()
    })
    .expect("prober builds");
    let target = format!("http://{addr}/a.wav");

    let (first, second, patient) = tokio::join!(
        prober.probe(&target, true),
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            prober.probe(&target, true).await
        },
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            prober.probe(&target, false).await
        }
    );

    assert!(reachable(&first.status()));
    assert_eq!(second, Probed::Deferred);
    assert!(reachable(&patient.status()), "put off too often: it waits");
}

#[tokio::test]
async fn after_consecutive_timeouts_a_hosts_probes_are_answered_at_once() {
    let addr = slow_server(Duration::from_secs(30)).await;
    let prober = MediaProber::new(&MediaSettings {
        timeout_ms: 200,
        circuit_failures: 2,
        ..settings()
    })
    .expect("prober builds");
    let target = format!("http://{addr}/a.wav");
    for _ in 0..2 {
        assert_eq!(
            prober.probe(&target, false).await.status().error.as_deref(),
            Some("timeout")
        );
    }

    let Probed::Found { status, network } = prober.probe(&target, false).await else {
        panic!("deferred");
    };
    assert_eq!(status.error.as_deref(), Some(CIRCUIT_OPEN));
    assert_eq!(network, None, "no request was made");
    assert!(status.retriable);
    assert_eq!(prober.open_circuits(), 1);

    let other = slow_server(Duration::ZERO).await;
    let other = prober.probe(&format!("http://{other}/a.wav"), false).await;
    assert!(reachable(&other.status()), "another port is another host");
}
