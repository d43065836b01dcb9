//! When a connection is closed for want of anything to do: a request head must arrive within
//! `http.header_read_timeout_ms` of its first byte (or of the connection opening), and a kept-
//! alive connection may wait `http.keep_alive_idle_ms` for its next request. While a request
//! is being served neither runs (`http.request_timeout_ms` bounds it).
//!
//! Tracked here rather than by hyper: hyper's header-read timer also runs while a kept-alive
//! connection waits for its next request, so it would close idle connections after the
//! header timeout, and hyper has no idle timeout of its own.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use axum::Router;
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header_read: Duration,
    pub keep_alive_idle: Duration,
}

/// What one connection is doing, shared by its socket and its service.
struct Activity {
    timeouts: Timeouts,
    state: Mutex<State>,
}

struct State {
    /// Requests handed to the router and not yet answered.
    in_flight: usize,
    /// When the head being read began (its first byte, or the connection opening).
    head_since: Option<Instant>,
    /// The last byte read or written, or the last answer.
    last_activity: Instant,
    /// Whoever last waited to read. hyper polls the socket again after an answer only when
    /// woken: the read it left pending while serving was not given a deadline.
    reader: Option<Waker>,
}

impl Activity {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .expect("connection activity lock poisoned")
    }

    /// When the connection closes if nothing happens before; `None` while serving a request,
    /// in which case `reader` is woken once the answer is ready.
    fn deadline(&self, reader: &Waker) -> Option<Instant> {
        let mut state = self.lock();
        if !state.reader.as_ref().is_some_and(|w| w.will_wake(reader)) {
            state.reader = Some(reader.clone());
        }
        if state.in_flight > 0 {
            None
        } else if let Some(since) = state.head_since {
            Some(since + self.timeouts.header_read)
        } else {
            Some(state.last_activity + self.timeouts.keep_alive_idle)
        }
    }

    fn read(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let now = Instant::now();
        let mut state = self.lock();
        state.last_activity = now;
        if state.in_flight == 0 && state.head_since.is_none() {
            state.head_since = Some(now);
        }
    }

    fn wrote(&self, bytes: usize) {
        if bytes > 0 {
            self.lock().last_activity = Instant::now();
        }
    }

    fn begin(self: &Arc<Self>) -> Serving {
        let mut state = self.lock();
        state.in_flight += 1;
        state.head_since = None;
        Serving(self.clone())
    }
}

/// A request being served; dropped when its answer is ready (or the request is abandoned).
struct Serving(Arc<Activity>);

impl Drop for Serving {
    fn drop(&mut self) {
        let reader = {
            let mut state = self.0.lock();
            state.in_flight -= 1;
            state.last_activity = Instant::now();
            state.reader.take()
        };
        if let Some(reader) = reader {
            reader.wake();
        }
    }
}

/// An accepted connection: its socket, which fails its reads once the connection's deadline
/// passes (hyper then closes it), and the router serving it, which marks requests in flight.
pub fn watch(
    stream: TcpStream,
    timeouts: Timeouts,
    router: Router,
) -> (WatchedStream, TrackedRouter) {
    let now = Instant::now();
    let activity = Arc::new(Activity {
        timeouts,
        state: Mutex::new(State {
            in_flight: 0,
            head_since: Some(now),
            last_activity: now,
            reader: None,
        }),
    });
    let stream = WatchedStream {
        stream,
        activity: activity.clone(),
        timer: Box::pin(tokio::time::sleep_until(now)),
        armed: None,
    };
    (stream, TrackedRouter { activity, router })
}

pub struct WatchedStream {
    stream: TcpStream,
    activity: Arc<Activity>,
    timer: Pin<Box<Sleep>>,
    /// The deadline the timer is set to.
    armed: Option<Instant>,
}

impl WatchedStream {
    /// Whether the connection's deadline has passed; if not, the timer wakes the reader then.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = self.activity.deadline(cx.waker()) else {
            return false;
        };

        if self.armed != Some(deadline) {
            self.timer.as_mut().reset(deadline);
            self.armed = Some(deadline);
        }
        self.timer.as_mut().poll(cx).is_ready()
    }
}

impl AsyncRead for WatchedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.activity.read(buf.filled().len() - before);
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.poll_expired(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no request head in time, or idle too long",
            ))),
            other => other,
        }
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            this.activity.wrote(n);
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The router as hyper calls it, marking each request in flight until its answer is ready.
#[derive(Clone)]
pub struct TrackedRouter {
    activity: Arc<Activity>,
    router: Router,
}

impl hyper::service::Service<hyper::Request<Incoming>> for TrackedRouter {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let serving = self.activity.begin();
        let answer = self.router.clone().oneshot(request.map(Body::new));
        Box::pin(async move {
            let answer = answer.await;
            drop(serving);
            answer
        })
    }
}
