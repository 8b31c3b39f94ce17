//! The task that carries one upstream answer body to the worker, chunk by chunk, metering it on
//! the way and ending it with the usage, a failure, the usage so far when the worker asked it to
//! stop, or nothing at all when the worker has gone.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Shared, error_chain};
use crate::usage::{UsageMeter, UsageSource};
use crate::{BodyEvent, StopHandle, TokenUsage};

/// One answer being relayed. Dropping it (when the task ends, however it ends) releases the
/// upstream response, which closes that connection unless the body was read to its end.
pub(super) struct Relay {
    pub(super) shared: Arc<Shared>,
    /// How the answer's usage is known.
    pub(super) meter: Usage,
    /// Prompt tokens to assume if the upstream reports no usage.
    pub(super) prompt_estimate: u64,
    /// Set by the worker to stop the answer early.
    pub(super) stop: StopHandle,
}

/// How an answer's usage is known.
pub(super) enum Usage {
    /// An error answer: relayed with zero usage.
    None,
    /// Metered from the answer's bytes.
    Metered(Box<UsageMeter>),
    /// Known before the answer (a transcription's audio): whole from the first byte, since the
    /// audio is processed before anything is answered.
    Fixed(TokenUsage),
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.counters.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Relay {
    /// Relays `body` into `sender` until the body ends, fails, or the receiver is dropped.
    pub(super) async fn run(mut self, mut body: Incoming, sender: mpsc::Sender<BodyEvent>) {
        let quiet_limit = self.shared.config.request_timeout;
        let max_bytes = self.shared.config.max_body_bytes;
        let mut relayed: u64 = 0;
        let silence = tokio::time::sleep(quiet_limit);
        tokio::pin!(silence);
        let stop = self.stop.clone();
        loop {
            let frame = tokio::select! {
                biased;
                () = sender.closed() => return self.cancelled(),
                () = stop.stopped() => return self.stopped(&sender).await,
                () = &mut silence => {
                    let error = format!("upstream went silent for {quiet_limit:?} mid-answer");
                    return self.fail(&sender, error).await;
                }
                frame = body.frame() => frame,
            };
            let data = match frame {
                None => return self.end(&sender).await,
                Some(Err(error)) => {
                    let error = format!("upstream answer broke off: {}", error_chain(&error));
                    return self.fail(&sender, error).await;
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => data,
                    // Trailers and empty frames carry nothing to relay.
                    _ => continue,
                },
            };
            relayed = relayed.saturating_add(data.len() as u64);
            if relayed > max_bytes {
                let error = format!("upstream answer exceeds {max_bytes} bytes");
                return self.fail(&sender, error).await;
            }
            if let Usage::Metered(meter) = &mut self.meter {
                meter.feed(&data);
            }
            let sent = tokio::select! {
                biased;
                sent = sender.send(BodyEvent::Data(data)) => sent.is_ok(),
                // A worker that asked to stop may not read what is queued before the usage.
                () = stop.stopped() => return self.stopped(&sender).await,
            };
            if !sent {
                return self.cancelled();
            }
            // Time spent waiting for a slow reader is not upstream silence.
            silence.as_mut().reset(Instant::now() + quiet_limit);
        }
    }

    /// The usage so far: reported, or estimated with the prompt estimate filled in.
    fn usage(&self) -> (TokenUsage, bool) {
        let meter = match &self.meter {
            Usage::None => return (TokenUsage::default(), false),
            Usage::Fixed(usage) => return (*usage, false),
            Usage::Metered(meter) => meter,
        };
        let metered = meter.metered();
        match metered.source {
            UsageSource::Reported => (metered.usage, false),
            UsageSource::Estimated => (
                TokenUsage {
                    prompt_tokens: self.prompt_estimate,
                    ..metered.usage
                },
                true,
            ),
        }
    }

    async fn end(self, sender: &mpsc::Sender<BodyEvent>) {
        let (usage, estimated) = self.usage();
        if estimated {
            let counters = &self.shared.counters;
            counters.estimated_usage.fetch_add(1, Ordering::Relaxed);
            if !counters.warned_estimate.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    upstream = %self.shared.connection.target.display,
                    ?usage,
                    "upstream answer carried no usage; billing an estimate (further cases are \
                     counted in the engine stats, not logged)"
                );
            }
        }
        // The receiver may be gone already; then nobody is left to tell.
        let _ = sender.send(BodyEvent::End(usage)).await;
    }

    async fn fail(self, sender: &mpsc::Sender<BodyEvent>, error: String) {
        let (usage, _) = self.usage();
        self.shared.counters.failed.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%error, ?usage, "upstream answer failed");
        let _ = sender.send(BodyEvent::Failed { error, usage }).await;
    }

    /// Ends the body with the usage of what was relayed (estimated where the upstream has not
    /// reported it yet); dropping `self` then abandons the upstream request.
    async fn stopped(self, sender: &mpsc::Sender<BodyEvent>) {
        let (usage, _) = self.usage();
        self.shared
            .counters
            .cancelled
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            ?usage,
            "answer stopped by the worker; upstream request abandoned"
        );
        let _ = sender.send(BodyEvent::Stopped(usage)).await;
    }

    fn cancelled(self) {
        self.shared
            .counters
            .cancelled
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!("answer dropped by the worker; upstream request abandoned");
    }
}
