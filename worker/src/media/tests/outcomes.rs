//! What a probe finds, from the answer it gets or the lack of one.

use super::*;

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
async fn non_http_scheme_is_not_fetched() {
    let status = probe_with(&settings(), &url("ftp://127.0.0.1/a.wav")).await;

    assert!(!reachable(&status));
    assert_eq!(status.error.as_deref(), Some("unsupported url"));
}
