//! Redirects the guard allows are followed, within `media.max_redirects`.

use super::*;

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
