//! The recording's reachability is probed after the call is stored and written back to it,
//! whatever it is.

use std::time::Duration;

use pipeline_tests::media_server::MediaServer;
use pipeline_tests::{call, Options, TestEnv};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, sqlx::FromRow)]
struct Media {
    media_status: String,
    media_reachable: Option<bool>,
    media_http_status: Option<i32>,
    media_content_type: Option<String>,
    media_content_length: Option<i64>,
    media_insecure: bool,
    media_error: Option<String>,
    media_checked_at: Option<chrono::DateTime<chrono::Utc>>,
}

async fn probed(env: &TestEnv, urls: &[(&str, String)]) -> Vec<Media> {
    let integration = env.integration().await;
    for (uid, url) in urls {
        let mut body = call(uid);
        body["media_url"] = json!(url);
        assert_eq!(env.post(&integration, &body).await.status(), 202);
    }
    env.wait_for_count(
        "SELECT count(*) FROM calls WHERE media_status <> 'pending'",
        urls.len() as i64,
        WAIT,
    )
    .await;
    let mut out = Vec::new();
    for (uid, _) in urls {
        out.push(
            sqlx::query_as(
                "SELECT media_status, media_reachable, media_http_status, media_content_type, media_content_length,
                        media_insecure, media_error, media_checked_at FROM calls WHERE uid = $1",
            )
            .bind(uid)
            .fetch_one(&env.pool)
            .await
            .unwrap(),
        );
    }
    out
}

#[tokio::test]
async fn every_probe_outcome_is_stored_with_the_call() {
    let env = TestEnv::start_with(Options {
        customize: Box::new(|s| s.media.timeout_ms = 500),
        ..Default::default()
    })
    .await;
    let server = MediaServer::start(Duration::from_secs(3)).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let results = probed(
        &env,
        &[
            ("head", format!("{}/ok.wav", server.base)),
            ("ranged", format!("{}/s3.wav", server.base)),
            ("missing", format!("{}/missing.wav", server.base)),
            ("slow", format!("{}/slow.wav", server.base)),
            ("refused", format!("http://127.0.0.1:{closed}/x.wav")),
        ],
    )
    .await;
    let [head, ranged, missing, slow, refused] = results.try_into().unwrap();

    assert_eq!(head.media_status, "reachable");
    assert_eq!(head.media_reachable, Some(true));
    assert_eq!(head.media_http_status, Some(200));
    assert_eq!(head.media_content_type.as_deref(), Some("audio/wav"));
    assert_eq!(head.media_content_length, Some(1234));
    assert!(head.media_insecure, "a plain http:// link is flagged");
    assert!(head.media_checked_at.is_some());

    assert_eq!(
        ranged.media_reachable,
        Some(true),
        "HEAD refused with 403, ranged GET answered"
    );
    assert_eq!(ranged.media_http_status, Some(206));
    assert_eq!(ranged.media_content_length, Some(5000));

    assert_eq!(missing.media_reachable, Some(false));
    assert_eq!(missing.media_http_status, Some(404));

    assert_eq!(slow.media_reachable, Some(false));
    assert_eq!(slow.media_error.as_deref(), Some("timeout"));

    assert_eq!(refused.media_status, "unreachable");
    assert_eq!(refused.media_reachable, Some(false));
    assert_eq!(refused.media_error.as_deref(), Some("connection refused"));
}

#[tokio::test]
async fn private_and_loopback_addresses_are_not_probed_unless_allowed() {
    let env = TestEnv::start_with(Options {
        customize: Box::new(|s| s.media.allow_loopback = false),
        ..Default::default()
    })
    .await;
    let server = MediaServer::start(Duration::ZERO).await;
    let results = probed(
        &env,
        &[
            ("loopback", format!("{}/ok.wav", server.base)),
            ("private", "http://10.20.30.40/x.wav".to_owned()),
            (
                "link-local",
                "http://169.254.169.254/latest/meta-data".to_owned(),
            ),
        ],
    )
    .await;
    for media in &results {
        assert_eq!(media.media_status, "refused");
        assert_eq!(media.media_reachable, Some(false));
        assert!(
            media
                .media_error
                .as_deref()
                .unwrap()
                .starts_with("the recording URL's host is"),
            "{media:?}"
        );
        assert_eq!(media.media_http_status, None, "no request was made");
    }
}
