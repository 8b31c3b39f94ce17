//! Drives a node's dashboard history: samples the node's figures into a
//! [`cocoon_dashboard::History`] on a tokio interval, on the node's monotonic clock, and lends
//! the history and the time to the `/dashboard` handler.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use cocoon_dashboard::History;
use tokio::time::{Instant, MissedTickBehavior};

/// How often the dashboards sample (720 points per series over the hour).
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

/// How often a dashboard page reloads itself.
pub const PAGE_REFRESH: Duration = Duration::from_secs(10);

/// A [`History`] fed by a background task; clones share it. The task ends once the last clone
/// is dropped.
#[derive(Clone)]
pub struct LiveHistory {
    history: Arc<Mutex<History>>,
    origin: Instant,
}

impl LiveHistory {
    /// Starts sampling the last hour: `sample` is called at once and then every `interval`,
    /// and what it answers (series name, value) is recorded. Call within a tokio runtime.
    pub fn spawn<F, Fut>(interval: Duration, mut sample: F) -> Self
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Vec<(String, f64)>> + Send,
    {
        let live = Self {
            history: Arc::new(Mutex::new(History::last_hour(interval))),
            origin: Instant::now(),
        };
        let weak: Weak<Mutex<History>> = Arc::downgrade(&live.history);
        let origin = live.origin;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let samples = sample().await;
                let Some(history) = weak.upgrade() else {
                    return;
                };
                let now = origin.elapsed();
                history
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .record(now, samples.iter().map(|(k, v)| (k.as_str(), *v)));
            }
        });
        live
    }

    /// Lends the history and the time now (on the clock its points were taken on) to `f`.
    pub fn read<T>(&self, f: impl FnOnce(&History, Duration) -> T) -> T {
        let history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        f(&history, self.origin.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn samples_on_the_interval_and_stops_with_the_last_clone() {
        let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = calls.clone();
        let live = LiveHistory::spawn(Duration::from_secs(5), move || {
            let n = seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async move { vec![("n".to_owned(), n as f64)] }
        });
        tokio::time::sleep(Duration::from_secs(12)).await;
        let pts = live.read(|h, now| h.points("n", now));
        assert_eq!(
            pts.iter().map(|p| p.value).collect::<Vec<_>>(),
            [0.0, 1.0, 2.0]
        );
        drop(live);
        tokio::time::sleep(Duration::from_secs(30)).await;
        // One more call may have begun before the history went away; none after it.
        assert!(calls.load(std::sync::atomic::Ordering::Relaxed) <= 4);
    }
}
