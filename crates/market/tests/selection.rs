//! Worker selection as the proxy sees it: filters, ranking, reputation, cool-downs and summaries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use cocoon_market::selection::base_model;
use cocoon_market::{
    Coefficient, MarketError, Outcome, SelectionConfig, Unavailability, WorkerId, WorkerInfo,
    WorkerSelector,
};

const MODEL: &str = "Qwen/Qwen3-8B";

fn coef(milli: u32) -> Coefficient {
    Coefficient::new(milli).unwrap()
}

fn info(model: &str, coefficient: u32, max_active: u32) -> WorkerInfo {
    WorkerInfo {
        model: model.to_owned(),
        coefficient: coef(coefficient),
        max_active_requests: max_active,
        proxy_count: 1,
        enabled: true,
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn reason(err: MarketError) -> Unavailability {
    match err {
        MarketError::NoWorkerAvailable { reason, .. } => reason,
        other => panic!("unexpected error {other:?}"),
    }
}

/// Runs one request on `id` from `start` taking `latency`, with `outcome`.
fn run(
    sel: &mut WorkerSelector,
    id: WorkerId,
    start: Instant,
    latency: Duration,
    outcome: Outcome,
) {
    let mut d = sel.on_start(id, start).unwrap();
    sel.on_first_byte(&mut d, start + latency / 4);
    sel.on_finish(d, outcome, start + latency);
}

#[test]
fn base_models_are_the_text_before_the_at_sign() {
    assert_eq!(base_model("Qwen/Qwen3-8B@fp8"), "Qwen/Qwen3-8B");
    assert_eq!(base_model("Qwen/Qwen3-8B"), "Qwen/Qwen3-8B");
    assert_eq!(base_model("a@b@c"), "a");
    assert_eq!(base_model(""), "");

    let t = Instant::now();
    let mut sel = WorkerSelector::default();
    sel.upsert_worker(WorkerId(1), info("Qwen/Qwen3-8B@fp8", 1000, 4));
    sel.upsert_worker(WorkerId(2), info("Qwen/Qwen3-32B", 1000, 4));
    assert_eq!(
        sel.select(MODEL, Coefficient::ONE, &[], t).unwrap(),
        WorkerId(1)
    );
    // A client may name a variant too: only the base counts.
    assert_eq!(
        sel.select("Qwen/Qwen3-8B@bf16", Coefficient::ONE, &[], t)
            .unwrap(),
        WorkerId(1)
    );
    assert_eq!(
        reason(
            sel.select("Qwen/Qwen3", Coefficient::ONE, &[], t)
                .unwrap_err()
        ),
        Unavailability::UnknownModel
    );
}

#[test]
fn capacity_is_the_proxy_share_rounded_up() {
    let t = Instant::now();
    let mut sel = WorkerSelector::default();
    // ceil(5 / 3) = 2 requests at once from this proxy.
    sel.upsert_worker(
        WorkerId(1),
        WorkerInfo {
            proxy_count: 3,
            ..info(MODEL, 1000, 5)
        },
    );
    assert_eq!(sel.worker_info(WorkerId(1)).unwrap().capacity(), 2);
    let a = sel.dispatch(MODEL, Coefficient::ONE, &[], t).unwrap();
    let _b = sel.dispatch(MODEL, Coefficient::ONE, &[], t).unwrap();
    assert_eq!(
        reason(sel.dispatch(MODEL, Coefficient::ONE, &[], t).unwrap_err()),
        Unavailability::AllBusy
    );
    sel.on_finish(a, Outcome::Success, t + ms(10));
    assert_eq!(
        sel.select(MODEL, Coefficient::ONE, &[], t).unwrap(),
        WorkerId(1)
    );
    // proxy_count 0 counts as 1; max_active 0 means no slot at all.
    assert_eq!(
        WorkerInfo {
            proxy_count: 0,
            ..info(MODEL, 1000, 3)
        }
        .capacity(),
        3
    );
    assert_eq!(info(MODEL, 1000, 0).capacity(), 0);
}

#[test]
fn coefficient_above_the_client_maximum_is_refused() {
    let t = Instant::now();
    let mut sel = WorkerSelector::default();
    sel.upsert_worker(WorkerId(1), info(MODEL, 3000, 4));
    sel.upsert_worker(WorkerId(2), info(MODEL, 2500, 4));
    assert_eq!(
        reason(sel.select(MODEL, coef(2000), &[], t).unwrap_err()),
        Unavailability::AboveMaxCoefficient {
            cheapest: coef(2500)
        }
    );
    assert_eq!(sel.select(MODEL, coef(2500), &[], t).unwrap(), WorkerId(2));
    let d = sel.on_start(WorkerId(2), t).unwrap();
    assert!(sel.set_coefficient(WorkerId(2), coef(4000)));
    // The request already sent is charged at the price it was sent with.
    assert_eq!(d.coefficient(), coef(2500));
    assert_eq!(sel.select(MODEL, coef(3000), &[], t).unwrap(), WorkerId(1));
    assert!(!sel.set_coefficient(WorkerId(9), coef(1)));
}

#[test]
fn disabled_and_removed_workers_are_skipped() {
    let t = Instant::now();
    let mut sel = WorkerSelector::default();
    sel.upsert_worker(WorkerId(1), info(MODEL, 1000, 4));
    assert!(sel.set_enabled(WorkerId(1), false));
    assert_eq!(
        reason(sel.select(MODEL, Coefficient::ONE, &[], t).unwrap_err()),
        Unavailability::AllDisabled
    );
    assert!(sel.set_enabled(WorkerId(1), true));
    assert!(sel.select(MODEL, Coefficient::ONE, &[], t).is_ok());
    assert!(sel.remove_worker(WorkerId(1)));
    assert!(!sel.remove_worker(WorkerId(1)));
    assert!(sel.is_empty());
    assert!(sel.select(MODEL, Coefficient::ONE, &[], t).is_err());
}

#[test]
fn excluded_workers_are_not_retried_for_the_same_request() {
    let t = Instant::now();
    let mut sel = WorkerSelector::default();
    sel.upsert_worker(WorkerId(1), info(MODEL, 1000, 4));
    sel.upsert_worker(WorkerId(2), info(MODEL, 1000, 4));
    let first = sel.dispatch(MODEL, Coefficient::ONE, &[], t).unwrap();
    assert_eq!(first.worker(), WorkerId(1));
    // It failed before the first byte: retry elsewhere.
    sel.on_finish(first, Outcome::Failure, t + ms(5));
    let tried = [first.worker()];
    let second = sel
        .dispatch(MODEL, Coefficient::ONE, &tried, t + ms(5))
        .unwrap();
    assert_eq!(second.worker(), WorkerId(2));
    let tried = [WorkerId(1), WorkerId(2)];
    assert_eq!(
        reason(sel.select(MODEL, Coefficient::ONE, &tried, t).unwrap_err()),
        Unavailability::AllTried
    );
}

#[test]
fn lower_latency_is_preferred_and_load_spreads() {
    let t = Instant::now();
    let mut sel = WorkerSelector::default();
    sel.upsert_worker(WorkerId(1), info(MODEL, 1000, 8));
    sel.upsert_worker(WorkerId(2), info(MODEL, 1000, 8));
    for i in 0..5 {
        let start = t + ms(i * 1000);
        run(&mut sel, WorkerId(1), start, ms(900), Outcome::Success);
        run(&mut sel, WorkerId(2), start, ms(250), Outcome::Success);
    }
    assert_eq!(
        sel.select(MODEL, Coefficient::ONE, &[], t).unwrap(),
        WorkerId(2)
    );
    let stats = sel.worker_stats(WorkerId(2), t).unwrap();
    assert!((stats.ewma_latency_ms.unwrap() - 250.0).abs() < 1e-6);
    assert!((stats.ewma_ttfb_ms.unwrap() - 62.5).abs() < 1e-6);
    assert_eq!(stats.completed, 5);

    // The fast worker takes requests until its queue makes it slower than the idle slow one:
    // 250 × (running + 1) > 900 once three run there.
    let mut picks = Vec::new();
    for _ in 0..4 {
        picks.push(
            sel.dispatch(MODEL, Coefficient::ONE, &[], t)
                .unwrap()
                .worker()
                .0,
        );
    }
    assert_eq!(picks, vec![2, 2, 2, 1]);
}

#[test]
fn newcomers_are_ranked_with_the_mean_latency_of_their_peers() {
    let t = Instant::now();
    let mut sel = WorkerSelector::default();
    sel.upsert_worker(WorkerId(1), info(MODEL, 1000, 8));
    sel.upsert_worker(WorkerId(2), info(MODEL, 1000, 8));
    run(&mut sel, WorkerId(1), t, ms(400), Outcome::Success);
    run(&mut sel, WorkerId(2), t, ms(800), Outcome::Success);
    sel.upsert_worker(WorkerId(3), info(MODEL, 1000, 8));
    // Prior 600 ms: better than worker 2, worse than worker 1.
    assert_eq!(
        sel.select(MODEL, Coefficient::ONE, &[], t).unwrap(),
        WorkerId(1)
    );
    assert_eq!(
        sel.select(MODEL, Coefficient::ONE, &[WorkerId(1)], t)
            .unwrap(),
        WorkerId(3)
    );
}

#[test]
fn ties_go_to_the_cheaper_worker_then_the_lower_id() {
    let t = Instant::now();
    let mut sel = WorkerSelector::default();
    sel.upsert_worker(WorkerId(1), info(MODEL, 2000, 4));
    sel.upsert_worker(WorkerId(2), info(MODEL, 1500, 4));
    sel.upsert_worker(WorkerId(3), info(MODEL, 1500, 4));
    assert_eq!(sel.select(MODEL, coef(4000), &[], t).unwrap(), WorkerId(2));
}

#[test]
fn a_failing_worker_cools_down_with_exponential_backoff() {
    let t = Instant::now();
    let config = SelectionConfig {
        failures_before_cooldown: 2,
        cooldown_base_ms: 1000,
        cooldown_max_ms: 3000,
        ..SelectionConfig::default()
    };
    let mut sel = WorkerSelector::new(config).unwrap();
    sel.upsert_worker(WorkerId(1), info(MODEL, 1000, 4));
    sel.upsert_worker(WorkerId(2), info(MODEL, 1000, 4));
    run(&mut sel, WorkerId(2), t, ms(2000), Outcome::Success); // slow but healthy
    run(&mut sel, WorkerId(1), t, ms(100), Outcome::Success); // fast

    // One failure lowers the fast worker's success rate, it still wins on latency.
    run(&mut sel, WorkerId(1), t, ms(10), Outcome::Failure);
    assert_eq!(
        sel.select(MODEL, Coefficient::ONE, &[], t).unwrap(),
        WorkerId(1)
    );
    // The second failure in a row starts a 1 s cool-down.
    let now = t + ms(10);
    run(&mut sel, WorkerId(1), t, ms(10), Outcome::Failure);
    assert_eq!(
        sel.select(MODEL, Coefficient::ONE, &[], now).unwrap(),
        WorkerId(2)
    );
    assert_eq!(
        sel.worker_stats(WorkerId(1), now)
            .unwrap()
            .cooldown_remaining_ms,
        Some(1000)
    );
    assert_eq!(
        reason(
            sel.select(MODEL, Coefficient::ONE, &[WorkerId(2)], now)
                .unwrap_err()
        ),
        Unavailability::AllCoolingDown { retry_in_ms: 1000 }
    );
    // Afterwards it gets a trial request; it fails again: 2 s.
    let now = now + ms(1000);
    let probe = sel
        .dispatch(MODEL, Coefficient::ONE, &[WorkerId(2)], now)
        .unwrap();
    assert_eq!(probe.worker(), WorkerId(1));
    sel.on_finish(probe, Outcome::Failure, now);
    assert_eq!(
        sel.worker_stats(WorkerId(1), now)
            .unwrap()
            .cooldown_remaining_ms,
        Some(2000)
    );
    // Then 3 s (capped, not 4 s).
    let now = now + ms(2000);
    run(&mut sel, WorkerId(1), now, Duration::ZERO, Outcome::Failure);
    assert_eq!(
        sel.worker_stats(WorkerId(1), now)
            .unwrap()
            .cooldown_remaining_ms,
        Some(3000)
    );
    // Failures of requests already running while it cools do not lengthen it.
    let stale = sel.on_start(WorkerId(1), now).unwrap();
    sel.on_finish(stale, Outcome::Failure, now + ms(500));
    assert_eq!(
        sel.worker_stats(WorkerId(1), now + ms(500))
            .unwrap()
            .cooldown_remaining_ms,
        Some(2500)
    );
    // A success after the cool-down clears the record.
    let now = now + ms(3000);
    run(&mut sel, WorkerId(1), now, ms(100), Outcome::Success);
    let stats = sel.worker_stats(WorkerId(1), now).unwrap();
    assert_eq!(
        (stats.consecutive_failures, stats.cooldown_remaining_ms),
        (0, None)
    );
    assert_eq!((stats.completed, stats.failed), (2, 5));
    run(&mut sel, WorkerId(1), now, ms(10), Outcome::Failure);
    run(&mut sel, WorkerId(1), now, ms(10), Outcome::Failure);
    // Back to the base cool-down.
    assert_eq!(
        sel.worker_stats(WorkerId(1), now + ms(10))
            .unwrap()
            .cooldown_remaining_ms,
        Some(1000)
    );
}

#[test]
fn cancelled_requests_free_the_slot_without_blame() {
    let t = Instant::now();
    let mut sel = WorkerSelector::default();
    sel.upsert_worker(WorkerId(1), info(MODEL, 1000, 1));
    for _ in 0..10 {
        let d = sel.dispatch(MODEL, Coefficient::ONE, &[], t).unwrap();
        sel.on_finish(d, Outcome::Cancelled, t + ms(1));
    }
    let s = sel.worker_stats(WorkerId(1), t).unwrap();
    assert_eq!(
        (s.running, s.completed, s.failed, s.success_rate),
        (0, 0, 0, 1.0)
    );
}

#[test]
fn metering_violations_count_against_reputation_and_cool_a_repeat_offender_down() {
    let t = Instant::now();
    let mut sel = WorkerSelector::default();
    sel.upsert_worker(WorkerId(1), info(MODEL, 1000, 4));
    sel.upsert_worker(WorkerId(2), info(MODEL, 1000, 4));
    // Both answer; worker 1 over-reports every time: its requests finish as failures.
    for i in 0..5 {
        let now = t + ms(i * 10);
        run(&mut sel, WorkerId(1), now, ms(5), Outcome::Failure);
        sel.on_metering_violation(WorkerId(1));
        run(&mut sel, WorkerId(2), now, ms(5), Outcome::Success);
    }
    let liar = sel.worker_stats(WorkerId(1), t + ms(60)).unwrap();
    let honest = sel.worker_stats(WorkerId(2), t + ms(60)).unwrap();
    assert_eq!(liar.metering_violations, 5);
    assert_eq!(honest.metering_violations, 0);
    assert!(liar.success_rate < honest.success_rate);
    assert!(liar.cooldown_remaining_ms.is_some(), "{liar:?}");
    // While it cools down, requests go to the honest worker.
    for _ in 0..3 {
        let d = sel
            .dispatch(MODEL, Coefficient::ONE, &[], t + ms(61))
            .unwrap();
        assert_eq!(d.worker(), WorkerId(2));
        sel.on_finish(d, Outcome::Cancelled, t + ms(62));
    }
    // Unknown workers are ignored.
    sel.on_metering_violation(WorkerId(9));
}

#[test]
fn dispatches_of_a_replaced_worker_are_ignored() {
    let t = Instant::now();
    let mut sel = WorkerSelector::default();
    sel.upsert_worker(WorkerId(1), info(MODEL, 1000, 2));
    let old = sel.on_start(WorkerId(1), t).unwrap();
    sel.remove_worker(WorkerId(1));
    sel.upsert_worker(WorkerId(1), info(MODEL, 1000, 2));
    let new = sel.on_start(WorkerId(1), t).unwrap();
    sel.on_finish(old, Outcome::Failure, t + ms(1));
    let s = sel.worker_stats(WorkerId(1), t).unwrap();
    assert_eq!((s.running, s.failed), (1, 0));
    sel.on_finish(new, Outcome::Success, t + ms(1));
    assert_eq!(sel.worker_stats(WorkerId(1), t).unwrap().running, 0);
    // A finished dispatch finishing again cannot push the count below zero.
    sel.on_finish(new, Outcome::Success, t + ms(2));
    assert_eq!(sel.worker_stats(WorkerId(1), t).unwrap().running, 0);
}

#[test]
fn updating_a_worker_keeps_its_reputation_unless_the_model_changes() {
    let t = Instant::now();
    let mut sel = WorkerSelector::default();
    sel.upsert_worker(WorkerId(1), info("m@a", 1000, 2));
    run(&mut sel, WorkerId(1), t, ms(50), Outcome::Failure);
    sel.upsert_worker(WorkerId(1), info("m@b", 1200, 2));
    assert_eq!(sel.worker_stats(WorkerId(1), t).unwrap().failed, 1);
    sel.upsert_worker(WorkerId(1), info("other", 1200, 2));
    assert_eq!(sel.worker_stats(WorkerId(1), t).unwrap().failed, 0);
}

#[test]
fn selection_is_deterministic() {
    let t = Instant::now();
    let script = |sel: &mut WorkerSelector| {
        let mut picks = Vec::new();
        for i in 0..200u64 {
            let now = t + ms(i * 7);
            if let Ok(d) = sel.dispatch(MODEL, coef(3000), &[], now) {
                picks.push(d.worker().0);
                let outcome = if (i * d.worker().0) % 5 == 0 {
                    Outcome::Failure
                } else {
                    Outcome::Success
                };
                sel.on_finish(d, outcome, now + ms(20 + d.worker().0 * 13));
            } else {
                picks.push(0);
            }
        }
        picks
    };
    let build = || {
        let mut sel = WorkerSelector::default();
        for id in 1..=4 {
            sel.upsert_worker(WorkerId(id), info(MODEL, 1000 + 500 * id as u32, 3));
        }
        sel
    };
    let (mut a, mut b) = (build(), build());
    let picks = script(&mut a);
    assert_eq!(picks, script(&mut b));
    // More than one worker got traffic.
    let mut distinct = picks.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() > 1, "{picks:?}");
}

#[test]
fn summaries_group_enabled_workers_by_base_model() {
    let t = Instant::now();
    let mut sel = WorkerSelector::default();
    sel.upsert_worker(WorkerId(1), info("m@a", 3000, 4));
    sel.upsert_worker(WorkerId(2), info("m@b", 1000, 4));
    sel.upsert_worker(WorkerId(3), info("m", 2000, 4));
    sel.upsert_worker(WorkerId(4), info("m", 1500, 4));
    sel.upsert_worker(WorkerId(5), info("n", 1000, 6));
    sel.upsert_worker(WorkerId(6), info("gone", 1000, 6));
    sel.set_enabled(WorkerId(6), false);
    let _d = sel.on_start(WorkerId(2), t).unwrap();

    let all = sel.model_summaries();
    assert_eq!(
        all.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        ["m", "n"]
    );
    let m = &all[0];
    assert_eq!(m.active_workers, 4);
    assert_eq!(
        (m.coefficient_min, m.coefficient_median, m.coefficient_max),
        (coef(1000), coef(1500), coef(3000))
    );
    assert_eq!(
        m.workers.iter().map(|w| w.id.0).collect::<Vec<_>>(),
        [2, 4, 3, 1]
    );
    assert_eq!((m.workers[0].running, m.workers[0].max), (1, 4));
    assert_eq!(
        sel.model_summary("n@x").unwrap().coefficient_median,
        coef(1000)
    );
    assert!(sel.model_summary("gone").is_none());

    let snapshot = sel.snapshot(t);
    assert_eq!(snapshot.len(), 6);
    assert!(!snapshot[5].1.enabled);
    let json = serde_json::to_value(&snapshot[1].1).unwrap();
    assert_eq!(json["running"], 1);
    assert_eq!(json["coefficient"], 1000);
}

#[test]
fn bad_configurations_are_refused() {
    for config in [
        SelectionConfig {
            ewma_weight: 0.0,
            ..SelectionConfig::default()
        },
        SelectionConfig {
            ewma_weight: f64::NAN,
            ..SelectionConfig::default()
        },
        SelectionConfig {
            failures_before_cooldown: 0,
            ..SelectionConfig::default()
        },
        SelectionConfig {
            cooldown_base_ms: 10,
            cooldown_max_ms: 5,
            ..SelectionConfig::default()
        },
        SelectionConfig {
            default_latency_ms: f64::INFINITY,
            ..SelectionConfig::default()
        },
        SelectionConfig {
            min_success_probability: 0.0,
            ..SelectionConfig::default()
        },
    ] {
        assert!(matches!(
            WorkerSelector::new(config),
            Err(MarketError::InvalidSelectionConfig(_))
        ));
    }
    let parsed: SelectionConfig = serde_json::from_str(r#"{"cooldown_base_ms": 500}"#).unwrap();
    assert_eq!(parsed.cooldown_base_ms, 500);
    assert_eq!(parsed.failures_before_cooldown, 3);
}

/// A fast dear worker (1) and a slow cheap one (2), both with a finished request.
fn fast_dear_and_slow_cheap(t0: Instant) -> WorkerSelector {
    let mut s = WorkerSelector::default();
    s.upsert_worker(WorkerId(1), info(MODEL, 2000, 4));
    s.upsert_worker(WorkerId(2), info(MODEL, 1000, 4));
    run(&mut s, WorkerId(1), t0, ms(100), Outcome::Success);
    run(&mut s, WorkerId(2), t0, ms(400), Outcome::Success);
    s
}

#[test]
fn the_clients_preference_picks_by_latency_price_or_a_mix() {
    use cocoon_market::Preference;
    let t0 = Instant::now();
    let s = fast_dear_and_slow_cheap(t0);
    let pick = |p| s.select_with(MODEL, coef(4000), &[], p, t0).unwrap();
    assert_eq!(pick(Preference::Latency), WorkerId(1));
    assert_eq!(s.select(MODEL, coef(4000), &[], t0).unwrap(), WorkerId(1));
    assert_eq!(pick(Preference::Price), WorkerId(2));
    // 4× slower and half the price: latency's log-ratio is twice price's, so the cheap worker
    // wins once price weighs more than two thirds.
    assert_eq!(pick(Preference::Mix(60)), WorkerId(1));
    assert_eq!(pick(Preference::Mix(70)), WorkerId(2));
    // The maximum still binds: by price within 1.5× there is only the cheap one, by latency
    // within 1.0× too.
    assert_eq!(
        s.select_with(MODEL, coef(1500), &[], Preference::Latency, t0)
            .unwrap(),
        WorkerId(2)
    );
}

#[test]
fn by_price_the_fastest_of_equally_cheap_workers_wins() {
    use cocoon_market::Preference;
    let t0 = Instant::now();
    let mut s = WorkerSelector::default();
    for id in 1..=3 {
        s.upsert_worker(WorkerId(id), info(MODEL, 1000, 4));
    }
    s.upsert_worker(WorkerId(4), info(MODEL, 900, 4));
    run(&mut s, WorkerId(1), t0, ms(300), Outcome::Success);
    run(&mut s, WorkerId(2), t0, ms(100), Outcome::Success);
    run(&mut s, WorkerId(3), t0, ms(200), Outcome::Success);
    run(&mut s, WorkerId(4), t0, ms(900), Outcome::Success);
    let mut s2 = s.clone();
    let by_price = |s: &WorkerSelector| {
        s.select_with(MODEL, coef(4000), &[], Preference::Price, t0)
            .unwrap()
    };
    assert_eq!(by_price(&s), WorkerId(4));
    s2.set_enabled(WorkerId(4), false);
    assert_eq!(by_price(&s2), WorkerId(2));
}

#[test]
fn the_preference_travels_in_query_flags_and_parses_from_text() {
    use cocoon_market::Preference;
    for p in [
        Preference::Latency,
        Preference::Price,
        Preference::Mix(0),
        Preference::Mix(37),
    ] {
        let flags = p.to_query_flags() | 1;
        let back = Preference::from_query_flags(flags).unwrap();
        assert_eq!(back.price_weight(), p.price_weight());
        assert_eq!(flags & 1, 1, "enable_debug's bit is kept");
    }
    assert_eq!(Preference::from_query_flags(1), None);
    assert_eq!(
        Preference::from_query_flags(200 << 16),
        Some(Preference::Price)
    );
    assert_eq!("price".parse::<Preference>(), Ok(Preference::Price));
    assert_eq!("latency".parse::<Preference>(), Ok(Preference::Latency));
    assert_eq!("mix:25".parse::<Preference>(), Ok(Preference::Mix(25)));
    for bad in ["mix:101", "mix:", "cheap", ""] {
        assert_eq!(
            bad.parse::<Preference>(),
            Err(MarketError::InvalidPreference)
        );
    }
}
