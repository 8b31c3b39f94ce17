//! The queue from a worker's connection to one request's task, bounded in bytes and never
//! blocking the worker's connection.
//!
//! One worker connection carries the answers of many requests, of many clients. If delivering a
//! part waited for a slow request, one client that stops reading would stall every other
//! request of that worker. Here a push never waits: a request whose queue would pass its byte
//! budget is marked overflowed (its task then treats the client as too slow and stops the
//! request), its later answer bytes are dropped, and only the one message that carries the
//! worker's final usage is still let through, without its bytes, so the tokens relayed so far
//! can be charged, and one receipt (at most 64 KiB and some, by its format) before it, so the
//! client can hold the charge to what the worker signed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use crate::state::WorkerEvent;

/// Bytes a queued event is counted for besides its payload.
const EVENT_OVERHEAD: usize = 64;

/// Largest run of queued parts joined into one for the client.
const MAX_GATHER: usize = 256 * 1024;

/// The worker connection's end.
#[derive(Debug, Clone)]
pub(crate) struct RouteSender {
    tx: mpsc::UnboundedSender<WorkerEvent>,
    shared: Arc<Shared>,
}

/// The request task's end.
#[derive(Debug)]
pub(crate) struct RouteReceiver {
    rx: mpsc::UnboundedReceiver<WorkerEvent>,
    shared: Arc<Shared>,
    /// An event taken while gathering parts, to be returned next.
    stashed: Option<WorkerEvent>,
}

#[derive(Debug)]
struct Shared {
    budget: usize,
    queued: AtomicUsize,
    overflowed: AtomicBool,
    final_let_through: AtomicBool,
    receipt_let_through: AtomicBool,
}

/// A queue holding at most `budget` bytes of answers.
pub(crate) fn route_queue(budget: usize) -> (RouteSender, RouteReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        budget,
        queued: AtomicUsize::new(0),
        overflowed: AtomicBool::new(false),
        final_let_through: AtomicBool::new(false),
        receipt_let_through: AtomicBool::new(false),
    });
    (
        RouteSender {
            tx,
            shared: shared.clone(),
        },
        RouteReceiver {
            rx,
            shared,
            stashed: None,
        },
    )
}

fn size(event: &WorkerEvent) -> usize {
    EVENT_OVERHEAD
        + match event {
            WorkerEvent::Answer { answer, .. } | WorkerEvent::Part { answer, .. } => answer.len(),
            WorkerEvent::Error { message, .. } => message.len(),
            WorkerEvent::Receipt(r) => r.len(),
            WorkerEvent::Lost | WorkerEvent::Overflow => 0,
        }
}

fn carries_final(event: &WorkerEvent) -> bool {
    matches!(
        event,
        WorkerEvent::Answer {
            final_info: Some(_),
            ..
        } | WorkerEvent::Part {
            final_info: Some(_),
            ..
        } | WorkerEvent::Error { .. }
            | WorkerEvent::Lost
    )
}

impl RouteSender {
    /// Queues `event` without waiting. Over the budget the request is marked overflowed and
    /// only one receipt and one final event (stripped of its bytes) still go through.
    pub(crate) fn push(&self, event: WorkerEvent) {
        let s = &self.shared;
        if !s.overflowed.load(Ordering::Acquire) {
            let n = size(&event);
            let queued = s.queued.fetch_add(n, Ordering::AcqRel) + n;
            if queued <= s.budget {
                let _ = self.tx.send(event);
                return;
            }
            s.queued.fetch_sub(n, Ordering::AcqRel);
            s.overflowed.store(true, Ordering::Release);
            let _ = self.tx.send(WorkerEvent::Overflow);
        }
        if matches!(event, WorkerEvent::Receipt(_))
            && !s.final_let_through.load(Ordering::Acquire)
            && !s.receipt_let_through.swap(true, Ordering::AcqRel)
        {
            let _ = self.tx.send(event);
            return;
        }
        if carries_final(&event) && !s.final_let_through.swap(true, Ordering::AcqRel) {
            let stripped = match event {
                WorkerEvent::Answer { final_info, .. } | WorkerEvent::Part { final_info, .. } => {
                    WorkerEvent::Part {
                        answer: Bytes::new(),
                        final_info,
                    }
                }
                WorkerEvent::Error {
                    code, final_info, ..
                } => WorkerEvent::Error {
                    code,
                    message: String::new(),
                    final_info,
                },
                other => other,
            };
            let _ = self.tx.send(stripped);
        }
    }
}

impl RouteReceiver {
    fn take(&mut self, event: WorkerEvent) -> WorkerEvent {
        self.shared.queued.fetch_sub(
            size(&event).min(self.shared.queued.load(Ordering::Acquire)),
            Ordering::AcqRel,
        );
        event
    }

    /// The next event; [`WorkerEvent::Lost`] once the worker's end is gone. Parts already
    /// queued behind a part are joined into one (up to 256 KiB), so that a burst from the
    /// worker crosses to the client as one packet; never waits for more.
    pub(crate) async fn recv(&mut self) -> WorkerEvent {
        let first = match self.stashed.take() {
            Some(e) => e,
            None => match self.rx.recv().await {
                Some(e) => self.take(e),
                None => return WorkerEvent::Lost,
            },
        };
        let WorkerEvent::Part {
            answer,
            final_info: None,
        } = first
        else {
            return first;
        };
        let mut joined: Option<BytesMut> = None;
        while joined.as_ref().map_or(answer.len(), BytesMut::len) < MAX_GATHER {
            let Ok(next) = self.rx.try_recv() else { break };
            match self.take(next) {
                WorkerEvent::Part {
                    answer: more,
                    final_info,
                } => {
                    joined
                        .get_or_insert_with(|| BytesMut::from(&answer[..]))
                        .extend_from_slice(&more);
                    if final_info.is_some() {
                        return WorkerEvent::Part {
                            answer: joined.map_or(answer, BytesMut::freeze),
                            final_info,
                        };
                    }
                }
                other => {
                    self.stashed = Some(other);
                    break;
                }
            }
        }
        WorkerEvent::Part {
            answer: joined.map_or(answer, BytesMut::freeze),
            final_info: None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use cocoon_protocol::messages::proxy;

    fn part(n: usize, last: bool) -> WorkerEvent {
        WorkerEvent::Part {
            answer: Bytes::from(vec![b'x'; n]),
            final_info: last.then(proxy::QueryFinalInfo::default),
        }
    }

    #[tokio::test]
    async fn parts_within_the_budget_arrive_joined_in_order() {
        let (tx, mut rx) = route_queue(10_000);
        tx.push(part(10, false));
        tx.push(part(20, false));
        tx.push(WorkerEvent::Receipt(Bytes::from_static(b"r")));
        tx.push(part(5, true));
        match rx.recv().await {
            WorkerEvent::Part {
                answer,
                final_info: None,
            } => assert_eq!(answer.len(), 30),
            other => panic!("{other:?}"),
        }
        assert!(matches!(rx.recv().await, WorkerEvent::Receipt(_)));
        assert!(matches!(
            rx.recv().await,
            WorkerEvent::Part {
                final_info: Some(_),
                ..
            }
        ));
        drop(tx);
        assert!(matches!(rx.recv().await, WorkerEvent::Lost));
    }

    #[tokio::test]
    async fn a_push_never_waits_and_an_unread_request_overflows_alone() {
        let (tx, mut rx) = route_queue(1_000);
        let (other_tx, mut other_rx) = route_queue(1_000);
        // Far more than the budget: no push blocks.
        for _ in 0..1_000 {
            tx.push(part(100, false));
            other_tx.push(part(1, false));
            // The other request is read as it goes and never overflows.
            assert!(matches!(other_rx.recv().await, WorkerEvent::Part { .. }));
        }
        // The receipt and the final usage still come through, the usage without its bytes,
        // each once.
        tx.push(WorkerEvent::Receipt(Bytes::from_static(b"r")));
        tx.push(WorkerEvent::Receipt(Bytes::from_static(b"again")));
        tx.push(part(100, true));
        tx.push(part(100, true));
        let mut events = Vec::new();
        drop(tx);
        loop {
            match rx.recv().await {
                WorkerEvent::Lost => break,
                e => events.push(e),
            }
        }
        let bytes: usize = events
            .iter()
            .map(|e| match e {
                WorkerEvent::Part { answer, .. } => answer.len(),
                _ => 0,
            })
            .sum();
        assert!(bytes <= 1_000, "{bytes} bytes queued");
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, WorkerEvent::Overflow))
                .count(),
            1
        );
        let finals: Vec<_> = events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    WorkerEvent::Part {
                        final_info: Some(_),
                        ..
                    }
                )
            })
            .collect();
        assert_eq!(finals.len(), 1);
        assert!(matches!(finals[0], WorkerEvent::Part { answer, .. } if answer.is_empty()));
        let receipts: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                WorkerEvent::Receipt(r) => Some(r.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(receipts, vec![Bytes::from_static(b"r")]);
    }
}
