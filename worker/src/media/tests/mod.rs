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
use shared::port_ranges::PortRanges;

mod guarded;
mod load;
mod outcomes;
mod redirects;

fn settings() -> MediaSettings {
    MediaSettings {
        connect_timeout_ms: 1_000,
        timeout_ms: 3_000,
        max_redirects: 3,
        per_host_concurrency: 4,
        allow_loopback: true,
        allow_private: false,
        allowed_ports: PortRanges::any(),
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
