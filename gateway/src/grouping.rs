//! Publishing calls in groups: at most `broker.publish_in_flight` publishes await their
//! confirms at once, and the calls that arrive meanwhile leave together with the next one,
//! as one message (`shared::message::group`), or a few when large calls exceed a message's
//! budget. Under light load a call goes alone at once; under heavy load the broker stores,
//! confirms, delivers and acks one message for many calls. Every request still gets its
//! answer only from the confirm of the message holding its call.

use std::sync::Arc;

use futures_util::future::join_all;
use prometheus_client::metrics::counter::Counter;
use shared::broker::{PublishError, Publisher};
use shared::message;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// A group's body stays well under RabbitMQ's largest message (16 MiB by default on 4.x):
/// calls of up to `http.body_limit_bytes` each are split over several messages.
const GROUP_MAX_BYTES: usize = 1 << 20;

struct Pending {
    call: Vec<u8>,
    /// The trace context of the request that sent the call, when traces are exported.
    traceparent: Option<String>,
    confirmed: oneshot::Sender<Result<(), PublishError>>,
}

#[derive(Clone)]
pub struct GroupPublisher {
    tx: mpsc::Sender<Pending>,
}

impl GroupPublisher {
    /// Spawns the task that forms the groups; it ends when every handle is dropped.
    /// `messages` counts the confirmed messages.
    pub fn spawn(
        publisher: Publisher,
        in_flight: usize,
        max_calls: usize,
        messages: Counter,
    ) -> Self {
        let (in_flight, max_calls) = (in_flight.max(1), max_calls.max(1));
        let (tx, rx) = mpsc::channel(in_flight * max_calls);
        tokio::spawn(form_groups(publisher, rx, in_flight, max_calls, messages));
        Self { tx }
    }

    /// Resolves once the broker has confirmed the message that holds `call`, which carries
    /// `traceparent` in its headers.
    pub async fn publish(
        &self,
        call: Vec<u8>,
        traceparent: Option<String>,
    ) -> Result<(), PublishError> {
        let (confirmed, confirmation) = oneshot::channel();
        self.tx
            .send(Pending {
                call,
                traceparent,
                confirmed,
            })
            .await
            .map_err(|_| PublishError::Unavailable("the gateway is stopping".into()))?;
        confirmation
            .await
            .map_err(|_| PublishError::Unavailable("the gateway is stopping".into()))?
    }
}

async fn form_groups(
    publisher: Publisher,
    mut rx: mpsc::Receiver<Pending>,
    in_flight: usize,
    max_calls: usize,
    messages: Counter,
) {
    let slots = Arc::new(Semaphore::new(in_flight));
    loop {
        // A slot first, then the calls: those that arrive while every slot is taken
        // gather in the channel and leave together.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut group = Vec::with_capacity(max_calls);
        if rx.recv_many(&mut group, max_calls).await == 0 {
            return;
        }
        let (publisher, messages) = (publisher.clone(), messages.clone());
        tokio::spawn(async move {
            join_all(by_size(group).map(|part| publish(&publisher, part, &messages))).await;
            drop(slot);
        });
    }
}

/// The calls taken together, cut into groups of at most `GROUP_MAX_BYTES` (a larger call
/// goes alone).
fn by_size(calls: Vec<Pending>) -> impl Iterator<Item = Vec<Pending>> {
    let mut groups: Vec<Vec<Pending>> = Vec::new();
    let mut bytes = 0;
    for call in calls {
        let size = call.call.len() + 1;
        match groups.last_mut() {
            Some(group) if bytes + size <= GROUP_MAX_BYTES => group.push(call),
            _ => {
                bytes = 0;
                groups.push(vec![call]);
            }
        }
        bytes += size;
    }
    groups.into_iter()
}

/// One message for `part`; each of its calls learns the broker's answer.
async fn publish(publisher: &Publisher, part: Vec<Pending>, messages: &Counter) {
    let traceparents: Vec<String> = part.iter().filter_map(|p| p.traceparent.clone()).collect();
    let (calls, waiting): (Vec<Vec<u8>>, Vec<_>) =
        part.into_iter().map(|p| (p.call, p.confirmed)).unzip();
    let count = calls.len();
    let result = publisher
        .publish_group_traced(&message::group(calls), count, &traceparents)
        .await;
    if result.is_ok() {
        messages.inc();
    }
    for confirmed in waiting {
        let _ = confirmed.send(result.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(bytes: usize) -> Pending {
        Pending {
            call: vec![b'x'; bytes],
            traceparent: None,
            confirmed: oneshot::channel().0,
        }
    }

    #[test]
    fn calls_are_cut_into_groups_under_the_byte_budget() {
        let sizes: Vec<Vec<usize>> = by_size(vec![
            pending(400_000),
            pending(400_000),
            pending(400_000),
            pending(3_000_000),
            pending(10),
        ])
        .map(|group| group.iter().map(|p| p.call.len()).collect())
        .collect();
        assert_eq!(
            sizes,
            vec![
                vec![400_000, 400_000],
                vec![400_000],
                vec![3_000_000],
                vec![10]
            ]
        );
    }
}
