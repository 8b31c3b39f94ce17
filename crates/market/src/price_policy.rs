//! How a worker sets its own price coefficient: fixed (the operator's number, as before), or
//! following its load between an operator's floor and ceiling, with a dead band and a minimum
//! interval between changes so that the price does not flap.
//!
//! Sans-IO like the rest of the crate: the worker's driver measures its utilisation and queue on
//! a tick and passes them in with `now`; [`PriceController::on_sample`] answers the coefficient
//! to announce (`worker.newCoefficient`), or `None` when the price stays.
//!
//! # Rule
//!
//! Each sample gives `load = running / capacity + queue_weight × queued / capacity`, smoothed
//! into an EWMA (weight `smoothing`). With `error = load − target_utilisation`:
//!
//! 1. `|error| ≤ dead_band`: the price stays (the dead band);
//! 2. the last change was less than `min_interval_secs` ago: the price stays;
//! 3. otherwise the price moves by `round(gain × error)` thousandths, at least 1 and at most
//!    `max_step`, in the direction of the error, then
//! 4. optionally pulled toward the market's median coefficient by `market_weight` (the pull never
//!    reverses the direction the load asks for), and
//! 5. clamped to `[floor, ceiling]`; a price already at the bound it is pushed against stays.
//!
//! A busy worker therefore gets dearer step by step until its load falls back into the band,
//! and an idle one cheaper down to its floor; between two changes at least `min_interval_secs`
//! pass, so the price can reverse at most once per interval.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::MarketError;
use crate::pricing::Coefficient;

/// Whether the coefficient is the operator's fixed number or follows load.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// The configured coefficient, changed only by the operator (`POST /admin/coefficient`).
    #[default]
    Fixed,
    /// The coefficient follows the worker's load within `[floor, ceiling]`.
    Load,
}

/// The operator's pricing policy (`[pricing]` in a worker's configuration).
#[derive(Clone, Copy, PartialEq, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PricePolicy {
    /// `fixed` (default) or `load`.
    pub policy: PolicyKind,
    /// Lowest coefficient the policy may set (1000 = 1.0×).
    pub floor: u32,
    /// Highest coefficient the policy may set.
    pub ceiling: u32,
    /// Load the policy steers toward, in `(0, 1]` (0.7: 70 % of the slots busy).
    pub target_utilisation: f64,
    /// No change while the smoothed load is within this distance of the target, in `[0, 1)`.
    pub dead_band: f64,
    /// Thousandths of coefficient per change for each unit of load error (positive).
    pub gain: f64,
    /// Largest change at once, in thousandths (at least 1).
    pub max_step: u32,
    /// Seconds that must pass between two changes.
    pub min_interval_secs: u64,
    /// Weight of the newest sample in the smoothed load, in `(0, 1]` (1: no smoothing).
    pub smoothing: f64,
    /// How much a queued (refused for lack of a slot) request counts against a running one.
    pub queue_weight: f64,
    /// Pull toward the market's median coefficient when it is observed, in `[0, 1]`.
    pub market_weight: f64,
}

impl Default for PricePolicy {
    fn default() -> Self {
        Self {
            policy: PolicyKind::Fixed,
            floor: 500,
            ceiling: 4000,
            target_utilisation: 0.7,
            dead_band: 0.1,
            gain: 500.0,
            max_step: 100,
            min_interval_secs: 30,
            smoothing: 0.3,
            queue_weight: 1.0,
            market_weight: 0.0,
        }
    }
}

impl PricePolicy {
    /// Checks that every field is in range.
    pub fn validate(&self) -> Result<(), MarketError> {
        let err = |m| Err(MarketError::InvalidPricePolicy(m));
        if self.floor == 0 {
            return err("floor must be at least 1");
        }
        if self.floor > self.ceiling {
            return Err(MarketError::PriceBoundsInverted {
                floor: self.floor,
                ceiling: self.ceiling,
            });
        }
        if Coefficient::new(self.ceiling).is_err() {
            return err("ceiling must be at most 2147483647");
        }
        if !(self.target_utilisation > 0.0 && self.target_utilisation <= 1.0) {
            return err("target_utilisation must be in (0, 1]");
        }
        if !(self.dead_band >= 0.0 && self.dead_band < 1.0) {
            return err("dead_band must be in [0, 1)");
        }
        if !(self.gain.is_finite() && self.gain > 0.0) {
            return err("gain must be positive and finite");
        }
        if self.max_step == 0 {
            return err("max_step must be at least 1");
        }
        if !(self.smoothing > 0.0 && self.smoothing <= 1.0) {
            return err("smoothing must be in (0, 1]");
        }
        if !(self.queue_weight.is_finite() && (0.0..=1000.0).contains(&self.queue_weight)) {
            return err("queue_weight must be from 0 to 1000");
        }
        if !(0.0..=1.0).contains(&self.market_weight) {
            return err("market_weight must be in [0, 1]");
        }
        Ok(())
    }

    /// `c` clamped to `[floor, ceiling]` (under a load policy; unchanged under a fixed one).
    pub fn clamp(&self, c: Coefficient) -> Coefficient {
        match self.policy {
            PolicyKind::Fixed => c,
            PolicyKind::Load => {
                Coefficient::new(c.get().clamp(self.floor, self.ceiling)).unwrap_or(c)
            }
        }
    }
}

/// What the worker measured at one tick.
#[derive(Clone, Copy, PartialEq, Debug, Default)]
pub struct LoadSample {
    /// Requests running now.
    pub running: u32,
    /// Requests it may run at once (0 counts as 1).
    pub capacity: u32,
    /// Requests refused for lack of a free slot since the previous sample.
    pub queued: u32,
    /// The market's median coefficient for this model, when the worker observes it.
    pub market_median: Option<Coefficient>,
}

impl LoadSample {
    /// The sample's load: busy share of the slots plus the weighted queue.
    pub fn load(&self, queue_weight: f64) -> f64 {
        let capacity = f64::from(self.capacity.max(1));
        (f64::from(self.running) + queue_weight * f64::from(self.queued)) / capacity
    }
}

/// Applies a [`PricePolicy`] sample after sample. Holds the current coefficient, the smoothed
/// load and the time of the last change.
#[derive(Clone, Debug)]
pub struct PriceController {
    policy: PricePolicy,
    current: Coefficient,
    load: Option<f64>,
    last_change: Option<Instant>,
    pinned: bool,
}

impl PriceController {
    /// A controller starting at `initial` (clamped into the policy's bounds).
    pub fn new(policy: PricePolicy, initial: Coefficient) -> Result<Self, MarketError> {
        policy.validate()?;
        Ok(Self {
            current: policy.clamp(initial),
            policy,
            load: None,
            last_change: None,
            pinned: false,
        })
    }

    /// The policy applied.
    pub fn policy(&self) -> &PricePolicy {
        &self.policy
    }

    /// The coefficient to announce now.
    pub fn current(&self) -> Coefficient {
        self.current
    }

    /// The smoothed load, once a sample arrived.
    pub fn load(&self) -> Option<f64> {
        self.load
    }

    /// Whether the price follows load now (a load policy, not pinned by the operator).
    pub fn is_automatic(&self) -> bool {
        self.policy.policy == PolicyKind::Load && !self.pinned
    }

    /// The operator set a coefficient by hand: it holds (even outside the bounds) until
    /// [`resume`](Self::resume).
    pub fn pin(&mut self, coefficient: Coefficient) {
        self.current = coefficient;
        self.pinned = true;
    }

    /// Lets a load policy move the price again, from the pinned one clamped into the bounds.
    /// Answers the coefficient to announce if clamping changed it.
    pub fn resume(&mut self, now: Instant) -> Option<Coefficient> {
        self.pinned = false;
        let clamped = self.policy.clamp(self.current);
        (clamped != self.current).then(|| {
            self.current = clamped;
            self.last_change = Some(now);
            clamped
        })
    }

    /// Feeds one measurement taken at `now`; answers the new coefficient when it changes.
    pub fn on_sample(&mut self, sample: &LoadSample, now: Instant) -> Option<Coefficient> {
        let p = self.policy;
        let raw = sample.load(p.queue_weight);
        if !raw.is_finite() {
            // Validated settings keep it finite; a price never follows a meaningless load.
            return None;
        }
        let load = match self.load {
            Some(old) => old + p.smoothing * (raw - old),
            None => raw,
        };
        self.load = Some(load);
        if !self.is_automatic() {
            return None;
        }
        let error = load - p.target_utilisation;
        if error.abs() <= p.dead_band {
            return None;
        }
        if let Some(last) = self.last_change
            && now.saturating_duration_since(last) < Duration::from_secs(p.min_interval_secs)
        {
            return None;
        }
        let step = (p.gain * error.abs())
            .round()
            .clamp(1.0, f64::from(p.max_step));
        let current = f64::from(self.current.get());
        let moved = if error > 0.0 {
            current + step
        } else {
            current - step
        };
        let target = match sample.market_median {
            Some(median) if p.market_weight > 0.0 => {
                let pulled = moved + p.market_weight * (f64::from(median.get()) - moved);
                // The market may soften or strengthen a move, never turn it around.
                if (pulled - current) * error > 0.0 {
                    pulled
                } else {
                    current
                }
            }
            _ => moved,
        };
        let bounded = target
            .round()
            .clamp(f64::from(p.floor), f64::from(p.ceiling));
        // `bounded` lies within `[floor, ceiling]`, both `u32`, so the cast is exact.
        let next = Coefficient::new(bounded as u32).ok()?;
        if next == self.current {
            return None;
        }
        self.current = next;
        self.last_change = Some(now);
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn load_policy() -> PricePolicy {
        PricePolicy {
            policy: PolicyKind::Load,
            floor: 800,
            ceiling: 2000,
            target_utilisation: 0.5,
            dead_band: 0.1,
            gain: 1000.0,
            max_step: 100,
            min_interval_secs: 10,
            smoothing: 1.0,
            queue_weight: 1.0,
            market_weight: 0.0,
        }
    }

    fn c(v: u32) -> Coefficient {
        Coefficient::new(v).unwrap()
    }

    fn sample(running: u32, capacity: u32) -> LoadSample {
        LoadSample {
            running,
            capacity,
            ..LoadSample::default()
        }
    }

    #[test]
    fn the_default_policy_is_fixed_and_never_moves() {
        let mut p = PriceController::new(PricePolicy::default(), c(1234)).unwrap();
        let t0 = Instant::now();
        for i in 0..100 {
            assert_eq!(
                p.on_sample(&sample(10, 10), t0 + Duration::from_secs(i * 60)),
                None
            );
        }
        assert_eq!(p.current(), c(1234));
        assert!(!p.is_automatic());
    }

    #[test]
    fn validation_names_each_mistake() {
        let inverted = PricePolicy {
            floor: 3000,
            ceiling: 1000,
            ..load_policy()
        };
        assert_eq!(
            inverted.validate(),
            Err(MarketError::PriceBoundsInverted {
                floor: 3000,
                ceiling: 1000
            })
        );
        let cases = [
            PricePolicy {
                floor: 0,
                ..load_policy()
            },
            PricePolicy {
                ceiling: u32::MAX,
                ..load_policy()
            },
            PricePolicy {
                target_utilisation: 0.0,
                ..load_policy()
            },
            PricePolicy {
                target_utilisation: 1.5,
                ..load_policy()
            },
            PricePolicy {
                dead_band: 1.0,
                ..load_policy()
            },
            PricePolicy {
                gain: 0.0,
                ..load_policy()
            },
            PricePolicy {
                gain: f64::NAN,
                ..load_policy()
            },
            PricePolicy {
                max_step: 0,
                ..load_policy()
            },
            PricePolicy {
                smoothing: 0.0,
                ..load_policy()
            },
            PricePolicy {
                queue_weight: -1.0,
                ..load_policy()
            },
            PricePolicy {
                market_weight: 1.5,
                ..load_policy()
            },
        ];
        for case in cases {
            assert!(
                matches!(case.validate(), Err(MarketError::InvalidPricePolicy(_))),
                "{case:?}"
            );
        }
        assert_eq!(load_policy().validate(), Ok(()));
        assert_eq!(PricePolicy::default().validate(), Ok(()));
    }

    #[test]
    fn the_start_is_clamped_into_the_bounds() {
        assert_eq!(
            PriceController::new(load_policy(), c(100))
                .unwrap()
                .current(),
            c(800)
        );
        assert_eq!(
            PriceController::new(load_policy(), c(9000))
                .unwrap()
                .current(),
            c(2000)
        );
        // A fixed policy keeps any start.
        assert_eq!(
            PriceController::new(PricePolicy::default(), c(9000))
                .unwrap()
                .current(),
            c(9000)
        );
    }

    #[test]
    fn a_busy_worker_gets_dearer_and_an_idle_one_cheaper() {
        let mut p = PriceController::new(load_policy(), c(1000)).unwrap();
        let t0 = Instant::now();
        // Load 0.9, error 0.4: a step of 400 capped at 100.
        assert_eq!(p.on_sample(&sample(9, 10), t0), Some(c(1100)));
        // Load 0.7, error 0.2: a step of 200 capped at 100, ten seconds later.
        assert_eq!(
            p.on_sample(&sample(7, 10), t0 + Duration::from_secs(10)),
            Some(c(1200))
        );
        // Load 0.35, error -0.15: down 150 capped at 100.
        assert_eq!(
            p.on_sample(&sample(7, 20), t0 + Duration::from_secs(20)),
            Some(c(1100))
        );
    }

    #[test]
    fn the_dead_band_holds_the_price() {
        let mut p = PriceController::new(load_policy(), c(1000)).unwrap();
        let t0 = Instant::now();
        for (i, running) in [4u32, 5, 6, 5, 4, 6].into_iter().enumerate() {
            let now = t0 + Duration::from_secs(60 * i as u64);
            assert_eq!(p.on_sample(&sample(running, 10), now), None);
        }
        assert_eq!(p.current(), c(1000));
    }

    #[test]
    fn changes_are_at_least_min_interval_apart() {
        let mut p = PriceController::new(load_policy(), c(1000)).unwrap();
        let t0 = Instant::now();
        let mut changes = Vec::new();
        for s in 0..100u64 {
            // Load swings from full to empty every second.
            let running = if s % 2 == 0 { 10 } else { 0 };
            let now = t0 + Duration::from_secs(s);
            if p.on_sample(&sample(running, 10), now).is_some() {
                changes.push(s);
            }
        }
        assert!(changes.len() >= 2);
        assert!(changes.windows(2).all(|w| w[1] - w[0] >= 10), "{changes:?}");
    }

    #[test]
    fn the_price_stays_within_floor_and_ceiling() {
        let mut p = PriceController::new(load_policy(), c(1000)).unwrap();
        let t0 = Instant::now();
        for s in 0..50u64 {
            p.on_sample(&sample(10, 10), t0 + Duration::from_secs(s * 10));
        }
        assert_eq!(p.current(), c(2000));
        // At the ceiling and still busy: nothing new to announce.
        assert_eq!(
            p.on_sample(&sample(10, 10), t0 + Duration::from_secs(1000)),
            None
        );
        for s in 0..50u64 {
            p.on_sample(&sample(0, 10), t0 + Duration::from_secs(2000 + s * 10));
        }
        assert_eq!(p.current(), c(800));
    }

    #[test]
    fn queued_requests_count_as_load() {
        let mut p = PriceController::new(load_policy(), c(1000)).unwrap();
        let queued = LoadSample {
            running: 3,
            capacity: 10,
            queued: 5,
            market_median: None,
        };
        assert_eq!(p.on_sample(&queued, Instant::now()), Some(c(1100)));
    }

    #[test]
    fn smoothing_damps_a_single_spike() {
        let policy = PricePolicy {
            smoothing: 0.2,
            ..load_policy()
        };
        let mut p = PriceController::new(policy, c(1000)).unwrap();
        let t0 = Instant::now();
        assert_eq!(p.on_sample(&sample(5, 10), t0), None);
        // Raw load 1.0, smoothed 0.6: inside the band.
        assert_eq!(
            p.on_sample(&sample(10, 10), t0 + Duration::from_secs(60)),
            None
        );
        assert!((p.load().unwrap() - 0.6).abs() < 1e-9);
    }

    #[test]
    fn the_market_pulls_but_never_reverses() {
        let policy = PricePolicy {
            market_weight: 0.5,
            max_step: 1000,
            ..load_policy()
        };
        let t0 = Instant::now();
        let busy = |median| LoadSample {
            running: 9,
            capacity: 10,
            queued: 0,
            market_median: Some(c(median)),
        };
        // Busy (+400 → 1400), market at 1800: pulled halfway to 1600.
        let mut p = PriceController::new(policy, c(1000)).unwrap();
        assert_eq!(p.on_sample(&busy(1800), t0), Some(c(1600)));
        // Busy, market at 200: the pull would lower the price, so it stays.
        let mut p = PriceController::new(policy, c(1000)).unwrap();
        assert_eq!(p.on_sample(&busy(200), t0), None);
    }

    #[test]
    fn a_pin_holds_until_resumed() {
        let mut p = PriceController::new(load_policy(), c(1000)).unwrap();
        let t0 = Instant::now();
        p.pin(c(5000));
        assert!(!p.is_automatic());
        assert_eq!(p.on_sample(&sample(0, 10), t0), None);
        assert_eq!(p.current(), c(5000));
        // Resuming clamps the pinned price into the bounds.
        assert_eq!(p.resume(t0), Some(c(2000)));
        assert!(p.is_automatic());
        // And the clamp counts as a change for the minimum interval.
        assert_eq!(
            p.on_sample(&sample(0, 10), t0 + Duration::from_secs(5)),
            None
        );
        assert_eq!(
            p.on_sample(&sample(0, 10), t0 + Duration::from_secs(10)),
            Some(c(1900))
        );
    }

    #[test]
    fn the_policy_reads_with_defaults() {
        let p: PricePolicy = serde_json::from_str(
            r#"{"policy":"load","floor":900,"ceiling":2500,"min_interval_secs":60}"#,
        )
        .unwrap();
        assert_eq!(p.policy, PolicyKind::Load);
        assert_eq!((p.floor, p.ceiling, p.min_interval_secs), (900, 2500, 60));
        assert_eq!(p.target_utilisation, 0.7);
        assert!(serde_json::from_str::<PricePolicy>(r#"{"flor":1}"#).is_err());
    }
}
