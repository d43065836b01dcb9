//! A recording host on loopback whose behaviour each test chooses.

use std::time::Duration;

use axum::http::{header, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::any;
use axum::Router;

pub struct MediaServer {
    pub base: String,
}

impl MediaServer {
    /// Paths: `/ok.wav` (HEAD 200, audio/wav, 1234 bytes), `/s3.wav` (HEAD 403, ranged GET 206
    /// of 5000 bytes), `/missing.wav` (404), `/slow.wav` (answers after `slow`).
    pub async fn start(slow: Duration) -> Self {
        let app = Router::new()
            .route(
                "/ok.wav",
                any(|| async {
                    (
                        [
                            (header::CONTENT_TYPE, "audio/wav"),
                            (header::CONTENT_LENGTH, "1234"),
                        ],
                        "",
                    )
                }),
            )
            .route(
                "/s3.wav",
                any(
                    |method: Method, headers: axum::http::HeaderMap| async move {
                        if method == Method::HEAD {
                            return StatusCode::FORBIDDEN.into_response();
                        }
                        match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
                            Some("bytes=0-0") => (
                                StatusCode::PARTIAL_CONTENT,
                                [
                                    (header::CONTENT_TYPE, "audio/mpeg"),
                                    (header::CONTENT_RANGE, "bytes 0-0/5000"),
                                ],
                                "x",
                            )
                                .into_response(),
                            _ => StatusCode::BAD_REQUEST.into_response(),
                        }
                    },
                ),
            )
            .route("/missing.wav", any(|| async { StatusCode::NOT_FOUND }))
            .route(
                "/slow.wav",
                any(move || async move {
                    tokio::time::sleep(slow).await;
                    ([(header::CONTENT_TYPE, "audio/wav")], "")
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind media server");
        let base = format!(
            "http://127.0.0.1:{}",
            listener.local_addr().expect("addr").port()
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base }
    }
}
