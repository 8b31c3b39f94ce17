//! A simulated market: the real [`WorkerSelector`] and [`PriceController`] driven by seeded,
//! simulated demand, so that how prices follow load and what clients pay and wait under each
//! [`Preference`] can be measured and tested without a network. Nothing here is a real worker:
//! service times come from a simple model (a fixed time to first token plus the completion at a
//! per-request speed that falls as the worker fills up).
//!
//! The run is deterministic: simulated time advances in fixed steps from one base instant, and
//! arrivals, client kinds and answer lengths come from a [`SplitMix64`] seeded by the scenario.
//! No thread, no clock: the base instant is an argument.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::MarketError;
use crate::ids::WorkerId;
use crate::price_policy::{LoadSample, PriceController, PricePolicy};
use crate::pricing::{Coefficient, PricingParams, TokenCounts};
use crate::selection::{
    Dispatch, Outcome, Preference, SelectionConfig, WorkerInfo, WorkerSelector,
};

const MODEL: &str = "sim-model";

/// A small seeded generator (SplitMix64): enough for arrivals and lengths, and the same numbers
/// on every platform.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A Poisson-distributed count with mean `mean` (Knuth's method; fine for small means).
    pub fn poisson(&mut self, mean: f64) -> u32 {
        let limit = (-mean).exp();
        let (mut k, mut p) = (0u32, 1.0);
        loop {
            p *= self.unit();
            if p <= limit {
                return k;
            }
            k += 1;
        }
    }
}

/// One simulated worker.
#[derive(Clone, Debug)]
pub struct SimWorker {
    /// Completion tokens per second one request gets on an idle worker.
    pub speed_tps: f64,
    /// Requests it runs at once.
    pub capacity: u32,
    /// Its pricing policy.
    pub policy: PricePolicy,
    /// Its coefficient at the start.
    pub start: Coefficient,
}

/// A kind of client and its share of the requests.
#[derive(Clone, Debug)]
pub struct SimClients {
    /// A name for the tables.
    pub name: String,
    /// How it wants workers chosen.
    pub preference: Preference,
    /// The highest coefficient it accepts.
    pub max_coefficient: Coefficient,
    /// Its share of the arrivals (relative to the other kinds).
    pub share: f64,
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Seed of every random draw.
    pub seed: u64,
    /// Simulated seconds.
    pub duration_secs: u32,
    /// Requests per second at the start and the end.
    pub base_rate: f64,
    /// Requests per second at the peak.
    pub peak_rate: f64,
    /// Seconds between two pricing samples of each worker.
    pub pricing_tick_secs: u32,
    /// Prompt tokens of every request.
    pub prompt_tokens: u32,
    /// Completion tokens of a request, drawn uniformly from this range (inclusive).
    pub completion_tokens: (u32, u32),
    /// The workers.
    pub workers: Vec<SimWorker>,
    /// The clients.
    pub clients: Vec<SimClients>,
}

impl Scenario {
    /// Requests per second at `t` seconds: the base rate, rising linearly to the peak over the
    /// first quarter, the peak for the second quarter, falling back over the third, the base for
    /// the last.
    pub fn demand(&self, t: f64) -> f64 {
        let q = f64::from(self.duration_secs) / 4.0;
        let span = self.peak_rate - self.base_rate;
        let shape = if t < q {
            t / q
        } else if t < 2.0 * q {
            1.0
        } else if t < 3.0 * q {
            1.0 - (t - 2.0 * q) / q
        } else {
            0.0
        };
        self.base_rate + span * shape
    }
}

/// One second of the run.
#[derive(Clone, Debug, PartialEq)]
pub struct SecondSample {
    /// Seconds since the start.
    pub t: u32,
    /// Demand then, requests per second.
    pub demand: f64,
    /// Each worker's coefficient (thousandths).
    pub coefficients: Vec<u32>,
    /// Each worker's busy share of its slots.
    pub utilisation: Vec<f64>,
}

/// What one kind of client got.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ClientReport {
    /// The kind's name.
    pub name: String,
    /// Requests served.
    pub served: u64,
    /// Requests refused (no worker within its maximum had a free slot).
    pub refused: u64,
    /// Mean request time in milliseconds.
    pub mean_latency_ms: f64,
    /// 95th percentile request time in milliseconds.
    pub p95_latency_ms: f64,
    /// NanoTON paid in all.
    pub spend_nanoton: u128,
    /// Mean coefficient paid (thousandths), weighted by requests.
    pub mean_coefficient: f64,
}

/// The outcome of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct SimReport {
    /// Every second's state.
    pub seconds: Vec<SecondSample>,
    /// Per kind of client.
    pub clients: Vec<ClientReport>,
    /// Completion tokens each worker served.
    pub tokens_served: Vec<u64>,
    /// Each worker's price changes: (second, new coefficient).
    pub changes: Vec<Vec<(f64, u32)>>,
}

impl SimReport {
    /// How often each worker's price turned around (a rise after a fall or the reverse).
    pub fn reversals(&self) -> Vec<usize> {
        self.changes
            .iter()
            .map(|changes| {
                let mut last_dir = 0i8;
                let mut prev: Option<u32> = None;
                let mut count = 0;
                for &(_, c) in changes {
                    if let Some(p) = prev {
                        let dir = if c > p { 1 } else { -1 };
                        if last_dir != 0 && dir != last_dir {
                            count += 1;
                        }
                        last_dir = dir;
                    }
                    prev = Some(c);
                }
                count
            })
            .collect()
    }

    /// The mean over workers of the coefficient, at each second.
    pub fn mean_coefficients(&self) -> Vec<f64> {
        self.seconds
            .iter()
            .map(|s| {
                s.coefficients.iter().map(|&c| f64::from(c)).sum::<f64>()
                    / s.coefficients.len().max(1) as f64
            })
            .collect()
    }
}

struct Running {
    ends: Instant,
    worker: usize,
    dispatch: Dispatch,
}

#[derive(Default)]
struct ClientBook {
    latencies: Vec<f64>,
    refused: u64,
    spend: u128,
    coefficient_sum: f64,
}

/// Runs `scenario` in simulated time steps of 100 ms from the base instant `t0` (any instant:
/// only differences from it are used).
pub fn run(scenario: &Scenario, t0: Instant) -> Result<SimReport, MarketError> {
    let step = Duration::from_millis(100);
    let mut rng = SplitMix64::new(scenario.seed);
    let mut selector = WorkerSelector::new(SelectionConfig::default())?;
    let mut prices = Vec::with_capacity(scenario.workers.len());
    let ids: Vec<WorkerId> = (0..scenario.workers.len())
        .map(|i| WorkerId(i as u64 + 1))
        .collect();
    for (w, &id) in scenario.workers.iter().zip(&ids) {
        let controller = PriceController::new(w.policy, w.start)?;
        selector.upsert_worker(
            id,
            WorkerInfo {
                model: MODEL.into(),
                coefficient: controller.current(),
                max_active_requests: w.capacity,
                proxy_count: 1,
                enabled: true,
            },
        );
        prices.push(controller);
    }
    let pricing = PricingParams::default();
    let total_share: f64 = scenario.clients.iter().map(|c| c.share).sum();
    let mut books: Vec<ClientBook> = scenario
        .clients
        .iter()
        .map(|_| ClientBook::default())
        .collect();
    let mut running: Vec<Running> = Vec::new();
    let mut load = vec![0u32; scenario.workers.len()];
    let mut tokens_served = vec![0u64; scenario.workers.len()];
    let mut changes = vec![Vec::new(); scenario.workers.len()];
    let mut seconds = Vec::new();
    let steps = u64::from(scenario.duration_secs) * 10;
    let tick_steps = u64::from(scenario.pricing_tick_secs.max(1)) * 10;
    for n in 0..steps {
        let now = t0 + step * u32::try_from(n).unwrap_or(u32::MAX);
        let t = n as f64 / 10.0;
        // Answers that ended by now.
        let mut i = 0;
        while i < running.len() {
            if running[i].ends <= now {
                let done = running.swap_remove(i);
                load[done.worker] -= 1;
                selector.on_finish(done.dispatch, Outcome::Success, done.ends);
            } else {
                i += 1;
            }
        }
        // New requests.
        let arrivals = rng.poisson(scenario.demand(t) * step.as_secs_f64());
        for _ in 0..arrivals {
            let mut pick = rng.unit() * total_share;
            let kind = scenario
                .clients
                .iter()
                .position(|c| {
                    pick -= c.share;
                    pick < 0.0
                })
                .unwrap_or(0);
            let Some(client) = scenario.clients.get(kind) else {
                continue;
            };
            let (lo, hi) = scenario.completion_tokens;
            let completion = lo + (rng.unit() * f64::from(hi.saturating_sub(lo) + 1)) as u32;
            match selector.dispatch_with(MODEL, client.max_coefficient, &[], client.preference, now)
            {
                Ok(dispatch) => {
                    let w = ids
                        .iter()
                        .position(|&id| id == dispatch.worker())
                        .unwrap_or(0);
                    let spec = &scenario.workers[w];
                    let busy = f64::from(load[w]) / f64::from(spec.capacity.max(1));
                    let speed = spec.speed_tps * (1.0 - 0.5 * busy);
                    let secs = 0.2 + f64::from(completion) / speed;
                    let ends = now + Duration::from_secs_f64(secs);
                    load[w] += 1;
                    tokens_served[w] += u64::from(completion);
                    let counts = TokenCounts {
                        prompt: u64::from(scenario.prompt_tokens),
                        cached: 0,
                        completion: u64::from(completion),
                        reasoning: 0,
                    };
                    let charge = pricing.charge(&counts, dispatch.coefficient())?;
                    let book = &mut books[kind];
                    book.latencies.push(secs * 1000.0);
                    book.spend += u128::from(charge.client_cost());
                    book.coefficient_sum += f64::from(dispatch.coefficient().get());
                    running.push(Running {
                        ends,
                        worker: w,
                        dispatch,
                    });
                }
                Err(MarketError::NoWorkerAvailable { .. }) => books[kind].refused += 1,
                Err(e) => return Err(e),
            }
        }
        // Each worker measures its load and re-prices itself.
        if n % tick_steps == 0 {
            for (w, controller) in prices.iter_mut().enumerate() {
                let sample = LoadSample {
                    running: load[w],
                    capacity: scenario.workers[w].capacity,
                    queued: 0,
                    market_median: None,
                };
                if let Some(c) = controller.on_sample(&sample, now) {
                    selector.set_coefficient(ids[w], c);
                    changes[w].push((t, c.get()));
                }
            }
        }
        if n % 10 == 0 {
            seconds.push(SecondSample {
                t: u32::try_from(n / 10).unwrap_or(u32::MAX),
                demand: scenario.demand(t),
                coefficients: prices.iter().map(|p| p.current().get()).collect(),
                utilisation: load
                    .iter()
                    .zip(&scenario.workers)
                    .map(|(&l, w)| f64::from(l) / f64::from(w.capacity.max(1)))
                    .collect(),
            });
        }
    }
    let clients = scenario
        .clients
        .iter()
        .zip(books)
        .map(|(c, mut b)| {
            b.latencies.sort_by(f64::total_cmp);
            let served = b.latencies.len();
            let p95 = b
                .latencies
                .get((served * 95 / 100).min(served.saturating_sub(1)))
                .copied()
                .unwrap_or(0.0);
            ClientReport {
                name: c.name.clone(),
                served: served as u64,
                refused: b.refused,
                mean_latency_ms: b.latencies.iter().sum::<f64>() / served.max(1) as f64,
                p95_latency_ms: p95,
                spend_nanoton: b.spend,
                mean_coefficient: b.coefficient_sum / served.max(1) as f64,
            }
        })
        .collect();
    Ok(SimReport {
        seconds,
        clients,
        tokens_served,
        changes,
    })
}

/// The scenario `docs/market.md` shows: eight workers (fast and slow, cheap and dear floors),
/// demand from 2 to 14 requests per second and back over 20 minutes, clients split between the
/// three preferences (or all of one kind with `only`).
pub fn reference_scenario(seed: u64, only: Option<Preference>) -> Scenario {
    let policy = |floor: u32, ceiling: u32| PricePolicy {
        policy: crate::price_policy::PolicyKind::Load,
        floor,
        ceiling,
        target_utilisation: 0.6,
        dead_band: 0.15,
        gain: 500.0,
        max_step: 100,
        min_interval_secs: 20,
        smoothing: 0.3,
        queue_weight: 1.0,
        market_weight: 0.0,
    };
    let worker = |speed_tps: f64, capacity: u32, floor: u32, ceiling: u32| SimWorker {
        speed_tps,
        capacity,
        policy: policy(floor, ceiling),
        start: Coefficient::new(floor).unwrap_or(Coefficient::ONE),
    };
    let workers = vec![
        worker(60.0, 16, 800, 2000),
        worker(60.0, 16, 1000, 2500),
        worker(40.0, 16, 600, 1500),
        worker(40.0, 16, 700, 1800),
        worker(30.0, 12, 500, 1200),
        worker(30.0, 12, 900, 2200),
        worker(80.0, 20, 1200, 3000),
        worker(25.0, 8, 500, 1000),
    ];
    let max = Coefficient::new(3000).unwrap_or(Coefficient::DEFAULT_CLIENT_MAX);
    let kind = |name: &str, preference| SimClients {
        name: name.into(),
        preference,
        max_coefficient: max,
        share: 1.0,
    };
    let clients = match only {
        Some(p) => vec![kind(preference_name(p).as_str(), p)],
        None => vec![
            kind("price", Preference::Price),
            kind("latency", Preference::Latency),
            kind("mix:50", Preference::Mix(50)),
        ],
    };
    Scenario {
        seed,
        duration_secs: 1200,
        base_rate: 2.0,
        peak_rate: 14.0,
        pricing_tick_secs: 1,
        prompt_tokens: 300,
        completion_tokens: (50, 400),
        workers,
        clients,
    }
}

/// A preference as clients write it (`latency`, `price`, `mix:W`).
pub fn preference_name(p: Preference) -> String {
    p.to_string()
}

/// A line chart as a self-contained SVG document: `series` are (label, points) over the same
/// x axis; no script, no external style.
pub fn svg_chart(title: &str, y_label: &str, xs: &[f64], series: &[(String, Vec<f64>)]) -> String {
    const W: f64 = 760.0;
    const H: f64 = 360.0;
    const LEFT: f64 = 60.0;
    const RIGHT: f64 = 150.0;
    const TOP: f64 = 30.0;
    const BOTTOM: f64 = 40.0;
    const COLOURS: [&str; 10] = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
        "#bcbd22", "#17becf",
    ];
    let x_max = xs.iter().copied().fold(f64::MIN, f64::max).max(1.0);
    let all = series.iter().flat_map(|(_, ys)| ys.iter().copied());
    let y_max = all.clone().fold(f64::MIN, f64::max);
    let y_min = all.fold(f64::MAX, f64::min).min(0.0);
    let y_max = if y_max > y_min { y_max } else { y_min + 1.0 };
    let px = |x: f64| LEFT + x / x_max * (W - LEFT - RIGHT);
    let py = |y: f64| TOP + (1.0 - (y - y_min) / (y_max - y_min)) * (H - TOP - BOTTOM);
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"18\" font-size=\"13\">{}</text>\n",
        escape(title)
    );
    for k in 0..=4 {
        let y = y_min + (y_max - y_min) * f64::from(k) / 4.0;
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{:.0}</text>",
            W - RIGHT,
            py(y),
            py(y),
            LEFT - 4.0,
            py(y) + 4.0,
            y
        );
        let x = x_max * f64::from(k) / 4.0;
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{:.0} s</text>",
            px(x),
            H - BOTTOM + 16.0,
            x
        );
    }
    let _ = writeln!(
        out,
        "<text transform=\"translate(14 {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        H / 2.0,
        escape(y_label)
    );
    for (i, (label, ys)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<String> = xs
            .iter()
            .zip(ys)
            .map(|(&x, &y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            out,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>\n\
             <rect x=\"{:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            points.join(" "),
            W - RIGHT + 10.0,
            TOP + 16.0 * i as f64,
            W - RIGHT + 24.0,
            TOP + 16.0 * i as f64 + 9.0,
            escape(label)
        );
    }
    out.push_str("</svg>\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_generator_is_seeded_and_uniform_enough() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        assert_eq!(a.next_u64(), b.next_u64());
        let mean = (0..10_000).map(|_| a.unit()).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
        let poisson = (0..10_000).map(|_| f64::from(a.poisson(3.0))).sum::<f64>() / 10_000.0;
        assert!((poisson - 3.0).abs() < 0.1, "{poisson}");
    }

    #[test]
    fn demand_rises_holds_and_falls() {
        let s = reference_scenario(1, None);
        assert_eq!(s.demand(0.0), 2.0);
        assert_eq!(s.demand(450.0), 14.0);
        assert_eq!(s.demand(1000.0), 2.0);
        assert!(s.demand(150.0) > 2.0 && s.demand(150.0) < 14.0);
    }

    #[test]
    fn the_chart_is_one_svg_document_with_every_series() {
        let svg = svg_chart(
            "t<1>",
            "y",
            &[0.0, 1.0, 2.0],
            &[
                ("a".into(), vec![1.0, 2.0, 3.0]),
                ("b".into(), vec![3.0, 2.0, 1.0]),
            ],
        );
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("t&lt;1&gt;"));
    }
}
