//! A bound on the requests a gateway serves at once (`http.max_concurrent_requests`). Past
//! it a request is answered 503 with `Retry-After` at once: queueing it would only add its
//! wait to everyone's latency while whatever holds the others (a slow broker or database)
//! lasts, and a client told to come back can go to another gateway. Health and metrics are
//! not behind it, so that an overloaded gateway still says how it is.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use shared::config::HttpSettings;
use tokio::sync::Semaphore;

use super::error::ApiError;

#[derive(Clone)]
pub struct LoadShed {
    permits: Arc<Semaphore>,
    retry_after_secs: u64,
}

impl LoadShed {
    pub fn new(settings: &HttpSettings) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(
                settings.max_concurrent_requests.min(Semaphore::MAX_PERMITS),
            )),
            retry_after_secs: settings.retry_after_secs,
        }
    }

    /// Middleware: serves the request while holding a permit, or sheds it.
    pub async fn limit(State(shed): State<Self>, request: Request, next: Next) -> Response {
        match shed.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let response = next.run(request).await;
                drop(permit);
                response
            }
            Err(_) => ApiError::Overloaded {
                retry_after_secs: shed.retry_after_secs,
            }
            .into_response(),
        }
    }
}
