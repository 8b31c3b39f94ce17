//! What a worker can expect to earn, from figures its operator gives: the engine's sustained
//! speed, the share of time it is busy, the network's pricing parameters and the worker's own
//! price policy. It answers the GPU owner's question "how much per hour?" before the node runs.
//!
//! Pure: under a load policy the coefficient is found by running the same
//! [`PriceController`] the worker runs, over simulated time at the given utilisation, so the
//! estimate and the running worker cannot disagree on the rule. Money goes through
//! [`PricingParams`], the contracts' arithmetic, on one hour of tokens.

use std::time::{Duration, Instant};

use cocoon_market::{
    Coefficient, LoadSample, PolicyKind, PriceController, PricePolicy, PricingParams, TokenCounts,
};
use serde::Serialize;

use crate::{WorkerConfig, WorkerError};

pub use cocoon_market::{Coefficient as EstimateCoefficient, PricingParams as EstimatePricing};

/// Slots the simulated worker has; utilisation is resolved to 1/`SIMULATED_SLOTS`.
const SIMULATED_SLOTS: u32 = 10_000;

/// The figures an estimate starts from.
#[derive(Clone, Debug)]
pub struct EstimateInput {
    /// The model the worker serves (as in its configuration).
    pub model: String,
    /// Prompt tokens per second the engine sustains when every slot is busy.
    pub prompt_tokens_per_sec: f64,
    /// Completion tokens per second the engine sustains when every slot is busy.
    pub completion_tokens_per_sec: f64,
    /// Share of time the worker is busy, in `[0, 1]`.
    pub utilisation: f64,
    /// The fixed coefficient, or where a load policy starts.
    pub coefficient: Coefficient,
    /// The worker's price policy.
    pub policy: PricePolicy,
    /// How often the worker applies its policy (its `pricing_tick`).
    pub tick: Duration,
    /// How much simulated time the load policy runs for before its price is read.
    pub horizon: Duration,
    /// The coefficients of the other workers serving the model, when known.
    pub market: Vec<Coefficient>,
    /// The network's prices (price per token, worker fee, category multipliers).
    pub pricing: PricingParams,
}

/// Where the worker's price sits among the other workers serving its model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MarketPosition {
    /// Workers observed.
    pub workers: usize,
    /// Lowest coefficient observed.
    pub min: Coefficient,
    /// Median coefficient observed (the lower middle one for an even count).
    pub median: Coefficient,
    /// Highest coefficient observed.
    pub max: Coefficient,
    /// Share of the observed workers cheaper than this one, in `[0, 1]`: clients choosing by
    /// price reach them first.
    pub cheaper_share: f64,
}

/// The expected coefficient and earnings.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Estimate {
    /// The model.
    pub model: String,
    /// `fixed` or `load`.
    pub policy: PolicyKind,
    /// The coefficient the policy settles at (the fixed one under a fixed policy).
    pub coefficient: Coefficient,
    /// Simulated seconds until the load policy's last change (0 under a fixed policy, or when
    /// the price never moved).
    pub settled_after_secs: u64,
    /// Prompt tokens per second served at the given utilisation.
    pub prompt_tokens_per_sec: f64,
    /// Completion tokens per second served at the given utilisation.
    pub completion_tokens_per_sec: f64,
    /// Adjusted tokens per hour (what vouchers count).
    pub adjusted_tokens_per_hour: u64,
    /// NanoTON the worker earns per hour.
    pub worker_nanoton_per_hour: u64,
    /// NanoTON clients pay per hour for this worker's tokens.
    pub client_nanoton_per_hour: u64,
    /// NanoTON the proxy keeps per hour.
    pub proxy_nanoton_per_hour: u64,
    /// Whether the coefficient exceeds the reference client's default `max_coefficient`, so that
    /// clients keeping the default never pick this worker.
    pub above_default_client_max: bool,
    /// The worker's place in the observed market, when one was given.
    pub market: Option<MarketPosition>,
}

impl EstimateInput {
    /// The figures of a worker configured by `config` (model, coefficient, `[pricing]`,
    /// `pricing_tick`), with no speed, no market, the default network prices, half of the time
    /// busy and a day of simulated time: the caller fills in what it knows.
    pub fn for_worker(config: &WorkerConfig) -> Result<Self, WorkerError> {
        Ok(Self {
            model: config.configured_model().to_owned(),
            prompt_tokens_per_sec: 0.0,
            completion_tokens_per_sec: 0.0,
            utilisation: 0.5,
            coefficient: Coefficient::try_from(config.coefficient)?,
            policy: config.pricing,
            tick: config.pricing_tick,
            horizon: Duration::from_secs(24 * 3600),
            market: Vec::new(),
            pricing: PricingParams::default(),
        })
    }
}

/// The market for `model` as a client's `GET /v1/models` shows it (`body`): the coefficients of
/// the workers serving it, and their load (`market.utilisation`) when given.
pub fn market_from_models(
    body: &[u8],
    model: &str,
) -> Result<(Vec<Coefficient>, Option<f64>), WorkerError> {
    let bad = |m| WorkerError::Estimate(m);
    let list: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| bad("the model list is not JSON"))?;
    let entry = list["data"]
        .as_array()
        .ok_or(bad("the model list has no `data`"))?
        .iter()
        .find(|m| m["id"].as_str() == Some(model))
        .ok_or(bad("the model is not in the market's model list"))?;
    let coefficients = entry["workers"]
        .as_array()
        .ok_or(bad("the model lists no `workers`"))?
        .iter()
        .map(|w| {
            w["coefficient"]
                .as_i64()
                .ok_or(bad("a worker without a coefficient"))
                .and_then(|c| Coefficient::try_from(c).map_err(WorkerError::from))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let load = entry["market"]["utilisation"]
        .as_f64()
        .filter(|u| (0.0..=1.0).contains(u));
    Ok((coefficients, load))
}

/// Estimates a worker's coefficient and hourly earnings from `input`.
pub fn estimate(input: &EstimateInput) -> Result<Estimate, WorkerError> {
    let bad = |m| Err(WorkerError::Estimate(m));
    if !(0.0..=1.0).contains(&input.utilisation) {
        return bad("utilisation must be in [0, 1]");
    }
    for tps in [input.prompt_tokens_per_sec, input.completion_tokens_per_sec] {
        if !(tps.is_finite() && tps >= 0.0) {
            return bad("tokens per second must be finite and not negative");
        }
    }
    if input.tick.is_zero() {
        return bad("the pricing tick must be positive");
    }
    input.pricing.validate()?;
    let market = market_position(&input.market, input.coefficient);
    let (coefficient, settled_after_secs) = expected_coefficient(
        &input.policy,
        input.coefficient,
        input.utilisation,
        market.as_ref().map(|m| m.median),
        input.tick,
        input.horizon,
    )?;
    let prompt_tps = input.prompt_tokens_per_sec * input.utilisation;
    let completion_tps = input.completion_tokens_per_sec * input.utilisation;
    let per_hour = |tps: f64| -> Result<u64, WorkerError> {
        let tokens = (tps * 3600.0).round();
        if tokens >= u64::MAX as f64 {
            return Err(WorkerError::Estimate("tokens per hour exceed 64 bits"));
        }
        // Finite, not negative and below `u64::MAX`: the cast is exact up to rounding.
        Ok(tokens as u64)
    };
    let counts = TokenCounts {
        prompt: per_hour(prompt_tps)?,
        cached: 0,
        completion: per_hour(completion_tps)?,
        reasoning: 0,
    };
    let charge = input.pricing.charge(&counts, coefficient)?;
    Ok(Estimate {
        model: input.model.clone(),
        policy: input.policy.policy,
        coefficient,
        settled_after_secs,
        prompt_tokens_per_sec: prompt_tps,
        completion_tokens_per_sec: completion_tps,
        adjusted_tokens_per_hour: charge.adjusted_total(),
        worker_nanoton_per_hour: charge.worker_credit(),
        client_nanoton_per_hour: charge.client_cost(),
        proxy_nanoton_per_hour: charge.proxy_commission(),
        above_default_client_max: coefficient > Coefficient::DEFAULT_CLIENT_MAX,
        market: market.map(|mut m| {
            m.cheaper_share = cheaper_share(&input.market, coefficient);
            m
        }),
    })
}

/// The coefficient `policy` holds at a steady `utilisation`, starting from `start`, and the
/// simulated seconds until its last change: the fixed coefficient under a fixed policy, else
/// the [`PriceController`] fed one sample per `tick` for `horizon`.
pub fn expected_coefficient(
    policy: &PricePolicy,
    start: Coefficient,
    utilisation: f64,
    market_median: Option<Coefficient>,
    tick: Duration,
    horizon: Duration,
) -> Result<(Coefficient, u64), WorkerError> {
    let mut controller = PriceController::new(*policy, start)?;
    if policy.policy == PolicyKind::Fixed || tick.is_zero() {
        return Ok((controller.current(), 0));
    }
    let running = (utilisation.clamp(0.0, 1.0) * f64::from(SIMULATED_SLOTS)).round();
    let sample = LoadSample {
        // In `[0, SIMULATED_SLOTS]`: the cast is exact.
        running: running as u32,
        capacity: SIMULATED_SLOTS,
        queued: 0,
        market_median,
    };
    // Simulated time is offsets from one instant; no clock decides anything.
    let t0 = Instant::now();
    let mut elapsed = Duration::ZERO;
    let mut settled = Duration::ZERO;
    while elapsed <= horizon {
        if controller.on_sample(&sample, t0 + elapsed).is_some() {
            settled = elapsed;
        }
        elapsed += tick;
    }
    Ok((controller.current(), settled.as_secs()))
}

fn market_position(market: &[Coefficient], ours: Coefficient) -> Option<MarketPosition> {
    let mut sorted = market.to_vec();
    sorted.sort_unstable();
    let (min, max) = (*sorted.first()?, *sorted.last()?);
    Some(MarketPosition {
        workers: sorted.len(),
        min,
        median: sorted[(sorted.len() - 1) / 2],
        max,
        cheaper_share: cheaper_share(market, ours),
    })
}

fn cheaper_share(market: &[Coefficient], ours: Coefficient) -> f64 {
    if market.is_empty() {
        return 0.0;
    }
    let cheaper = market.iter().filter(|c| **c < ours).count();
    cheaper as f64 / market.len() as f64
}

/// The estimate as one JSON object (`--json`).
pub fn to_json(e: &Estimate) -> Result<String, WorkerError> {
    serde_json::to_string_pretty(e).map_err(|_| WorkerError::Estimate("cannot write JSON"))
}

/// The estimate as lines a person reads.
pub fn render(e: &Estimate) -> String {
    let ton = |nano: u64| nano as f64 / 1e9;
    let mut out = format!(
        "model                 {}\n\
         policy                {}\n\
         coefficient           {}{}\n\
         tokens/s served       {:.1} prompt, {:.1} completion\n\
         adjusted tokens/hour  {}\n\
         worker earns/hour     {} nanoTON ({:.6} TON)\n\
         clients pay/hour      {} nanoTON (proxy keeps {})\n",
        e.model,
        match e.policy {
            PolicyKind::Fixed => "fixed",
            PolicyKind::Load => "load",
        },
        e.coefficient,
        if e.policy == PolicyKind::Load {
            format!(" (settled after {} s simulated)", e.settled_after_secs)
        } else {
            String::new()
        },
        e.prompt_tokens_per_sec,
        e.completion_tokens_per_sec,
        e.adjusted_tokens_per_hour,
        e.worker_nanoton_per_hour,
        ton(e.worker_nanoton_per_hour),
        e.client_nanoton_per_hour,
        e.proxy_nanoton_per_hour,
    );
    if let Some(m) = &e.market {
        out.push_str(&format!(
            "market                {} workers, min {}, median {}, max {}; {:.0} % of them cheaper\n",
            m.workers,
            m.min,
            m.median,
            m.max,
            m.cheaper_share * 100.0
        ));
    }
    if e.above_default_client_max {
        out.push_str(&format!(
            "warning               above the default client max_coefficient {}\n",
            Coefficient::DEFAULT_CLIENT_MAX
        ));
    }
    out
}

#[cfg(test)]
mod market_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_market_is_read_from_a_clients_model_list() {
        let body = br#"{"object":"list","data":[
            {"id":"other","workers":[{"coefficient":5000}]},
            {"id":"m","workers":[{"coefficient":900,"running_requests":1},{"coefficient":1400}],
             "market":{"utilisation":0.25}}]}"#;
        let (coefficients, load) = market_from_models(body, "m").unwrap();
        let raw: Vec<i64> = coefficients.iter().map(|c| i64::from(*c)).collect();
        assert_eq!(raw, vec![900, 1400]);
        assert_eq!(load, Some(0.25));
        for (bad, model) in [
            (&b"not json"[..], "m"),
            (&br#"{"data":[]}"#[..], "m"),
            (
                &br#"{"data":[{"id":"m","workers":[{"coefficient":-1}]}]}"#[..],
                "m",
            ),
            (&br#"{"data":[{"id":"m"}]}"#[..], "m"),
        ] {
            assert!(
                market_from_models(bad, model).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn c(v: u32) -> Coefficient {
        Coefficient::new(v).unwrap()
    }

    fn input() -> EstimateInput {
        EstimateInput {
            model: "m".into(),
            prompt_tokens_per_sec: 0.0,
            completion_tokens_per_sec: 100.0,
            utilisation: 0.5,
            coefficient: c(1000),
            policy: PricePolicy::default(),
            tick: Duration::from_secs(1),
            horizon: Duration::from_secs(24 * 3600),
            market: Vec::new(),
            pricing: PricingParams::default(),
        }
    }

    fn load_policy() -> PricePolicy {
        PricePolicy {
            policy: PolicyKind::Load,
            floor: 800,
            ceiling: 2000,
            target_utilisation: 0.5,
            dead_band: 0.1,
            max_step: 100,
            min_interval_secs: 30,
            ..PricePolicy::default()
        }
    }

    #[test]
    fn a_fixed_price_earns_by_the_contract_arithmetic() {
        let e = estimate(&input()).unwrap();
        // 100 tok/s × 0.5 × 3600 s = 180 000 completion tokens; ×4.0 multiplier at 1.0×.
        assert_eq!(e.completion_tokens_per_sec, 50.0);
        assert_eq!(e.adjusted_tokens_per_hour, 720_000);
        assert_eq!(e.worker_nanoton_per_hour, 720_000 * 16);
        assert_eq!(e.client_nanoton_per_hour, 720_000 * 20);
        assert_eq!(e.proxy_nanoton_per_hour, 720_000 * 4);
        assert_eq!((e.coefficient, e.settled_after_secs), (c(1000), 0));
        // Prompt tokens weigh 1.0×, and the coefficient scales everything.
        let e = estimate(&EstimateInput {
            prompt_tokens_per_sec: 200.0,
            coefficient: c(1500),
            ..input()
        })
        .unwrap();
        assert_eq!(e.adjusted_tokens_per_hour, (360_000 + 720_000) * 3 / 2);
        assert_eq!(e.worker_nanoton_per_hour, 1_620_000 * 16);
    }

    #[test]
    fn a_busy_load_policy_settles_at_its_ceiling_and_an_idle_one_at_its_floor() {
        let busy = estimate(&EstimateInput {
            utilisation: 0.9,
            policy: load_policy(),
            ..input()
        })
        .unwrap();
        assert_eq!(busy.coefficient, c(2000));
        // Ten steps of 100, at least 30 s apart: the last one 270 s in.
        assert_eq!(busy.settled_after_secs, 270);
        let idle = estimate(&EstimateInput {
            utilisation: 0.1,
            policy: load_policy(),
            ..input()
        })
        .unwrap();
        assert_eq!(idle.coefficient, c(800));
        assert!(busy.worker_nanoton_per_hour > 0 && idle.worker_nanoton_per_hour > 0);
        // Inside the dead band the start holds.
        let steady = estimate(&EstimateInput {
            utilisation: 0.55,
            policy: load_policy(),
            ..input()
        })
        .unwrap();
        assert_eq!(
            (steady.coefficient, steady.settled_after_secs),
            (c(1000), 0)
        );
    }

    #[test]
    fn a_short_horizon_stops_the_climb_part_way() {
        let (coefficient, settled) = expected_coefficient(
            &load_policy(),
            c(1000),
            1.0,
            None,
            Duration::from_secs(1),
            Duration::from_secs(60),
        )
        .unwrap();
        // Changes at 0, 30 and 60 s.
        assert_eq!((coefficient, settled), (c(1300), 60));
    }

    #[test]
    fn the_market_median_pulls_a_policy_that_weighs_it() {
        let policy = PricePolicy {
            market_weight: 1.0,
            max_step: 1000,
            ..load_policy()
        };
        let e = estimate(&EstimateInput {
            utilisation: 0.9,
            policy,
            market: vec![c(1200), c(1200), c(1200)],
            ..input()
        })
        .unwrap();
        // Pulled fully onto the market's median, and it never moves past it.
        assert_eq!(e.coefficient, c(1200));
        let m = e.market.unwrap();
        assert_eq!(
            (m.workers, m.min, m.median, m.max),
            (3, c(1200), c(1200), c(1200))
        );
        assert_eq!(m.cheaper_share, 0.0);
    }

    #[test]
    fn the_market_position_counts_cheaper_workers() {
        let e = estimate(&EstimateInput {
            coefficient: c(1500),
            market: vec![c(2000), c(900), c(1000), c(1500)],
            ..input()
        })
        .unwrap();
        let m = e.market.unwrap();
        assert_eq!((m.min, m.median, m.max), (c(900), c(1000), c(2000)));
        assert_eq!(m.cheaper_share, 0.5);
        assert!(!e.above_default_client_max);
        let dear = estimate(&EstimateInput {
            coefficient: c(4001),
            ..input()
        })
        .unwrap();
        assert!(dear.above_default_client_max);
        assert!(render(&dear).contains("above the default client max_coefficient"));
    }

    #[test]
    fn a_worker_configuration_supplies_model_price_and_policy() {
        let config = WorkerConfig {
            model: Some("Qwen/Qwen3-8B".parse().unwrap()),
            coefficient: 1250,
            pricing: load_policy(),
            ..WorkerConfig::default()
        };
        let input = EstimateInput::for_worker(&config).unwrap();
        assert_eq!(input.model, "Qwen/Qwen3-8B");
        assert_eq!(input.coefficient, c(1250));
        assert_eq!(input.policy, load_policy());
        assert_eq!(input.tick, config.pricing_tick);
        let negative = WorkerConfig {
            coefficient: -1,
            ..WorkerConfig::default()
        };
        assert!(matches!(
            EstimateInput::for_worker(&negative),
            Err(WorkerError::Pricing(_))
        ));
    }

    #[test]
    fn bad_figures_are_named() {
        let cases = [
            EstimateInput {
                utilisation: 1.5,
                ..input()
            },
            EstimateInput {
                completion_tokens_per_sec: f64::NAN,
                ..input()
            },
            EstimateInput {
                prompt_tokens_per_sec: -1.0,
                ..input()
            },
            EstimateInput {
                tick: Duration::ZERO,
                ..input()
            },
            EstimateInput {
                completion_tokens_per_sec: 1e30,
                utilisation: 1.0,
                ..input()
            },
        ];
        for case in cases {
            assert!(
                matches!(estimate(&case), Err(WorkerError::Estimate(_))),
                "{case:?}"
            );
        }
        let fee_above_price = EstimateInput {
            pricing: PricingParams {
                worker_fee_per_token: 30,
                ..PricingParams::default()
            },
            ..input()
        };
        assert!(matches!(
            estimate(&fee_above_price),
            Err(WorkerError::Pricing(_))
        ));
        let inverted = EstimateInput {
            policy: PricePolicy {
                floor: 3000,
                ceiling: 1000,
                ..load_policy()
            },
            ..input()
        };
        assert!(matches!(estimate(&inverted), Err(WorkerError::Pricing(_))));
    }

    #[test]
    fn the_rendering_and_json_carry_the_figures() {
        let e = estimate(&EstimateInput {
            market: vec![c(1000)],
            ..input()
        })
        .unwrap();
        let text = render(&e);
        assert!(text.contains("11520000 nanoTON"), "{text}");
        assert!(text.contains("1 workers"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&to_json(&e).unwrap()).unwrap();
        assert_eq!(json["worker_nanoton_per_hour"], 11_520_000);
        assert_eq!(json["coefficient"], 1000);
        assert_eq!(json["policy"], "fixed");
        assert_eq!(json["market"]["median"], 1000);
    }
}
