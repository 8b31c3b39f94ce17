//! The simulated market's claims as tests: prices stay within each worker's bounds, change no
//! faster than the policy allows, rise with demand and fall back after it, and clients who
//! choose by price move load toward the cheaper workers and pay less.

#![allow(clippy::unwrap_used)]

use std::time::Instant;

use cocoon_market::Preference;
use cocoon_market::simulation::{SimReport, reference_scenario, run};

const SEEDS: [u64; 3] = [14, 15, 16];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
fn the_same_seed_gives_the_same_market() {
    let a = run(&reference_scenario(14, None), Instant::now()).unwrap();
    let b = run(&reference_scenario(14, None), Instant::now()).unwrap();
    assert_eq!(a, b);
    let c = run(&reference_scenario(15, None), Instant::now()).unwrap();
    assert_ne!(a.tokens_served, c.tokens_served);
}

#[test]
fn prices_stay_within_bounds_and_change_no_faster_than_the_policy_allows() {
    for seed in SEEDS {
        let scenario = reference_scenario(seed, None);
        let r = run(&scenario, Instant::now()).unwrap();
        for (w, spec) in scenario.workers.iter().enumerate() {
            let p = spec.policy;
            for s in &r.seconds {
                let c = s.coefficients[w];
                assert!(p.floor <= c && c <= p.ceiling, "worker {w}: {c} at {}", s.t);
            }
            let changes = &r.changes[w];
            for pair in changes.windows(2) {
                let gap = pair[1].0 - pair[0].0;
                assert!(
                    gap >= p.min_interval_secs as f64 - 1e-9,
                    "worker {w}: {pair:?}"
                );
                let step = pair[1].1.abs_diff(pair[0].1);
                assert!(step <= p.max_step, "worker {w}: {pair:?}");
            }
            // No flapping: the price turns around far less often than the minimum interval
            // would allow (1200 s / 20 s = 60 changes at most).
            let reversals = r.reversals()[w];
            assert!(reversals <= 15, "worker {w}: {reversals} reversals");
        }
    }
}

#[test]
fn prices_rise_with_load_and_fall_back_when_it_drops() {
    for seed in SEEDS {
        let r = run(&reference_scenario(seed, None), Instant::now()).unwrap();
        let mean = r.mean_coefficients();
        let start = mean[0];
        let peak = median(mean[450..600].to_vec());
        let end = median(mean[1100..1200].to_vec());
        assert!(
            peak > start * 1.5,
            "seed {seed}: start {start}, peak {peak}"
        );
        assert!(end < peak * 0.7, "seed {seed}: peak {peak}, end {end}");
        assert!(end < start * 1.1, "seed {seed}: start {start}, end {end}");
        // Busy at the peak, mostly idle at the end.
        let busy = |range: std::ops::Range<usize>| {
            let v: Vec<f64> = r.seconds[range]
                .iter()
                .map(|s| s.utilisation.iter().sum::<f64>() / s.utilisation.len() as f64)
                .collect();
            median(v)
        };
        assert!(busy(450..600) > 2.0 * busy(1100..1200));
    }
}

fn cheap_share(r: &SimReport, seed: u64) -> f64 {
    let scenario = reference_scenario(seed, None);
    let total: u64 = r.tokens_served.iter().sum();
    let cheap: u64 = scenario
        .workers
        .iter()
        .zip(&r.tokens_served)
        .filter(|(w, _)| w.policy.floor <= 700)
        .map(|(_, t)| t)
        .sum();
    cheap as f64 / total as f64
}

#[test]
fn choosing_by_price_shifts_load_to_cheaper_workers_and_costs_less() {
    for seed in SEEDS {
        let by_price = run(
            &reference_scenario(seed, Some(Preference::Price)),
            Instant::now(),
        )
        .unwrap();
        let by_latency = run(
            &reference_scenario(seed, Some(Preference::Latency)),
            Instant::now(),
        )
        .unwrap();
        let (p, l) = (cheap_share(&by_price, seed), cheap_share(&by_latency, seed));
        assert!(
            p > l + 0.05,
            "seed {seed}: cheap share by price {p}, by latency {l}"
        );
    }
    // In one market, the three kinds side by side: price pays least and waits longest,
    // latency the reverse, the mix in between.
    let r = run(&reference_scenario(14, None), Instant::now()).unwrap();
    let [price, latency, mix] = [0, 1, 2].map(|i| r.clients[i].clone());
    assert!(price.mean_coefficient < mix.mean_coefficient);
    assert!(mix.mean_coefficient < latency.mean_coefficient);
    assert!(latency.mean_latency_ms < mix.mean_latency_ms);
    assert!(mix.mean_latency_ms < price.mean_latency_ms);
}
