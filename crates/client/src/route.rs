//! The queue from the proxy session to one request's caller, bounded in bytes and never
//! blocking the session.
//!
//! One proxy session carries the answers of every request of this client. If delivering an
//! answer part waited for a caller that reads slowly, every other caller would stall behind it.
//! The session's end never waits: a push that would take the queue past its byte budget is
//! refused, and the session then stops that request alone (see `link.rs`). A single event
//! larger than the budget still passes when the queue is empty, so that no answer the proxy may
//! legitimately send is refused outright: the queue holds at most the budget plus one packet.
//!
//! A sealed request has a second queue, after the task that opens its chunks; that task waits
//! for room ([`RouteSender::send`]), so a caller that stops reading fills both queues and the
//! session's push is refused as for any other request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Notify, mpsc};

use crate::link::ProxyEvent;

/// Bytes a queued event is counted for besides its payload.
const EVENT_OVERHEAD: usize = 64;

/// Why an event was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue holds its budget: the caller is not reading.
    Full,
    /// The caller is gone.
    Closed,
}

/// What became of a pushed event.
enum Pushed {
    Queued,
    /// Refused for lack of room; the event comes back.
    Full(ProxyEvent),
    Closed,
}

/// The session's end (cloned into the route table).
#[derive(Debug, Clone)]
pub(crate) struct RouteSender {
    tx: mpsc::UnboundedSender<ProxyEvent>,
    shared: Arc<Shared>,
}

/// The caller's end.
#[derive(Debug)]
pub(crate) struct RouteReceiver {
    rx: mpsc::UnboundedReceiver<ProxyEvent>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    budget: usize,
    queued: AtomicUsize,
    /// Woken whenever the caller takes an event.
    taken: Notify,
}

/// A queue holding about `budget` bytes of answers at most.
pub(crate) fn route_queue(budget: usize) -> (RouteSender, RouteReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        budget,
        queued: AtomicUsize::new(0),
        taken: Notify::new(),
    });
    (
        RouteSender {
            tx,
            shared: shared.clone(),
        },
        RouteReceiver { rx, shared },
    )
}

/// What an event counts for in the budget.
fn size(event: &ProxyEvent) -> usize {
    EVENT_OVERHEAD
        + match event {
            ProxyEvent::Answer { answer, .. } | ProxyEvent::Part { answer, .. } => answer.len(),
            ProxyEvent::Error { message, .. } => message.len(),
            ProxyEvent::Receipt(r) => r.len(),
            ProxyEvent::Cost(_) | ProxyEvent::Payment { .. } | ProxyEvent::Lost => 0,
        }
}

impl RouteSender {
    /// Queues `event` unless the queue already holds its budget; never waits. The session's
    /// loss (`Lost`) is always queued.
    pub(crate) fn try_send(&self, event: ProxyEvent) -> Result<(), Refused> {
        match self.push(event) {
            Pushed::Queued => Ok(()),
            Pushed::Full(_) => Err(Refused::Full),
            Pushed::Closed => Err(Refused::Closed),
        }
    }

    fn push(&self, event: ProxyEvent) -> Pushed {
        let len = size(&event);
        let exempt = matches!(event, ProxyEvent::Lost);
        let admitted =
            self.shared
                .queued
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                    (exempt || queued == 0 || queued.saturating_add(len) <= self.shared.budget)
                        .then(|| queued.saturating_add(len))
                });
        if admitted.is_err() {
            return Pushed::Full(event);
        }
        match self.tx.send(event) {
            Ok(()) => Pushed::Queued,
            Err(_) => {
                self.shared.queued.fetch_sub(len, Ordering::AcqRel);
                Pushed::Closed
            }
        }
    }

    /// Queues `event`, waiting while the queue holds its budget; fails only when the caller
    /// is gone. For the task that opens a sealed answer, whose own input is the bounded queue.
    pub(crate) async fn send(&self, mut event: ProxyEvent) -> Result<(), Refused> {
        loop {
            let taken = self.shared.taken.notified();
            tokio::pin!(taken);
            // Registered before trying, so a take between the try and the wait is not missed.
            taken.as_mut().enable();
            match self.push(event) {
                Pushed::Queued => return Ok(()),
                Pushed::Closed => return Err(Refused::Closed),
                Pushed::Full(e) => event = e,
            }
            tokio::select! {
                () = taken => {}
                () = self.tx.closed() => return Err(Refused::Closed),
            }
        }
    }
}

impl RouteReceiver {
    /// The next event; `None` once every sender is gone and the queue is empty.
    pub(crate) async fn recv(&mut self) -> Option<ProxyEvent> {
        let event = self.rx.recv().await?;
        self.shared.queued.fetch_sub(size(&event), Ordering::AcqRel);
        self.shared.taken.notify_waiters();
        Some(event)
    }

    /// The next event if one is queued now; never waits.
    pub(crate) fn try_recv(&mut self) -> Option<ProxyEvent> {
        let event = self.rx.try_recv().ok()?;
        self.shared.queued.fetch_sub(size(&event), Ordering::AcqRel);
        self.shared.taken.notify_waiters();
        Some(event)
    }

    /// Bytes queued now.
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use bytes::Bytes;

    use super::*;

    fn part(len: usize) -> ProxyEvent {
        ProxyEvent::Part {
            answer: Bytes::from(vec![b'x'; len]),
            final_info: None,
        }
    }

    #[tokio::test]
    async fn a_caller_that_does_not_read_fills_its_budget_and_no_more() {
        let (tx, mut rx) = route_queue(10_000);
        let mut accepted = 0;
        while tx.try_send(part(1000)).is_ok() {
            accepted += 1;
            assert!(accepted < 100, "the queue never refused");
        }
        assert_eq!(accepted, 9, "9 × (1000 + overhead) fit in 10,000 bytes");
        assert!(rx.queued() <= 10_000);
        // The session's loss still gets through.
        assert!(tx.try_send(ProxyEvent::Lost).is_ok());
        // Reading makes room again.
        assert!(matches!(rx.recv().await, Some(ProxyEvent::Part { .. })));
        assert!(tx.try_send(part(1000)).is_ok());
        assert!(matches!(tx.try_send(part(1000)), Err(Refused::Full)));
    }

    #[tokio::test]
    async fn one_event_larger_than_the_budget_passes_an_empty_queue() {
        let (tx, mut rx) = route_queue(1000);
        assert!(tx.try_send(part(5000)).is_ok());
        assert!(matches!(tx.try_send(part(1)), Err(Refused::Full)));
        assert!(rx.recv().await.is_some());
        assert_eq!(rx.queued(), 0);
        assert!(tx.try_send(part(5000)).is_ok());
    }

    #[tokio::test]
    async fn a_departed_caller_is_reported_and_its_bytes_are_not_counted() {
        let (tx, rx) = route_queue(1000);
        drop(rx);
        assert!(matches!(tx.try_send(part(10)), Err(Refused::Closed)));
        assert!(tx.send(part(10)).await.is_err());
    }

    #[tokio::test]
    async fn send_waits_for_room_and_resumes_when_the_caller_reads() {
        let (tx, mut rx) = route_queue(2000);
        tx.try_send(part(1500)).unwrap();
        let sender = tx.clone();
        let waiting = tokio::spawn(async move { sender.send(part(1500)).await.is_ok() });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the second part waits for room");
        assert!(rx.recv().await.is_some());
        assert!(
            tokio::time::timeout(Duration::from_secs(5), waiting)
                .await
                .unwrap()
                .unwrap()
        );
        assert!(rx.recv().await.is_some());
    }

    #[tokio::test]
    async fn send_gives_up_when_the_caller_leaves_while_it_waits() {
        let (tx, rx) = route_queue(1000);
        tx.try_send(part(900)).unwrap();
        let sender = tx.clone();
        let waiting = tokio::spawn(async move { sender.send(part(900)).await.is_err() });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(rx);
        assert!(
            tokio::time::timeout(Duration::from_secs(5), waiting)
                .await
                .unwrap()
                .unwrap()
        );
    }
}
