//! Bounds on probing: slots per host and in all, a host's line, its circuit breaker.

use super::*;

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
