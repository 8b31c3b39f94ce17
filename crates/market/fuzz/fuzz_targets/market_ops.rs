//! Drives the ledger and the worker selector with arbitrary operations and extreme values: no
//! operation may panic, and the books must balance after every step.

#![no_main]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cocoon_market::{
    ChainClientState, ChargeOutcome, ClientId, Coefficient, Ledger, Outcome, PricingParams,
    RequestId, TokenCounts, WorkerAccountId, WorkerId, WorkerInfo, WorkerSelector,
};
use cocoon_protocol::messages::TokensUsed;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let pricing = PricingParams {
        price_per_token: u.arbitrary()?,
        worker_fee_per_token: u.arbitrary()?,
        prompt_multiplier: u.arbitrary()?,
        cached_multiplier: u.arbitrary()?,
        completion_multiplier: u.arbitrary()?,
        reasoning_multiplier: u.arbitrary()?,
    };
    let Ok(mut ledger) = Ledger::new(pricing) else {
        return Ok(());
    };
    let mut selector = WorkerSelector::default();
    let t0 = Instant::now();
    let mut now = t0;
    let mut held = BTreeMap::new();
    let mut in_flight = Vec::new();
    let client = |n: u8| ClientId(format!("c{}", n % 4));

    while !u.is_empty() {
        match u.int_in_range(0u8..=9)? {
            0 => {
                let c = client(u.arbitrary()?);
                let _ = ledger.deposit(&c, u.arbitrary()?);
            }
            1 => {
                let c = client(u.arbitrary()?);
                let state = ChainClientState {
                    balance: u.arbitrary()?,
                    stake: u.arbitrary()?,
                    tokens_used: u.arbitrary()?,
                };
                let _ = ledger.sync_client(&c, state);
            }
            2 => {
                let (c, r): (u8, u8) = (u.arbitrary()?, u.arbitrary()?);
                let max_k = Coefficient::try_from(u.arbitrary::<i64>()?);
                if let Ok(max_k) = max_k
                    && let Ok(res) = ledger.reserve_for_request(
                        &client(c),
                        RequestId([r; 32]),
                        max_k,
                        u.arbitrary()?,
                        u.arbitrary()?,
                    )
                {
                    held.insert((c % 4, r), res);
                }
            }
            3 => {
                let key: (u8, u8) = (u.arbitrary::<u8>()? % 4, u.arbitrary()?);
                if let Some(res) = held.remove(&key) {
                    let _ = ledger.release(&client(key.0), res);
                }
            }
            4 => {
                let used = TokensUsed {
                    prompt_tokens_used: u.arbitrary()?,
                    cached_tokens_used: u.arbitrary()?,
                    completion_tokens_used: u.arbitrary()?,
                    reasoning_tokens_used: u.arbitrary()?,
                    total_tokens_used: u.arbitrary()?,
                };
                let k = Coefficient::try_from(u.arbitrary::<i32>()?);
                let (c, w, r): (u8, u8, u8) = (u.arbitrary()?, u.arbitrary()?, u.arbitrary()?);
                if let (Ok(counts), Ok(k)) = (TokenCounts::try_from(&used), k)
                    && let Ok(charge) = ledger.pricing().charge(&counts, k)
                {
                    assert_eq!(
                        charge.client_cost(),
                        charge.worker_credit() + charge.proxy_commission()
                    );
                    let worker = WorkerAccountId(format!("w{}", w % 3));
                    if let Ok(ChargeOutcome::Charged(rec)) =
                        ledger.charge_request(&client(c), &worker, RequestId([r; 32]), &charge)
                    {
                        assert_eq!(
                            rec.charged_tokens + rec.shortfall_tokens,
                            rec.adjusted_tokens
                        );
                    }
                }
            }
            5 => {
                let id = WorkerId(u64::from(u.arbitrary::<u8>()? % 8));
                let model: String = u.arbitrary()?;
                if let Ok(coefficient) = Coefficient::try_from(u.arbitrary::<i32>()?) {
                    selector.upsert_worker(
                        id,
                        WorkerInfo {
                            model,
                            coefficient,
                            max_active_requests: u.arbitrary()?,
                            proxy_count: u.arbitrary()?,
                            enabled: u.arbitrary()?,
                        },
                    );
                }
            }
            6 => {
                let model: String = u.arbitrary()?;
                let exclude: Vec<WorkerId> = (0..u.int_in_range(0u8..=3)?)
                    .map(|i| WorkerId(u64::from(i)))
                    .collect();
                if let Ok(max_k) = Coefficient::try_from(u.arbitrary::<i32>()?)
                    && let Ok(d) = selector.dispatch(&model, max_k, &exclude, now)
                {
                    in_flight.push(d);
                }
            }
            7 => {
                if !in_flight.is_empty() {
                    let i = usize::from(u.arbitrary::<u8>()?) % in_flight.len();
                    let mut d = in_flight.swap_remove(i);
                    selector.on_first_byte(&mut d, now);
                    let outcome = match u.int_in_range(0u8..=2)? {
                        0 => Outcome::Success,
                        1 => Outcome::Failure,
                        _ => Outcome::Cancelled,
                    };
                    selector.on_finish(
                        d,
                        outcome,
                        now + Duration::from_millis(u.arbitrary::<u32>()?.into()),
                    );
                }
            }
            8 => {
                let id = WorkerId(u64::from(u.arbitrary::<u8>()? % 8));
                match u.int_in_range(0u8..=2)? {
                    0 => {
                        selector.remove_worker(id);
                    }
                    1 => {
                        selector.set_enabled(id, u.arbitrary()?);
                    }
                    _ => {
                        if let Ok(k) = Coefficient::try_from(u.arbitrary::<i64>()?) {
                            selector.set_coefficient(id, k);
                        }
                    }
                }
            }
            _ => now += Duration::from_millis(u.arbitrary::<u32>()?.into()),
        }
        assert!(ledger.totals().is_balanced());
        for (_, stats) in selector.snapshot(now) {
            assert!((0.0..=1.0).contains(&stats.success_rate));
        }
        let _ = selector.model_summaries();
    }
    Ok(())
}
