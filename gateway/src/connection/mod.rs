//! Serving the gateway's connections over HTTP/1.1, in place of `axum::serve`, which gives a
//! connection neither a header-read nor an idle timeout: a client trickling its headers, or
//! keeping connections open and silent, would hold them (and their memory) for ever.
//! Shutting down stops accepting, lets in-flight requests finish and closes idle connections.

mod deadlines;

use std::future::Future;
use std::io;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use shared::config::HttpSettings;
use tokio::net::TcpListener;

pub use self::deadlines::Timeouts;

impl Timeouts {
    pub fn new(settings: &HttpSettings) -> Self {
        Self {
            header_read: settings.header_read_timeout(),
            keep_alive_idle: settings.keep_alive_idle(),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then waits for the connections
/// to finish what they are serving.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let connections = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    pause_after(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (stream, service) = deadlines::watch(stream, timeouts, router.clone());
        let connection = http1::Builder::new()
            // The deadlines above do this job; hyper's own timer would also cut idle
            // connections at the header timeout.
            .header_read_timeout(None)
            .serve_connection(TokioIo::new(stream), service);
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
    Ok(())
}

/// An accept that failed for the listener rather than for one client (no file descriptors
/// left, say) would fail again at once: wait a moment for connections to close.
async fn pause_after(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
