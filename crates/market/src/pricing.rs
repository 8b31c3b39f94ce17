//! Turns metered token counts into adjusted tokens and nanoTON, exactly, and splits the money
//! between the worker and the proxy.
//!
//! Every step is integer arithmetic with `u128` intermediates; the only rounding is one floor per
//! token category (see [`PricingParams::adjust`]). Money is derived from the adjusted total alone,
//! so `client_cost = worker_credit + proxy_commission` holds to the nanoTON by construction.

use std::fmt;

use cocoon_protocol::messages::TokensUsed;
use serde::{Deserialize, Serialize};

use crate::MarketError;

/// The unit of coefficients: 1000 = 1.0×.
pub const COEFFICIENT_ONE: u32 = 1000;

/// The unit of token-category multipliers: 10000 = 1.0×.
pub const MULTIPLIER_ONE: u32 = 10_000;

/// `COEFFICIENT_ONE × MULTIPLIER_ONE`: what `count × coefficient × multiplier` is divided by.
const ADJUST_DIVISOR: u128 = COEFFICIENT_ONE as u128 * MULTIPLIER_ONE as u128;

/// A worker's price factor (1000 = 1.0×), or the largest one a client accepts.
///
/// The wire carries coefficients as signed 32-bit integers, so a `Coefficient` is between 0 and
/// `i32::MAX`; it converts to the wire types without loss.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Coefficient(u32);

impl Coefficient {
    /// 1.0×.
    pub const ONE: Self = Self(COEFFICIENT_ONE);
    /// The reference client's default `max_coefficient` (4.0×).
    pub const DEFAULT_CLIENT_MAX: Self = Self(4000);
    /// The largest coefficient the wire can carry.
    pub const MAX: Self = Self(i32::MAX as u32);

    /// A coefficient of `milli` thousandths (1000 = 1.0×).
    pub fn new(milli: u32) -> Result<Self, MarketError> {
        Self::try_from(i64::from(milli))
    }

    /// The coefficient in thousandths (1000 = 1.0×).
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<i64> for Coefficient {
    type Error = MarketError;

    fn try_from(value: i64) -> Result<Self, MarketError> {
        if (0..=i64::from(i32::MAX)).contains(&value) {
            // The range check makes the conversion exact.
            u32::try_from(value)
                .map(Self)
                .map_err(|_| MarketError::InvalidCoefficient(value))
        } else {
            Err(MarketError::InvalidCoefficient(value))
        }
    }
}

impl TryFrom<i32> for Coefficient {
    type Error = MarketError;

    fn try_from(value: i32) -> Result<Self, MarketError> {
        Self::try_from(i64::from(value))
    }
}

impl From<Coefficient> for i64 {
    fn from(c: Coefficient) -> Self {
        i64::from(c.0)
    }
}

impl From<Coefficient> for i32 {
    fn from(c: Coefficient) -> Self {
        // Construction keeps the value at most `i32::MAX`.
        i32::try_from(c.0).unwrap_or(i32::MAX)
    }
}

impl fmt::Display for Coefficient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:03}x",
            self.0 / COEFFICIENT_ONE,
            self.0 % COEFFICIENT_ONE
        )
    }
}

/// The network's prices: what a client pays and a worker earns per adjusted token, and how much
/// each token category weighs. They live in the root contract and are copied into every proxy,
/// client and worker contract; a proxy never changes them (a new price means a new proxy
/// contract).
///
/// The [`Default`] is our local-mode parameter set (the protocol documents no reference
/// figures): 20 nanoTON per adjusted token for clients, 16 to the worker (the proxy keeps 20 %),
/// prompt 1.0×, cached prompt 0.1×, completion and reasoning 4.0×. These are the figures of the
/// contracts' worked example, so both sides of the project agree on it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PricingParams {
    /// NanoTON a client pays per adjusted token.
    pub price_per_token: u64,
    /// NanoTON a worker earns per adjusted token (at most `price_per_token`; the difference is
    /// the proxy's commission).
    pub worker_fee_per_token: u64,
    /// Weight of prompt tokens that were not cached (10000 = 1.0×).
    pub prompt_multiplier: u32,
    /// Weight of cached prompt tokens (10000 = 1.0×).
    pub cached_multiplier: u32,
    /// Weight of completion tokens that are not reasoning (10000 = 1.0×).
    pub completion_multiplier: u32,
    /// Weight of reasoning tokens (10000 = 1.0×).
    pub reasoning_multiplier: u32,
}

impl Default for PricingParams {
    fn default() -> Self {
        Self {
            price_per_token: 20,
            worker_fee_per_token: 16,
            prompt_multiplier: MULTIPLIER_ONE,
            cached_multiplier: MULTIPLIER_ONE / 10,
            completion_multiplier: 4 * MULTIPLIER_ONE,
            reasoning_multiplier: 4 * MULTIPLIER_ONE,
        }
    }
}

impl PricingParams {
    /// Checks the rules the root contract enforces on every parameter set: a positive price, a
    /// worker fee no larger than the price, positive multipliers.
    pub fn validate(&self) -> Result<(), MarketError> {
        if self.price_per_token == 0 {
            return Err(MarketError::InvalidPricing(
                "price_per_token must be positive",
            ));
        }
        if self.worker_fee_per_token > self.price_per_token {
            return Err(MarketError::InvalidPricing(
                "worker_fee_per_token must not exceed price_per_token",
            ));
        }
        if self.prompt_multiplier == 0
            || self.cached_multiplier == 0
            || self.completion_multiplier == 0
            || self.reasoning_multiplier == 0
        {
            return Err(MarketError::InvalidPricing(
                "token multipliers must be positive",
            ));
        }
        Ok(())
    }

    /// The parameters in which `other` differs from `self`: `(name, self's value, other's)`,
    /// in declaration order. Empty when the two price alike.
    pub fn differences(&self, other: &Self) -> Vec<(&'static str, u64, u64)> {
        let fields = |p: &Self| {
            [
                ("price_per_token", p.price_per_token),
                ("worker_fee_per_token", p.worker_fee_per_token),
                ("prompt_multiplier", u64::from(p.prompt_multiplier)),
                ("cached_multiplier", u64::from(p.cached_multiplier)),
                ("completion_multiplier", u64::from(p.completion_multiplier)),
                ("reasoning_multiplier", u64::from(p.reasoning_multiplier)),
            ]
        };
        fields(self)
            .into_iter()
            .zip(fields(other))
            .filter(|((_, a), (_, b))| a != b)
            .map(|((name, a), (_, b))| (name, a, b))
            .collect()
    }

    /// Adjusted tokens of `count` tokens of one category:
    /// `floor(count × coefficient × multiplier / 10^7)`, computed in one step.
    ///
    /// Flooring once per category (not per factor) loses less than one adjusted token per
    /// category, always in the client's favour, and matches the contracts' tests.
    pub fn adjust(count: u64, coefficient: Coefficient, multiplier: u32) -> u128 {
        // < 2^64 · 2^31 · 2^32 = 2^127: cannot overflow.
        u128::from(count) * u128::from(coefficient.get()) * u128::from(multiplier) / ADJUST_DIVISOR
    }

    /// Adjusted tokens per billing category of `counts` served at `coefficient`.
    pub fn adjusted_tokens(
        &self,
        counts: &TokenCounts,
        coefficient: Coefficient,
    ) -> Result<CategoryTokens, MarketError> {
        let billed = counts.billed();
        let one = |count, multiplier| {
            u64::try_from(Self::adjust(count, coefficient, multiplier))
                .map_err(|_| MarketError::Overflow("adjusted tokens"))
        };
        let adjusted = CategoryTokens {
            prompt: one(billed.prompt, self.prompt_multiplier)?,
            cached: one(billed.cached, self.cached_multiplier)?,
            completion: one(billed.completion, self.completion_multiplier)?,
            reasoning: one(billed.reasoning, self.reasoning_multiplier)?,
        };
        adjusted.checked_total()?;
        Ok(adjusted)
    }

    /// What a client pays for `adjusted_tokens`: `adjusted_tokens × price_per_token` nanoTON.
    pub fn client_cost(&self, adjusted_tokens: u64) -> Result<u64, MarketError> {
        mul_u64(adjusted_tokens, self.price_per_token, "client cost")
    }

    /// What a worker earns for `adjusted_tokens`: `adjusted_tokens × worker_fee_per_token`
    /// nanoTON.
    pub fn worker_credit(&self, adjusted_tokens: u64) -> Result<u64, MarketError> {
        mul_u64(adjusted_tokens, self.worker_fee_per_token, "worker credit")
    }

    /// Prices one finished request: `counts` as the worker metered them, served at the worker's
    /// `coefficient`.
    pub fn charge(
        &self,
        counts: &TokenCounts,
        coefficient: Coefficient,
    ) -> Result<Charge, MarketError> {
        self.validate()?;
        let adjusted = self.adjusted_tokens(counts, coefficient)?;
        let adjusted_total = adjusted.checked_total()?;
        let client_cost = self.client_cost(adjusted_total)?;
        let worker_credit = self.worker_credit(adjusted_total)?;
        // worker_fee ≤ price, so these cannot underflow or overflow once client_cost fits.
        let proxy_commission = client_cost - worker_credit;
        let prompt_total_cost = self.client_cost(adjusted.prompt + adjusted.cached)?;
        let completion_total_cost = self.client_cost(adjusted.completion + adjusted.reasoning)?;
        Ok(Charge {
            coefficient,
            billed: counts.billed(),
            adjusted,
            adjusted_total,
            price_per_token: self.price_per_token,
            worker_fee_per_token: self.worker_fee_per_token,
            client_cost,
            worker_credit,
            proxy_commission,
            usage: UsageCosts {
                prompt_total_cost,
                completion_total_cost,
                total_cost: client_cost,
            },
        })
    }
}

fn mul_u64(a: u64, b: u64, what: &'static str) -> Result<u64, MarketError> {
    a.checked_mul(b).ok_or(MarketError::Overflow(what))
}

/// Token counts of one request as OpenAI reports them: `prompt` includes `cached`, and
/// `completion` includes `reasoning`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct TokenCounts {
    /// Prompt tokens, cached ones included.
    pub prompt: u64,
    /// Prompt tokens served from the prefix cache.
    pub cached: u64,
    /// Completion tokens, reasoning ones included.
    pub completion: u64,
    /// Completion tokens spent on reasoning.
    pub reasoning: u64,
}

impl TokenCounts {
    /// The most of these counts a request could have used, as a proxy pays and a worker
    /// expects to be paid: completion tokens (reasoning included) at most `token_limit`, the
    /// limit the worker was told; prompt tokens (cached included) at most `body_bytes`, the
    /// bytes of the request body (a prompt never has more tokens than its body has bytes). The
    /// parts are bounded by their wholes.
    pub fn within(self, token_limit: u64, body_bytes: u64) -> Self {
        let prompt = self.prompt.min(body_bytes);
        let completion = self.completion.min(token_limit);
        Self {
            prompt,
            cached: self.cached.min(prompt),
            completion,
            reasoning: self.reasoning.min(completion),
        }
    }

    /// [`within`](Self::within) for a transcription: prompt tokens (cached included) at most
    /// `audio_units`, the units the client measured and declared; no completion tokens.
    pub fn within_audio(self, audio_units: u64) -> Self {
        let prompt = self.prompt.min(audio_units);
        Self {
            prompt,
            cached: self.cached.min(prompt),
            completion: 0,
            reasoning: 0,
        }
    }

    /// The counts split into the four disjoint billing categories.
    ///
    /// A report claiming more cached than prompt tokens (or more reasoning than completion
    /// tokens) is inconsistent; the surplus is not billed, so the four categories always add up
    /// to `prompt + completion` and a worker cannot inflate a bill through the sub-counts.
    pub fn billed(&self) -> CategoryTokens {
        let cached = self.cached.min(self.prompt);
        let reasoning = self.reasoning.min(self.completion);
        CategoryTokens {
            prompt: self.prompt - cached,
            cached,
            completion: self.completion - reasoning,
            reasoning,
        }
    }
}

impl TryFrom<&TokensUsed> for TokenCounts {
    type Error = MarketError;

    /// Reads a wire report. `total_tokens_used` is not trusted for billing (it is implied by the
    /// other counts) and therefore not checked.
    fn try_from(used: &TokensUsed) -> Result<Self, MarketError> {
        let count = |category, value: i64| {
            u64::try_from(value).map_err(|_| MarketError::NegativeTokenCount { category, value })
        };
        Ok(Self {
            prompt: count("prompt", used.prompt_tokens_used)?,
            cached: count("cached", used.cached_tokens_used)?,
            completion: count("completion", used.completion_tokens_used)?,
            reasoning: count("reasoning", used.reasoning_tokens_used)?,
        })
    }
}

impl TryFrom<TokensUsed> for TokenCounts {
    type Error = MarketError;

    fn try_from(used: TokensUsed) -> Result<Self, MarketError> {
        Self::try_from(&used)
    }
}

impl From<TokenCounts> for TokensUsed {
    /// The wire report of `counts`; counts beyond `i64::MAX` are clamped, and
    /// `total_tokens_used` is `prompt + completion`.
    fn from(counts: TokenCounts) -> Self {
        let wire = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        TokensUsed {
            prompt_tokens_used: wire(counts.prompt),
            cached_tokens_used: wire(counts.cached),
            completion_tokens_used: wire(counts.completion),
            reasoning_tokens_used: wire(counts.reasoning),
            total_tokens_used: wire(counts.prompt.saturating_add(counts.completion)),
        }
    }
}

/// One number per billing category: prompt tokens that were not cached, cached prompt tokens,
/// completion tokens that are not reasoning, reasoning tokens. Used for raw and for adjusted
/// counts.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct CategoryTokens {
    /// Prompt tokens not served from the cache.
    pub prompt: u64,
    /// Cached prompt tokens.
    pub cached: u64,
    /// Completion tokens that are not reasoning.
    pub completion: u64,
    /// Reasoning tokens.
    pub reasoning: u64,
}

impl CategoryTokens {
    /// The sum of the four categories, if it fits in 64 bits.
    pub fn checked_total(&self) -> Result<u64, MarketError> {
        self.prompt
            .checked_add(self.cached)
            .and_then(|t| t.checked_add(self.completion))
            .and_then(|t| t.checked_add(self.reasoning))
            .ok_or(MarketError::Overflow("adjusted tokens"))
    }
}

/// The costs a client adds to the OpenAI `usage` object, in nanoTON.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct UsageCosts {
    /// Cost of the prompt (uncached and cached tokens).
    pub prompt_total_cost: u64,
    /// Cost of the completion (visible and reasoning tokens).
    pub completion_total_cost: u64,
    /// `prompt_total_cost + completion_total_cost`: what the client is charged.
    pub total_cost: u64,
}

/// The price of one finished request, computed by [`PricingParams::charge`].
///
/// Its fields can only be read, so a `Charge` always obeys
/// `client_cost = adjusted_total × price = worker_credit + proxy_commission`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub struct Charge {
    coefficient: Coefficient,
    billed: CategoryTokens,
    adjusted: CategoryTokens,
    adjusted_total: u64,
    price_per_token: u64,
    worker_fee_per_token: u64,
    client_cost: u64,
    worker_credit: u64,
    proxy_commission: u64,
    usage: UsageCosts,
}

impl Charge {
    /// The coefficient the worker served the request at.
    pub fn coefficient(&self) -> Coefficient {
        self.coefficient
    }

    /// Raw token counts per billing category.
    pub fn billed_tokens(&self) -> CategoryTokens {
        self.billed
    }

    /// Adjusted tokens per billing category.
    pub fn adjusted_tokens(&self) -> CategoryTokens {
        self.adjusted
    }

    /// The sum of the adjusted tokens: what vouchers count.
    pub fn adjusted_total(&self) -> u64 {
        self.adjusted_total
    }

    /// The price per adjusted token this charge was computed with (nanoTON).
    pub fn price_per_token(&self) -> u64 {
        self.price_per_token
    }

    /// The worker fee per adjusted token this charge was computed with (nanoTON).
    pub fn worker_fee_per_token(&self) -> u64 {
        self.worker_fee_per_token
    }

    /// What the client pays, in nanoTON.
    pub fn client_cost(&self) -> u64 {
        self.client_cost
    }

    /// What the worker earns, in nanoTON.
    pub fn worker_credit(&self) -> u64 {
        self.worker_credit
    }

    /// What the proxy keeps, in nanoTON.
    pub fn proxy_commission(&self) -> u64 {
        self.proxy_commission
    }

    /// The costs the client reports in `usage`.
    pub fn usage_costs(&self) -> UsageCosts {
        self.usage
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn differences_name_every_parameter_that_differs_and_nothing_else() {
        let ours = PricingParams::default();
        assert!(ours.differences(&ours).is_empty());
        let dearer = PricingParams {
            completion_multiplier: 10 * MULTIPLIER_ONE,
            price_per_token: 21,
            ..ours
        };
        assert_eq!(
            ours.differences(&dearer),
            vec![
                ("price_per_token", 20, 21),
                ("completion_multiplier", 40_000, 100_000)
            ]
        );
    }

    #[test]
    fn worked_example_matches_the_contracts() {
        let params = PricingParams::default();
        let counts = TokenCounts {
            prompt: 1200,
            cached: 200,
            completion: 500,
            reasoning: 100,
        };
        let charge = params
            .charge(&counts, Coefficient::new(1500).unwrap())
            .unwrap();
        assert_eq!(
            charge.adjusted_tokens(),
            CategoryTokens {
                prompt: 1500,
                cached: 30,
                completion: 2400,
                reasoning: 600
            }
        );
        assert_eq!(charge.adjusted_total(), 4530);
        assert_eq!(charge.client_cost(), 90_600);
        assert_eq!(charge.worker_credit(), 72_480);
        assert_eq!(charge.proxy_commission(), 18_120);
        assert_eq!(
            charge.usage_costs(),
            UsageCosts {
                prompt_total_cost: 30_600,
                completion_total_cost: 60_000,
                total_cost: 90_600
            }
        );
    }

    #[test]
    fn rounding_floors_once_per_category() {
        // 7 tokens × 1.234 × 0.1 = 0.8638 → 0, not 7 × floor(...) per step.
        assert_eq!(
            PricingParams::adjust(7, Coefficient::new(1234).unwrap(), 1000),
            0
        );
        // 1000 tokens × 1.234 × 0.1 = 123.4 → 123.
        assert_eq!(
            PricingParams::adjust(1000, Coefficient::new(1234).unwrap(), 1000),
            123
        );
        // 3 tokens × 0.333 × 1.0 = 0.999 → 0 (in the client's favour).
        assert_eq!(
            PricingParams::adjust(3, Coefficient::new(333).unwrap(), 10_000),
            0
        );
    }

    #[test]
    fn inconsistent_sub_counts_are_not_billed() {
        let counts = TokenCounts {
            prompt: 10,
            cached: 50,
            completion: 5,
            reasoning: 9,
        };
        assert_eq!(
            counts.billed(),
            CategoryTokens {
                prompt: 0,
                cached: 10,
                completion: 0,
                reasoning: 5
            }
        );
    }

    #[test]
    fn invalid_params_are_refused() {
        let mut p = PricingParams {
            price_per_token: 0,
            ..PricingParams::default()
        };
        assert!(matches!(p.validate(), Err(MarketError::InvalidPricing(_))));
        p.price_per_token = 10;
        p.worker_fee_per_token = 11;
        assert!(matches!(p.validate(), Err(MarketError::InvalidPricing(_))));
        p.worker_fee_per_token = 10;
        p.cached_multiplier = 0;
        assert!(matches!(
            p.charge(&TokenCounts::default(), Coefficient::ONE),
            Err(MarketError::InvalidPricing(_))
        ));
        p.cached_multiplier = 1;
        assert!(p.validate().is_ok());
    }

    #[test]
    fn huge_counts_overflow_with_a_typed_error() {
        let params = PricingParams::default();
        let counts = TokenCounts {
            prompt: u64::MAX,
            cached: 0,
            completion: 0,
            reasoning: 0,
        };
        assert_eq!(
            params.charge(&counts, Coefficient::MAX),
            Err(MarketError::Overflow("adjusted tokens"))
        );
        let counts = TokenCounts {
            prompt: u64::MAX / 2,
            cached: 0,
            completion: 0,
            reasoning: 0,
        };
        assert_eq!(
            params.charge(&counts, Coefficient::ONE),
            Err(MarketError::Overflow("client cost"))
        );
    }

    #[test]
    fn wire_counts_convert_both_ways() {
        let used = TokensUsed {
            prompt_tokens_used: 12,
            cached_tokens_used: 2,
            completion_tokens_used: 30,
            reasoning_tokens_used: 4,
            total_tokens_used: 999,
        };
        let counts = TokenCounts::try_from(&used).unwrap();
        assert_eq!(
            counts,
            TokenCounts {
                prompt: 12,
                cached: 2,
                completion: 30,
                reasoning: 4
            }
        );
        let back = TokensUsed::from(counts);
        assert_eq!(back.total_tokens_used, 42);
        let bad = TokensUsed {
            reasoning_tokens_used: -1,
            ..used
        };
        assert_eq!(
            TokenCounts::try_from(bad),
            Err(MarketError::NegativeTokenCount {
                category: "reasoning",
                value: -1
            })
        );
    }

    #[test]
    fn coefficients_stay_in_the_wire_range() {
        assert_eq!(
            Coefficient::try_from(-1i32),
            Err(MarketError::InvalidCoefficient(-1))
        );
        assert_eq!(
            Coefficient::try_from(i64::from(i32::MAX) + 1),
            Err(MarketError::InvalidCoefficient(i64::from(i32::MAX) + 1))
        );
        assert!(Coefficient::new(u32::MAX).is_err());
        assert_eq!(i32::from(Coefficient::MAX), i32::MAX);
        assert_eq!(Coefficient::new(1500).unwrap().to_string(), "1.500x");
        assert_eq!(Coefficient::ONE.to_string(), "1.000x");
        let json = serde_json::to_string(&Coefficient::new(2500).unwrap()).unwrap();
        assert_eq!(json, "2500");
        assert!(serde_json::from_str::<Coefficient>("-5").is_err());
    }

    #[test]
    fn params_deserialize_with_defaults_and_reject_unknown_fields() {
        let p: PricingParams = serde_json::from_str(r#"{"price_per_token": 30}"#).unwrap();
        assert_eq!(
            p,
            PricingParams {
                price_per_token: 30,
                ..PricingParams::default()
            }
        );
        assert!(serde_json::from_str::<PricingParams>(r#"{"price": 30}"#).is_err());
    }
}
