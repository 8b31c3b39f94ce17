//! The driver of the worker's pricing policy: on every `pricing_tick` it measures the busy share
//! of its slots and the requests refused for lack of one, feeds them to the sans-IO
//! [`cocoon_market::PriceController`], and announces a new coefficient to every proxy with
//! `worker.newCoefficient`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use cocoon_market::{Coefficient, LoadSample, PolicyKind};
use cocoon_protocol::messages::worker;
use cocoon_protocol::tl::TlConstructor;

use crate::state::{WorkerState, lock};

/// Stores `c` as the coefficient in force and tells every connected proxy.
pub(crate) async fn announce(state: &WorkerState, c: Coefficient) {
    let value = i32::from(c);
    state.set_coefficient_value(value);
    let msg = worker::NewCoefficient {
        new_coefficient: value,
    };
    state.broadcast(Bytes::from(msg.to_boxed_bytes())).await;
}

/// Applies the load policy until shutdown; returns at once under a fixed policy.
pub(crate) async fn follow_load(state: Arc<WorkerState>) {
    if state.config.pricing.policy == PolicyKind::Fixed {
        return;
    }
    let mut tick = tokio::time::interval(state.config.pricing_tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut refused_before = state.counters.busy_refusals.load(Ordering::Relaxed);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = state.shutdown.cancelled() => return,
        }
        let refused = state.counters.busy_refusals.load(Ordering::Relaxed);
        let sample = LoadSample {
            running: u32::try_from(state.active.load(Ordering::Acquire)).unwrap_or(u32::MAX),
            capacity: u32::try_from(state.config.max_active_requests).unwrap_or(u32::MAX),
            queued: u32::try_from(refused.saturating_sub(refused_before)).unwrap_or(u32::MAX),
            market_median: None,
        };
        refused_before = refused;
        let change = lock(&state.price).on_sample(&sample, std::time::Instant::now());
        if let Some(c) = change {
            tracing::info!(
                "pricing: load {:.2}, coefficient now {c}",
                lock(&state.price).load().unwrap_or_default()
            );
            announce(&state, c).await;
        }
    }
}
