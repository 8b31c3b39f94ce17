//! Chooses the worker for each request: the reference's hard filters (model, enabled, capacity,
//! price ceiling) plus the reputation it lacks (success rate, latency, cool-downs for failing
//! workers), so that slow or broken workers get less traffic and retries go elsewhere.
//!
//! # Rules
//!
//! A worker is a candidate for a request when all of these hold:
//!
//! 1. its base model (the text before `@`) equals the requested model's base model;
//! 2. it is enabled;
//! 3. it is not in the request's `exclude` list (workers already tried for it);
//! 4. its coefficient is at most the client's maximum;
//! 5. it is not cooling down (see below);
//! 6. it has a free slot: `running < ceil(max_active_requests / proxy_count)`, the share of its
//!    capacity this proxy may use.
//!
//! Among candidates the selector picks the lowest expected cost of sending the request there:
//!
//! `score = latency × (running + 1) / max(success_rate, min_success_probability)`
//!
//! where `latency` is the worker's EWMA of total request time (for a worker with no finished
//! request yet: the mean over the workers of the same base model that have one, so newcomers get
//! a fair share, or [`SelectionConfig::default_latency_ms`] when none has) and `success_rate` an EWMA of
//! outcomes (1 = success, 0 = failure) starting at 1. The reference ranks by `running × average
//! time`, which is 0 for every idle worker; `running + 1` keeps the speed of idle workers in play.
//! Ties go to the lower coefficient (cheaper for the client), then the lower [`WorkerId`], so the
//! choice is a pure function of the selector's state: no randomness, no hidden clock.
//!
//! A client may ask for another balance between speed and price ([`Preference`]): with a price
//! weight `w` in `[0, 1]` the candidates are ranked by
//!
//! `(1 − w) × ln(score / best_score) + w × ln(coefficient / cheapest_coefficient)`
//!
//! (each term 0 for the best candidate on it), ties going to the lower `score`, then as above.
//! `w = 0` ([`Preference::Latency`], the default) is the ranking by `score` alone; `w = 1`
//! ([`Preference::Price`]) takes the cheapest worker with a free slot, the fastest among equals.
//!
//! After [`SelectionConfig::failures_before_cooldown`] failures in a row a worker cools down for
//! `cooldown_base × 2^k` (capped at `cooldown_max`), `k` counting the cool-downs since its last
//! success. When the cool-down ends it gets one request again; another failure sends it back for
//! twice as long, a success clears its record. Failures of requests that were already running
//! while it cooled down do not lengthen the cool-down.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::MarketError;
use crate::ids::WorkerId;
use crate::pricing::Coefficient;

/// The base model of a model name: the text before the first `@` (all of it when there is none).
///
/// Workers name their model `base@variant`; clients ask for the base.
pub fn base_model(name: &str) -> &str {
    cocoon_protocol::model_name::base_name(name)
}

/// How a client wants its worker chosen among the candidates (all within its maximum
/// coefficient).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preference {
    /// The lowest expected latency (the proxy's default).
    #[default]
    Latency,
    /// The lowest coefficient; the lowest latency among equals.
    Price,
    /// A weighted mix: the price's weight in percent (0 = latency, 100 = price).
    Mix(u8),
}

/// Where a [`Preference`] travels in `client.runQueryEx` and `ext.runSealedQuery`: bits 16–23
/// of their `flags` (`cocoon_protocol::messages::WORKER_PREFERENCE_FLAGS`, an extension our
/// decoders accept; no field lies behind them). 0 there means no preference (the proxy's
/// default); `1 + w` a price weight of `w` percent.
const PREFERENCE_SHIFT: u32 = 16;

impl Preference {
    /// The price's weight in `[0, 1]`.
    pub fn price_weight(self) -> f64 {
        match self {
            Self::Latency => 0.0,
            Self::Price => 1.0,
            Self::Mix(percent) => f64::from(percent.min(100)) / 100.0,
        }
    }

    /// The preference as `client.runQueryEx` flag bits (to OR into `flags`).
    pub fn to_query_flags(self) -> u32 {
        let percent: u32 = match self {
            Self::Latency => 0,
            Self::Price => 100,
            Self::Mix(p) => u32::from(p.min(100)),
        };
        (percent + 1) << PREFERENCE_SHIFT
    }

    /// The preference carried in `client.runQueryEx` flags, if any. Values above 100 % (which no
    /// client of ours sends) count as price.
    pub fn from_query_flags(flags: u32) -> Option<Self> {
        let code = (flags >> PREFERENCE_SHIFT) & 0xff;
        match code {
            0 => None,
            1 => Some(Self::Latency),
            101.. => Some(Self::Price),
            // 2..=100 fits in a u8.
            _ => Some(Self::Mix(u8::try_from(code - 1).unwrap_or(100))),
        }
    }
}

impl fmt::Display for Preference {
    /// As clients write it: `latency`, `price` or `mix:W`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Latency => f.write_str("latency"),
            Self::Price => f.write_str("price"),
            Self::Mix(w) => write!(f, "mix:{w}"),
        }
    }
}

impl std::str::FromStr for Preference {
    type Err = MarketError;

    /// `latency`, `price`, or `mix:W` with `W` the price's weight in percent (0 to 100).
    fn from_str(s: &str) -> Result<Self, MarketError> {
        match s.trim() {
            "latency" => Ok(Self::Latency),
            "price" => Ok(Self::Price),
            other => other
                .strip_prefix("mix:")
                .and_then(|w| w.parse::<u8>().ok())
                .filter(|w| *w <= 100)
                .map(Self::Mix)
                .ok_or(MarketError::InvalidPreference),
        }
    }
}

/// What the proxy knows about a worker from its handshake and later notices.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// The model name the worker announced (`base@variant` or just `base`).
    pub model: String,
    /// The worker's price factor.
    pub coefficient: Coefficient,
    /// Requests the worker runs at once, over all proxies.
    pub max_active_requests: u32,
    /// How many proxies the worker serves (its capacity is shared among them; 0 counts as 1).
    pub proxy_count: u32,
    /// Whether the worker accepts requests.
    pub enabled: bool,
}

impl WorkerInfo {
    /// The base model the worker serves.
    pub fn base_model(&self) -> &str {
        base_model(&self.model)
    }

    /// Requests this proxy may run on the worker at once:
    /// `ceil(max_active_requests / proxy_count)`.
    pub fn capacity(&self) -> u32 {
        self.max_active_requests.div_ceil(self.proxy_count.max(1))
    }
}

/// Tuning of the reputation the selector keeps.
#[derive(Clone, Copy, PartialEq, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SelectionConfig {
    /// Weight of the newest observation in every moving average, in `(0, 1]`.
    pub ewma_weight: f64,
    /// Consecutive failures that start a cool-down (at least 1).
    pub failures_before_cooldown: u32,
    /// The first cool-down, in milliseconds.
    pub cooldown_base_ms: u64,
    /// The longest cool-down, in milliseconds (at least `cooldown_base_ms`).
    pub cooldown_max_ms: u64,
    /// Latency assumed for every worker while no candidate has finished a request (positive).
    pub default_latency_ms: f64,
    /// Floor of the success probability in the score, in `(0, 1]`, so a worker with a bad record
    /// still ranks (far behind) when it is the only one.
    pub min_success_probability: f64,
}

impl Default for SelectionConfig {
    fn default() -> Self {
        Self {
            ewma_weight: 0.2,
            failures_before_cooldown: 3,
            cooldown_base_ms: 1_000,
            cooldown_max_ms: 60_000,
            default_latency_ms: 1_000.0,
            min_success_probability: 0.05,
        }
    }
}

impl SelectionConfig {
    /// Checks that every field is in range.
    pub fn validate(&self) -> Result<(), MarketError> {
        let err = |m| Err(MarketError::InvalidSelectionConfig(m));
        if !(self.ewma_weight > 0.0 && self.ewma_weight <= 1.0) {
            return err("ewma_weight must be in (0, 1]");
        }
        if self.failures_before_cooldown == 0 {
            return err("failures_before_cooldown must be at least 1");
        }
        if self.cooldown_max_ms < self.cooldown_base_ms {
            return err("cooldown_max_ms must be at least cooldown_base_ms");
        }
        if !(self.default_latency_ms.is_finite() && self.default_latency_ms > 0.0) {
            return err("default_latency_ms must be positive and finite");
        }
        if !(self.min_success_probability > 0.0 && self.min_success_probability <= 1.0) {
            return err("min_success_probability must be in (0, 1]");
        }
        Ok(())
    }
}

/// How a dispatched request ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Outcome {
    /// The worker answered completely.
    Success,
    /// The worker failed, timed out or answered an error of its own.
    Failure,
    /// The request ended for a reason that says nothing about the worker (the client went
    /// away): the slot is freed, the reputation untouched.
    Cancelled,
}

/// A request in flight on a worker, from [`WorkerSelector::on_start`] to
/// [`WorkerSelector::on_finish`]. The proxy keeps it with the request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Dispatch {
    worker: WorkerId,
    epoch: u64,
    coefficient: Coefficient,
    started: Instant,
    first_byte: Option<Instant>,
}

impl Dispatch {
    /// The worker the request went to.
    pub fn worker(&self) -> WorkerId {
        self.worker
    }

    /// The worker's coefficient when the request was sent: the one to charge it at (and to put
    /// in `proxy.runQueryEx`), even if the worker changes its price before the request ends.
    pub fn coefficient(&self) -> Coefficient {
        self.coefficient
    }

    /// When it was sent.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// When the first answer byte came back, if it did.
    pub fn first_byte(&self) -> Option<Instant> {
        self.first_byte
    }
}

/// Why no worker could take a request: the refusal of the candidate that came closest.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Unavailability {
    /// No worker serves the model.
    UnknownModel,
    /// Every worker of the model is disabled.
    AllDisabled,
    /// Every enabled worker was already tried for this request.
    AllTried,
    /// Every remaining worker is dearer than the client's maximum coefficient.
    AboveMaxCoefficient {
        /// The cheapest of them.
        cheapest: Coefficient,
    },
    /// Every remaining worker is cooling down after repeated failures.
    AllCoolingDown {
        /// Milliseconds until the first cool-down ends.
        retry_in_ms: u64,
    },
    /// Every remaining worker is running as many requests as it may.
    AllBusy,
}

impl fmt::Display for Unavailability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownModel => f.write_str("no worker serves this model"),
            Self::AllDisabled => f.write_str("every worker of this model is disabled"),
            Self::AllTried => f.write_str("every worker was already tried for this request"),
            Self::AboveMaxCoefficient { cheapest } => write!(
                f,
                "every worker is above the maximum coefficient (cheapest: {cheapest})"
            ),
            Self::AllCoolingDown { retry_in_ms } => write!(
                f,
                "every worker is cooling down after failures (retry in {retry_in_ms} ms)"
            ),
            Self::AllBusy => f.write_str("every worker is at capacity"),
        }
    }
}

/// A read-only view of one worker, for stats pages.
#[derive(Clone, PartialEq, Debug, Serialize)]
pub struct WorkerStats {
    /// The model name the worker announced.
    pub model: String,
    /// Requests running on it from this proxy.
    pub running: u32,
    /// Requests this proxy may run on it at once (see [`WorkerInfo::capacity`]).
    pub max: u32,
    /// EWMA of outcomes, 1 = always succeeds.
    pub success_rate: f64,
    /// EWMA of total request time in milliseconds, once a request has succeeded.
    pub ewma_latency_ms: Option<f64>,
    /// EWMA of time to first byte in milliseconds, once a first byte has arrived.
    pub ewma_ttfb_ms: Option<f64>,
    /// Its coefficient.
    pub coefficient: Coefficient,
    /// Whether it accepts requests.
    pub enabled: bool,
    /// Requests it completed.
    pub completed: u64,
    /// Requests it failed.
    pub failed: u64,
    /// Failures since its last success.
    pub consecutive_failures: u32,
    /// Milliseconds of cool-down left, if it is cooling down.
    pub cooldown_remaining_ms: Option<u64>,
    /// Usages it reported above what their request could use (charged at the bound).
    pub metering_violations: u64,
}

/// One worker in a [`ModelSummary`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub struct WorkerLoad {
    /// The worker.
    pub id: WorkerId,
    /// Its coefficient.
    pub coefficient: Coefficient,
    /// Requests running on it from this proxy.
    pub running: u32,
    /// Requests this proxy may run on it at once.
    pub max: u32,
}

/// What a client can read about one model's market: how many workers, how busy, at what prices.
/// Computed from the per-worker figures `client.workerTypesV2` already carries, so that clients
/// and proxies show the same numbers without a new message.
#[derive(Clone, Copy, PartialEq, Debug, Default, Serialize, Deserialize)]
pub struct MarketSignals {
    /// Workers serving the model.
    pub workers: u32,
    /// Requests running on them (from this proxy).
    pub running: u64,
    /// Requests they may run at once (this proxy's share).
    pub capacity: u64,
    /// `running / capacity` (0 when there is no capacity).
    pub utilisation: f64,
    /// Workers with a free slot now.
    pub workers_free: u32,
    /// Lowest coefficient.
    pub coefficient_min: u32,
    /// Lower quartile of the coefficients (the lower one at an even split).
    pub coefficient_p25: u32,
    /// Median coefficient (the lower middle one for an even count).
    pub coefficient_median: u32,
    /// Upper quartile of the coefficients.
    pub coefficient_p75: u32,
    /// Highest coefficient.
    pub coefficient_max: u32,
    /// Lowest coefficient among the workers with a free slot (`None` when all are busy).
    pub coefficient_min_free: Option<u32>,
}

impl MarketSignals {
    /// Signals from each worker's `(coefficient, running, max)`.
    pub fn from_workers(workers: impl IntoIterator<Item = (u32, u32, u32)>) -> Self {
        let mut all: Vec<(u32, u32, u32)> = workers.into_iter().collect();
        all.sort_unstable();
        let n = all.len();
        if n == 0 {
            return Self::default();
        }
        let at = |q: usize| all[(n - 1) * q / 4].0;
        let running: u64 = all.iter().map(|w| u64::from(w.1)).sum();
        let capacity: u64 = all.iter().map(|w| u64::from(w.2)).sum();
        let free: Vec<u32> = all.iter().filter(|w| w.1 < w.2).map(|w| w.0).collect();
        Self {
            workers: u32::try_from(n).unwrap_or(u32::MAX),
            running,
            capacity,
            utilisation: if capacity == 0 {
                0.0
            } else {
                running as f64 / capacity as f64
            },
            workers_free: u32::try_from(free.len()).unwrap_or(u32::MAX),
            coefficient_min: at(0),
            coefficient_p25: at(1),
            coefficient_median: at(2),
            coefficient_p75: at(3),
            coefficient_max: at(4),
            coefficient_min_free: free.first().copied(),
        }
    }
}

/// The enabled workers of one base model, as `client.getWorkerTypes(V2)` reports them.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ModelSummary {
    /// The base model.
    pub name: String,
    /// Enabled workers serving it.
    pub active_workers: u32,
    /// The lowest coefficient.
    pub coefficient_min: Coefficient,
    /// The median coefficient (the lower middle one for an even count).
    pub coefficient_median: Coefficient,
    /// The highest coefficient.
    pub coefficient_max: Coefficient,
    /// The workers, cheapest first (then by id).
    pub workers: Vec<WorkerLoad>,
}

impl ModelSummary {
    /// The model's load and price distribution.
    pub fn signals(&self) -> MarketSignals {
        MarketSignals::from_workers(
            self.workers
                .iter()
                .map(|w| (w.coefficient.get(), w.running, w.max)),
        )
    }
}

#[derive(Clone, Debug)]
struct WorkerState {
    info: WorkerInfo,
    epoch: u64,
    running: u32,
    completed: u64,
    failed: u64,
    success_rate: f64,
    latency_ms: Option<f64>,
    ttfb_ms: Option<f64>,
    consecutive_failures: u32,
    cooldowns: u32,
    cooldown_until: Option<Instant>,
    metering_violations: u64,
}

impl WorkerState {
    fn new(info: WorkerInfo, epoch: u64) -> Self {
        Self {
            info,
            epoch,
            running: 0,
            completed: 0,
            failed: 0,
            success_rate: 1.0,
            latency_ms: None,
            ttfb_ms: None,
            consecutive_failures: 0,
            cooldowns: 0,
            cooldown_until: None,
            metering_violations: 0,
        }
    }

    fn cooling(&self, now: Instant) -> Option<Duration> {
        self.cooldown_until
            .filter(|&until| until > now)
            .map(|until| until - now)
    }
}

/// Candidate filters in the order they are applied; a worker refused later came closer.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Refusal {
    Disabled,
    Excluded,
    TooDear,
    Cooling,
    Busy,
}

/// A failure's weight on a worker's reputation: success rate, failure streak, cool-down.
fn penalize(state: &mut WorkerState, config: &SelectionConfig, now: Instant) {
    state.failed = state.failed.saturating_add(1);
    state.success_rate = ewma(Some(state.success_rate), 0.0, config.ewma_weight);
    state.consecutive_failures = state.consecutive_failures.saturating_add(1);
    if state.consecutive_failures >= config.failures_before_cooldown && state.cooling(now).is_none()
    {
        let factor = 1u64.checked_shl(state.cooldowns).unwrap_or(u64::MAX);
        let ms = config
            .cooldown_base_ms
            .saturating_mul(factor)
            .min(config.cooldown_max_ms);
        state.cooldown_until = now.checked_add(Duration::from_millis(ms));
        state.cooldowns = state.cooldowns.saturating_add(1);
    }
}

fn ewma(old: Option<f64>, sample: f64, weight: f64) -> f64 {
    match old {
        Some(old) => old + weight * (sample - old),
        None => sample,
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn millis_u64(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Picks workers for requests and keeps their reputation. Sans-IO: every call that depends on
/// time takes `now`.
#[derive(Clone, Debug)]
pub struct WorkerSelector {
    config: SelectionConfig,
    workers: BTreeMap<WorkerId, WorkerState>,
    next_epoch: u64,
}

impl Default for WorkerSelector {
    fn default() -> Self {
        Self {
            config: SelectionConfig::default(),
            workers: BTreeMap::new(),
            next_epoch: 1,
        }
    }
}

impl WorkerSelector {
    /// An empty selector.
    pub fn new(config: SelectionConfig) -> Result<Self, MarketError> {
        config.validate()?;
        Ok(Self {
            config,
            ..Self::default()
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SelectionConfig {
        &self.config
    }

    /// Number of known workers.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Whether no worker is known.
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Adds a worker, or updates what is known about it. Its reputation is kept unless it now
    /// serves another base model.
    pub fn upsert_worker(&mut self, id: WorkerId, info: WorkerInfo) {
        match self.workers.get_mut(&id) {
            Some(state) => {
                if state.info.base_model() != info.base_model() {
                    let (epoch, running) = (state.epoch, state.running);
                    *state = WorkerState {
                        running,
                        ..WorkerState::new(info, epoch)
                    };
                } else {
                    state.info = info;
                }
            }
            None => {
                let epoch = self.next_epoch;
                self.next_epoch += 1;
                self.workers.insert(id, WorkerState::new(info, epoch));
            }
        }
    }

    /// Forgets a worker (it disconnected). Requests still dispatched to it are ignored when they
    /// finish. Answers whether it was known.
    pub fn remove_worker(&mut self, id: WorkerId) -> bool {
        self.workers.remove(&id).is_some()
    }

    /// Enables or disables a worker (`worker.enabledDisabled`). Answers whether it is known.
    pub fn set_enabled(&mut self, id: WorkerId, enabled: bool) -> bool {
        self.workers
            .get_mut(&id)
            .map(|s| s.info.enabled = enabled)
            .is_some()
    }

    /// Changes a worker's coefficient (`worker.newCoefficient`). Answers whether it is known.
    pub fn set_coefficient(&mut self, id: WorkerId, coefficient: Coefficient) -> bool {
        self.workers
            .get_mut(&id)
            .map(|s| s.info.coefficient = coefficient)
            .is_some()
    }

    /// What is known about a worker.
    pub fn worker_info(&self, id: WorkerId) -> Option<&WorkerInfo> {
        self.workers.get(&id).map(|s| &s.info)
    }

    /// The best worker for a request for `model` from a client accepting coefficients up to
    /// `max_coefficient`, not in `exclude` (see the module documentation for the rules).
    pub fn select(
        &self,
        model: &str,
        max_coefficient: Coefficient,
        exclude: &[WorkerId],
        now: Instant,
    ) -> Result<WorkerId, MarketError> {
        self.select_with(model, max_coefficient, exclude, Preference::Latency, now)
    }

    /// [`select`](Self::select) ranking the candidates by the client's `preference`.
    pub fn select_with(
        &self,
        model: &str,
        max_coefficient: Coefficient,
        exclude: &[WorkerId],
        preference: Preference,
        now: Instant,
    ) -> Result<WorkerId, MarketError> {
        let wanted = base_model(model);
        let mut candidates: Vec<(WorkerId, &WorkerState)> = Vec::new();
        let mut closest: Option<Refusal> = None;
        let mut cheapest_too_dear: Option<Coefficient> = None;
        let mut soonest_cool: Option<Duration> = None;
        let (mut latency_sum, mut latency_count) = (0.0, 0u32);
        for (&id, state) in &self.workers {
            if state.info.base_model() != wanted {
                continue;
            }
            if let Some(latency) = state.latency_ms {
                latency_sum += latency;
                latency_count += 1;
            }
            let refusal = if !state.info.enabled {
                Some(Refusal::Disabled)
            } else if exclude.contains(&id) {
                Some(Refusal::Excluded)
            } else if state.info.coefficient > max_coefficient {
                cheapest_too_dear = Some(
                    cheapest_too_dear
                        .map_or(state.info.coefficient, |c| c.min(state.info.coefficient)),
                );
                Some(Refusal::TooDear)
            } else if let Some(left) = state.cooling(now) {
                soonest_cool = Some(soonest_cool.map_or(left, |s| s.min(left)));
                Some(Refusal::Cooling)
            } else if state.running >= state.info.capacity() {
                Some(Refusal::Busy)
            } else {
                None
            };
            match refusal {
                Some(r) => closest = closest.max(Some(r)),
                None => candidates.push((id, state)),
            }
        }

        let prior = if latency_count == 0 {
            self.config.default_latency_ms
        } else {
            latency_sum / f64::from(latency_count)
        };
        let floor = self.config.min_success_probability;
        let scored: Vec<(f64, Coefficient, WorkerId)> = candidates
            .iter()
            .map(|&(id, s)| {
                let latency = s.latency_ms.unwrap_or(prior);
                let score =
                    latency * f64::from(s.running.saturating_add(1)) / s.success_rate.max(floor);
                (score, s.info.coefficient, id)
            })
            .collect();
        let w = preference.price_weight();
        let best_score = scored.iter().map(|c| c.0).fold(f64::INFINITY, f64::min);
        let cheapest = scored.iter().map(|c| c.1.get()).min().unwrap_or(0).max(1);
        let rank = |&(score, c, _): &(f64, Coefficient, WorkerId)| {
            let speed = if w < 1.0 && best_score > 0.0 {
                (1.0 - w) * (score / best_score).ln()
            } else {
                0.0
            };
            let price = if w > 0.0 {
                w * (f64::from(c.get().max(1)) / f64::from(cheapest)).ln()
            } else {
                0.0
            };
            speed + price
        };
        let best = scored.iter().min_by(|a, b| {
            rank(a)
                .total_cmp(&rank(b))
                .then(a.0.total_cmp(&b.0))
                .then(a.1.cmp(&b.1))
                .then(a.2.cmp(&b.2))
        });
        if let Some(&(_, _, id)) = best {
            return Ok(id);
        }

        let reason = match closest {
            None => Unavailability::UnknownModel,
            Some(Refusal::Disabled) => Unavailability::AllDisabled,
            Some(Refusal::Excluded) => Unavailability::AllTried,
            Some(Refusal::TooDear) => Unavailability::AboveMaxCoefficient {
                cheapest: cheapest_too_dear.unwrap_or(Coefficient::MAX),
            },
            Some(Refusal::Cooling) => Unavailability::AllCoolingDown {
                retry_in_ms: soonest_cool.map_or(0, millis_u64),
            },
            Some(Refusal::Busy) => Unavailability::AllBusy,
        };
        Err(MarketError::NoWorkerAvailable {
            model: model.to_owned(),
            reason,
        })
    }

    /// [`select`](Self::select) and [`on_start`](Self::on_start) in one step.
    pub fn dispatch(
        &mut self,
        model: &str,
        max_coefficient: Coefficient,
        exclude: &[WorkerId],
        now: Instant,
    ) -> Result<Dispatch, MarketError> {
        self.dispatch_with(model, max_coefficient, exclude, Preference::Latency, now)
    }

    /// [`select_with`](Self::select_with) and [`on_start`](Self::on_start) in one step.
    pub fn dispatch_with(
        &mut self,
        model: &str,
        max_coefficient: Coefficient,
        exclude: &[WorkerId],
        preference: Preference,
        now: Instant,
    ) -> Result<Dispatch, MarketError> {
        let id = self.select_with(model, max_coefficient, exclude, preference, now)?;
        // `select` only returns known workers.
        self.on_start(id, now)
            .ok_or(MarketError::NoWorkerAvailable {
                model: model.to_owned(),
                reason: Unavailability::UnknownModel,
            })
    }

    /// A request was sent to `id` at `now`. `None` if the worker is unknown.
    pub fn on_start(&mut self, id: WorkerId, now: Instant) -> Option<Dispatch> {
        let state = self.workers.get_mut(&id)?;
        state.running = state.running.saturating_add(1);
        Some(Dispatch {
            worker: id,
            epoch: state.epoch,
            coefficient: state.info.coefficient,
            started: now,
            first_byte: None,
        })
    }

    /// The first byte of the answer to `dispatch` arrived at `now` (later calls are ignored).
    pub fn on_first_byte(&mut self, dispatch: &mut Dispatch, now: Instant) {
        if dispatch.first_byte.is_some() {
            return;
        }
        dispatch.first_byte = Some(now);
        let weight = self.config.ewma_weight;
        if let Some(state) = self.current(dispatch) {
            let ttfb = millis(now.saturating_duration_since(dispatch.started));
            state.ttfb_ms = Some(ewma(state.ttfb_ms, ttfb, weight));
        }
    }

    /// The request of `dispatch` ended at `now` with `outcome`.
    pub fn on_finish(&mut self, dispatch: Dispatch, outcome: Outcome, now: Instant) {
        let config = self.config;
        let Some(state) = self.current(&dispatch) else {
            return;
        };
        state.running = state.running.saturating_sub(1);
        let weight = config.ewma_weight;
        match outcome {
            Outcome::Success => {
                state.completed = state.completed.saturating_add(1);
                let latency = millis(now.saturating_duration_since(dispatch.started));
                state.latency_ms = Some(ewma(state.latency_ms, latency, weight));
                state.success_rate = ewma(Some(state.success_rate), 1.0, weight);
                state.consecutive_failures = 0;
                state.cooldowns = 0;
                state.cooldown_until = None;
            }
            Outcome::Failure => penalize(state, &config, now),
            Outcome::Cancelled => {}
        }
    }

    /// The worker reported more tokens than its request could use: counted in its stats for
    /// the operator. The request itself is to be finished with [`Outcome::Failure`], so that the
    /// worker's success rate drops and repeated violations cool it down like other failures.
    pub fn on_metering_violation(&mut self, id: WorkerId) {
        if let Some(state) = self.workers.get_mut(&id) {
            state.metering_violations = state.metering_violations.saturating_add(1);
        }
    }

    /// A worker's stats at `now`.
    pub fn worker_stats(&self, id: WorkerId, now: Instant) -> Option<WorkerStats> {
        self.workers.get(&id).map(|s| WorkerStats {
            model: s.info.model.clone(),
            running: s.running,
            max: s.info.capacity(),
            success_rate: s.success_rate,
            ewma_latency_ms: s.latency_ms,
            ewma_ttfb_ms: s.ttfb_ms,
            coefficient: s.info.coefficient,
            enabled: s.info.enabled,
            completed: s.completed,
            failed: s.failed,
            consecutive_failures: s.consecutive_failures,
            cooldown_remaining_ms: s.cooling(now).map(millis_u64),
            metering_violations: s.metering_violations,
        })
    }

    /// Every worker's stats at `now`, ordered by id.
    pub fn snapshot(&self, now: Instant) -> Vec<(WorkerId, WorkerStats)> {
        self.workers
            .keys()
            .filter_map(|&id| self.worker_stats(id, now).map(|s| (id, s)))
            .collect()
    }

    /// The enabled workers grouped by base model, ordered by model name; models without an
    /// enabled worker are left out.
    pub fn model_summaries(&self) -> Vec<ModelSummary> {
        let mut by_model: BTreeMap<&str, Vec<WorkerLoad>> = BTreeMap::new();
        for (&id, s) in &self.workers {
            if s.info.enabled {
                by_model
                    .entry(s.info.base_model())
                    .or_default()
                    .push(WorkerLoad {
                        id,
                        coefficient: s.info.coefficient,
                        running: s.running,
                        max: s.info.capacity(),
                    });
            }
        }
        by_model
            .into_iter()
            .filter_map(|(name, mut workers)| {
                workers.sort_by_key(|w| (w.coefficient, w.id));
                let first = workers.first()?.coefficient;
                let last = workers.last()?.coefficient;
                let median = workers.get((workers.len() - 1) / 2)?.coefficient;
                Some(ModelSummary {
                    name: name.to_owned(),
                    active_workers: u32::try_from(workers.len()).unwrap_or(u32::MAX),
                    coefficient_min: first,
                    coefficient_median: median,
                    coefficient_max: last,
                    workers,
                })
            })
            .collect()
    }

    /// The summary of one base model (`model` may carry a `@variant`).
    pub fn model_summary(&self, model: &str) -> Option<ModelSummary> {
        let wanted = base_model(model);
        self.model_summaries()
            .into_iter()
            .find(|m| m.name == wanted)
    }

    fn current(&mut self, dispatch: &Dispatch) -> Option<&mut WorkerState> {
        self.workers
            .get_mut(&dispatch.worker)
            .filter(|s| s.epoch == dispatch.epoch)
    }
}
