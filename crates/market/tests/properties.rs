//! Property tests of the accounting: exact money splits, monotone prices, reservations that bound
//! real charges, books that balance under any sequence of operations, and selections that obey
//! every filter.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cocoon_market::reservation::required_tokens;
use cocoon_market::{
    ChainClientState, ChargeOutcome, ClientId, Coefficient, Ledger, LedgerRecord, MarketError,
    Outcome, PricingParams, RequestId, TokenCounts, WorkerAccountId, WorkerId, WorkerInfo,
    WorkerSelector,
};
use proptest::prelude::*;

fn params() -> impl Strategy<Value = PricingParams> {
    (
        1u64..1_000_000,
        0u64..=100,
        1u32..200_000,
        1u32..200_000,
        1u32..200_000,
        1u32..200_000,
    )
        .prop_map(|(price, fee_percent, p, c, o, r)| PricingParams {
            price_per_token: price,
            worker_fee_per_token: price * fee_percent / 100,
            prompt_multiplier: p,
            cached_multiplier: c,
            completion_multiplier: o,
            reasoning_multiplier: r,
        })
}

fn counts(max: u64) -> impl Strategy<Value = TokenCounts> {
    (0..max, 0..max, 0..max, 0..max).prop_map(|(prompt, cached, completion, reasoning)| {
        TokenCounts {
            prompt,
            cached: cached.min(prompt),
            completion,
            reasoning: reasoning.min(completion),
        }
    })
}

fn coefficient() -> impl Strategy<Value = Coefficient> {
    (0u32..100_000).prop_map(|c| Coefficient::new(c).unwrap())
}

/// The adjusted total computed independently, in u128, without overflow checks.
fn reference_total(p: &PricingParams, t: &TokenCounts, k: Coefficient) -> u128 {
    let one = |n: u64, m: u32| u128::from(n) * u128::from(k.get()) * u128::from(m) / 10_000_000;
    one(t.prompt - t.cached, p.prompt_multiplier)
        + one(t.cached, p.cached_multiplier)
        + one(t.completion - t.reasoning, p.completion_multiplier)
        + one(t.reasoning, p.reasoning_multiplier)
}

proptest! {
    #[test]
    fn charges_split_money_exactly(p in params(), t in counts(1 << 40), k in coefficient()) {
        let exact = reference_total(&p, &t, k);
        match p.charge(&t, k) {
            Ok(c) => {
                prop_assert_eq!(u128::from(c.adjusted_total()), exact);
                let a = c.adjusted_tokens();
                prop_assert_eq!(a.prompt + a.cached + a.completion + a.reasoning, c.adjusted_total());
                prop_assert_eq!(c.client_cost(), c.adjusted_total() * p.price_per_token);
                prop_assert_eq!(c.worker_credit(), c.adjusted_total() * p.worker_fee_per_token);
                prop_assert_eq!(c.client_cost(), c.worker_credit() + c.proxy_commission());
                let u = c.usage_costs();
                prop_assert_eq!(u.prompt_total_cost + u.completion_total_cost, u.total_cost);
                prop_assert_eq!(u.total_cost, c.client_cost());
                let b = c.billed_tokens();
                prop_assert_eq!(b.prompt + b.cached, t.prompt);
                prop_assert_eq!(b.completion + b.reasoning, t.completion);
            }
            Err(MarketError::Overflow(_)) => {
                prop_assert!(exact * u128::from(p.price_per_token) > u128::from(u64::MAX));
            }
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
    }

    #[test]
    fn prices_are_monotone(
        p in params(),
        t in counts(1 << 24),
        k in coefficient(),
        extra in 0u64..1 << 20,
        which in 0usize..5,
    ) {
        let base = p.charge(&t, k).unwrap();
        let mut more = t;
        let mut k2 = k;
        match which {
            0 => more.prompt += extra,
            1 => { more.prompt += extra; more.cached += extra; }
            2 => more.completion += extra,
            3 => { more.completion += extra; more.reasoning += extra; }
            _ => k2 = Coefficient::new(k.get() + u32::try_from(extra).unwrap()).unwrap(),
        }
        let bigger = p.charge(&more, k2).unwrap();
        prop_assert!(bigger.adjusted_total() >= base.adjusted_total());
        prop_assert!(bigger.client_cost() >= base.client_cost());
        prop_assert!(bigger.worker_credit() >= base.worker_credit());
        prop_assert!(bigger.proxy_commission() >= base.proxy_commission());
        // Dearer multipliers never make a request cheaper either.
        let dearer = PricingParams { completion_multiplier: p.completion_multiplier + 1, ..p };
        prop_assert!(dearer.charge(&t, k).unwrap().client_cost() >= base.client_cost());
    }

    #[test]
    fn reservations_bound_every_charge_within_their_limits(
        p in params(),
        max_k in coefficient(),
        max_tokens in 0u64..1 << 24,
        body_bytes in 0u64..1 << 24,
        fractions in (0u64..=100, 0u64..=100, 0u64..=100, 0u64..=100, 0u32..=100),
    ) {
        let reserved = required_tokens(&p, max_k, max_tokens, body_bytes).unwrap();
        let (fp, fc, fo, fr, fk) = fractions;
        let prompt = body_bytes * fp / 100;
        let completion = max_tokens * fo / 100;
        let t = TokenCounts {
            prompt,
            cached: prompt * fc / 100,
            completion,
            reasoning: completion * fr / 100,
        };
        let k = Coefficient::new(max_k.get() * fk / 100).unwrap();
        prop_assert!(p.charge(&t, k).unwrap().adjusted_total() <= reserved);
    }
}

#[derive(Clone, Debug)]
enum Op {
    Deposit {
        client: u8,
        nanoton: u64,
    },
    Sync {
        client: u8,
        balance: u64,
        stake: u64,
        chain_used: u64,
    },
    Reserve {
        client: u8,
        request: u8,
        tokens: u64,
    },
    Release {
        client: u8,
        request: u8,
    },
    Charge {
        client: u8,
        worker: u8,
        request: u8,
        counts: TokenCounts,
        k: u32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..3, 0u64..2_000_000).prop_map(|(client, nanoton)| Op::Deposit { client, nanoton }),
        (0u8..3, 0u64..2_000_000, 0u64..1_000_000, 0u64..50_000).prop_map(
            |(client, balance, stake, chain_used)| Op::Sync {
                client,
                balance,
                stake,
                chain_used
            }
        ),
        (0u8..4, 0u8..24, 0u64..50_000).prop_map(|(client, request, tokens)| Op::Reserve {
            client,
            request,
            tokens
        }),
        (0u8..3, 0u8..24).prop_map(|(client, request)| Op::Release { client, request }),
        (0u8..4, 0u8..3, 0u8..24, counts(5_000), 0u32..5_000).prop_map(
            |(client, worker, request, counts, k)| Op::Charge {
                client,
                worker,
                request,
                counts,
                k
            }
        ),
    ]
}

fn client(n: u8) -> ClientId {
    ClientId(format!("client-{n}"))
}

fn rid(n: u8) -> RequestId {
    RequestId([n; 32])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn books_balance_under_any_sequence(p in params(), ops in prop::collection::vec(op(), 1..80)) {
        let mut ledger = Ledger::new(p).unwrap();
        let mut records: Vec<LedgerRecord> = Vec::new();
        let mut held: BTreeMap<(u8, u8), cocoon_market::Reservation> = BTreeMap::new();
        let mut charged_ids = std::collections::BTreeSet::new();
        for op in ops {
            match op {
                Op::Deposit { client: c, nanoton } => {
                    if let Ok(r) = ledger.deposit(&client(c), nanoton) {
                        records.push(r);
                    }
                }
                Op::Sync { client: c, balance, stake, chain_used } => {
                    let state = ChainClientState { balance, stake, tokens_used: chain_used };
                    records.push(ledger.sync_client(&client(c), state).unwrap());
                }
                Op::Reserve { client: c, request, tokens } => {
                    let before = ledger.client(&client(c)).map(|a| a.available_tokens());
                    match ledger.reserve(&client(c), rid(request), tokens) {
                        Ok(r) => {
                            prop_assert!(tokens <= before.unwrap());
                            held.insert((c, request), r);
                        }
                        Err(MarketError::InsufficientBalance { needed_tokens, available_tokens }) => {
                            prop_assert_eq!(needed_tokens, tokens);
                            prop_assert!(available_tokens < tokens);
                        }
                        Err(MarketError::UnknownClient(_)) => prop_assert!(before.is_none()),
                        Err(MarketError::DuplicateReservation(_)) => {
                            prop_assert!(held.contains_key(&(c, request)));
                        }
                        Err(MarketError::RequestAlreadyCharged(_)) => {
                            prop_assert!(charged_ids.contains(&request));
                        }
                        Err(other) => prop_assert!(false, "unexpected {other:?}"),
                    }
                }
                Op::Release { client: c, request } => {
                    if let Some(r) = held.remove(&(c, request)) {
                        ledger.release(&client(c), r).unwrap();
                        prop_assert_eq!(
                            ledger.release(&client(c), r),
                            Err(MarketError::UnknownReservation(rid(request)))
                        );
                    }
                }
                Op::Charge { client: c, worker, request, counts, k } => {
                    let charge = p.charge(&counts, Coefficient::new(k).unwrap()).unwrap();
                    let w = WorkerAccountId(format!("worker-{worker}"));
                    let before = ledger.totals();
                    match ledger.charge_request(&client(c), &w, rid(request), &charge) {
                        Ok(ChargeOutcome::Charged(rec)) => {
                            prop_assert!(charged_ids.insert(request));
                            prop_assert_eq!(rec.charged_tokens + rec.shortfall_tokens, charge.adjusted_total());
                            prop_assert_eq!(rec.client_cost + rec.shortfall_tokens * p.price_per_token,
                                rec.worker_credit + rec.proxy_commission);
                            held.remove(&(c, request));
                            records.push(LedgerRecord::RequestCharged(rec));
                        }
                        Ok(ChargeOutcome::AlreadyCharged) => {
                            prop_assert!(charged_ids.contains(&request));
                            prop_assert_eq!(ledger.totals(), before);
                        }
                        Err(MarketError::UnknownClient(_)) => {
                            prop_assert!(ledger.client(&client(c)).is_none());
                        }
                        Err(other) => prop_assert!(false, "unexpected {other:?}"),
                    }
                }
            }

            let totals = ledger.totals();
            prop_assert!(totals.is_balanced());
            prop_assert_eq!(totals.requests as usize, charged_ids.len());
            let mut shortfall_sum = 0u128;
            for c in 0..4u8 {
                let Some(account) = ledger.client(&client(c)) else { continue };
                let open: Vec<u64> =
                    held.iter().filter(|((hc, _), _)| *hc == c).map(|(_, r)| r.tokens()).collect();
                prop_assert_eq!(account.reserved(), open.iter().sum::<u64>());
                prop_assert_eq!(account.open_reservations(), open.len());
                prop_assert!(account.tokens_used() >= account.tokens_on_chain());
                shortfall_sum += u128::from(account.shortfall_tokens());
            }
            let earned: u128 = ledger.workers().map(|(_, w)| u128::from(w.tokens_earned)).sum();
            prop_assert_eq!(earned, totals.adjusted_tokens);
            let shortfall_tokens = totals.shortfall / u128::from(p.price_per_token);
            prop_assert_eq!(shortfall_sum, shortfall_tokens);
        }

        // The records rebuild the same books.
        let rebuilt = Ledger::replay(p, &records).unwrap();
        prop_assert_eq!(rebuilt.totals(), ledger.totals());
        for (id, account) in ledger.clients() {
            let other = rebuilt.client(id).unwrap();
            prop_assert_eq!(other.tokens_used(), account.tokens_used());
            prop_assert_eq!(other.shortfall_tokens(), account.shortfall_tokens());
            prop_assert_eq!(other.token_limit(), account.token_limit());
        }
        prop_assert_eq!(
            rebuilt.workers().collect::<Vec<_>>(),
            ledger.workers().collect::<Vec<_>>()
        );
    }
}

#[derive(Clone, Debug)]
enum SelOp {
    Upsert {
        id: u8,
        model: u8,
        coefficient: u32,
        max_active: u32,
        proxies: u32,
        enabled: bool,
    },
    Remove {
        id: u8,
    },
    Dispatch {
        model: u8,
        max_coefficient: u32,
        exclude: Vec<u8>,
    },
    Finish {
        index: usize,
        outcome: u8,
        after_ms: u64,
    },
    Advance {
        ms: u64,
    },
}

fn sel_op() -> impl Strategy<Value = SelOp> {
    prop_oneof![
        (0u8..6, 0u8..3, 0u32..5000, 0u32..6, 0u32..3, any::<bool>()).prop_map(
            |(id, model, coefficient, max_active, proxies, enabled)| SelOp::Upsert {
                id,
                model,
                coefficient,
                max_active,
                proxies,
                enabled
            }
        ),
        (0u8..6).prop_map(|id| SelOp::Remove { id }),
        (0u8..3, 0u32..5000, prop::collection::vec(0u8..6, 0..3)).prop_map(
            |(model, max_coefficient, exclude)| SelOp::Dispatch {
                model,
                max_coefficient,
                exclude
            }
        ),
        (0usize..16, 0u8..3, 0u64..5000).prop_map(|(index, outcome, after_ms)| SelOp::Finish {
            index,
            outcome,
            after_ms
        }),
        (0u64..10_000).prop_map(|ms| SelOp::Advance { ms }),
    ]
}

fn model_name(m: u8, variant: u8) -> String {
    format!("model-{m}@v{variant}")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn selections_obey_every_filter(ops in prop::collection::vec(sel_op(), 1..120)) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut sel = WorkerSelector::default();
        let mut in_flight = Vec::new();
        for op in ops {
            match op {
                SelOp::Upsert { id, model, coefficient, max_active, proxies, enabled } => {
                    sel.upsert_worker(WorkerId(u64::from(id)), WorkerInfo {
                        model: model_name(model, id),
                        coefficient: Coefficient::new(coefficient).unwrap(),
                        max_active_requests: max_active,
                        proxy_count: proxies,
                        enabled,
                    });
                }
                SelOp::Remove { id } => {
                    sel.remove_worker(WorkerId(u64::from(id)));
                }
                SelOp::Dispatch { model, max_coefficient, exclude } => {
                    let exclude: Vec<WorkerId> = exclude.into_iter().map(|e| WorkerId(u64::from(e))).collect();
                    let max = Coefficient::new(max_coefficient).unwrap();
                    let wanted = format!("model-{model}");
                    let picked = sel.select(&wanted, max, &exclude, now);
                    let again = sel.select(&wanted, max, &exclude, now);
                    prop_assert_eq!(&picked, &again);
                    if let Ok(id) = picked {
                        let info = sel.worker_info(id).unwrap();
                        let stats = sel.worker_stats(id, now).unwrap();
                        let prefix = format!("{wanted}@");
                        prop_assert!(info.model.starts_with(&prefix));
                        prop_assert!(info.enabled);
                        prop_assert!(info.coefficient <= max);
                        prop_assert!(!exclude.contains(&id));
                        prop_assert!(stats.running < info.capacity());
                        prop_assert!(stats.cooldown_remaining_ms.is_none());
                        in_flight.push(sel.on_start(id, now).unwrap());
                    }
                }
                SelOp::Finish { index, outcome, after_ms } => {
                    if !in_flight.is_empty() {
                        let mut d = in_flight.remove(index % in_flight.len());
                        let end = now + Duration::from_millis(after_ms);
                        sel.on_first_byte(&mut d, now + Duration::from_millis(after_ms / 2));
                        let outcome = match outcome {
                            0 => Outcome::Success,
                            1 => Outcome::Failure,
                            _ => Outcome::Cancelled,
                        };
                        sel.on_finish(d, outcome, end);
                    }
                }
                SelOp::Advance { ms } => now += Duration::from_millis(ms),
            }
            for (id, stats) in sel.snapshot(now) {
                prop_assert!((0.0..=1.0).contains(&stats.success_rate));
                // Only dispatches of the current incarnation count; capacity may have shrunk
                // under running requests, never grown past what was dispatched.
                let mine = in_flight.iter().filter(|d| d.worker() == id).count();
                prop_assert!(stats.running as usize <= mine);
            }
        }
    }
}

proptest! {
    #[test]
    fn extreme_inputs_are_refused_without_panicking(
        price in 1u64..,
        fee_percent in 0u64..=100,
        multipliers in prop::array::uniform4(1u32..),
        raw in prop::array::uniform4(any::<u64>()),
        k in 0u32..=i32::MAX as u32,
        chain in (any::<u64>(), any::<u64>(), any::<u64>()),
        deposits in prop::collection::vec(any::<u64>(), 0..4),
        request in (any::<u64>(), any::<u64>(), 0u32..=i32::MAX as u32),
    ) {
        let p = PricingParams {
            price_per_token: price,
            worker_fee_per_token: price / 100 * fee_percent,
            prompt_multiplier: multipliers[0],
            cached_multiplier: multipliers[1],
            completion_multiplier: multipliers[2],
            reasoning_multiplier: multipliers[3],
        };
        let counts = TokenCounts { prompt: raw[0], cached: raw[1], completion: raw[2], reasoning: raw[3] };
        let k = Coefficient::new(k).unwrap();
        let charge = match p.charge(&counts, k) {
            Ok(c) => {
                prop_assert_eq!(c.client_cost(), c.worker_credit() + c.proxy_commission());
                Some(c)
            }
            Err(MarketError::Overflow(_)) => None,
            Err(other) => return Err(TestCaseError::fail(format!("unexpected {other:?}"))),
        };

        let mut ledger = Ledger::new(p).unwrap();
        let alice = ClientId("alice".into());
        let state = ChainClientState { balance: chain.0, stake: chain.1, tokens_used: chain.2 };
        ledger.sync_client(&alice, state).unwrap();
        for d in deposits {
            match ledger.deposit(&alice, d) {
                Ok(_) | Err(MarketError::Overflow(_)) => {}
                Err(other) => return Err(TestCaseError::fail(format!("unexpected {other:?}"))),
            }
        }
        let (max_tokens, body, max_k) = request;
        let id = RequestId([9; 32]);
        match ledger.reserve_for_request(&alice, id, Coefficient::new(max_k).unwrap(), max_tokens, body) {
            Ok(_) | Err(MarketError::Overflow(_) | MarketError::InsufficientBalance { .. }) => {}
            Err(other) => return Err(TestCaseError::fail(format!("unexpected {other:?}"))),
        }
        if let Some(c) = charge {
            let gpu = WorkerAccountId("gpu".into());
            let out = ledger.charge_request(&alice, &gpu, id, &c).unwrap();
            prop_assert!(matches!(out, ChargeOutcome::Charged(_)));
            let account = ledger.client(&alice).unwrap();
            prop_assert!(account.tokens_used() <= account.token_limit().max(chain.2));
            prop_assert_eq!(account.reserved(), 0);
        }
        prop_assert!(ledger.totals().is_balanced());
    }
}
