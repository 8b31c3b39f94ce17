//! The network's prices as the contracts hold them, in the market's terms. Adjusted tokens are
//! computed off chain with the token multipliers and settled on chain at `price_per_token`,
//! so a node that settles on a chain must price with its contract's parameters, not with
//! figures from its own configuration: an operator who raised a multiplier in a file would
//! otherwise charge clients more adjusted tokens than they used, and the contract, which
//! only sees the cumulative count, would accept them.

use cocoon_market::PricingParams;
use cocoon_ton::contracts::ParamsCore;

use crate::ChainError;

/// The prices `core` sets, checked by the rules the root contract enforces.
///
/// # Errors
/// [`ChainError::Prices`] when a price does not fit the market's 64-bit amounts or the set
/// breaks a rule (a zero price or multiplier, a worker fee above the price).
pub fn contract_pricing(core: &ParamsCore) -> Result<PricingParams, ChainError> {
    let price = |name: &str, v: u128| {
        u64::try_from(v).map_err(|_| ChainError::Prices(format!("{name} {v} is out of range")))
    };
    let pricing = PricingParams {
        price_per_token: price("price_per_token", core.price_per_token)?,
        worker_fee_per_token: price("worker_fee_per_token", core.worker_fee_per_token)?,
        prompt_multiplier: core.prompt_multiplier,
        cached_multiplier: core.cached_multiplier,
        completion_multiplier: core.completion_multiplier,
        reasoning_multiplier: core.reasoning_multiplier,
    };
    pricing
        .validate()
        .map_err(|e| ChainError::Prices(e.to_string()))?;
    Ok(pricing)
}

/// The prices of the proxy contract at `proxy_contract`, read on the chain `chain`
/// (`emulated=HOST:PORT` or `toncenter=URL`): what a client or worker holds the proxy's
/// charges and payments to.
///
/// # Errors
/// The chain's error when it cannot be opened or read, [`ChainError::Address`] for a contract
/// that is not an address, [`ChainError::Prices`] for prices the market cannot use.
pub async fn proxy_contract_pricing(
    chain: &str,
    api_key: Option<&str>,
    proxy_contract: &str,
) -> Result<PricingParams, ChainError> {
    let (_, state) = read_proxy_contract(chain, api_key, proxy_contract).await?;
    contract_pricing(state.identity.params.core())
}

/// The proxy contract at `proxy_contract` on `chain`: its address and state.
async fn read_proxy_contract(
    chain: &str,
    api_key: Option<&str>,
    proxy_contract: &str,
) -> Result<(cocoon_ton::Address, cocoon_ton::contracts::ProxyState), ChainError> {
    let chain = chain
        .parse::<crate::operator::ChainSpec>()?
        .open(api_key)
        .await?;
    let contract = crate::parse_address(proxy_contract)?;
    let state = crate::operator::read_proxy_state(chain.as_ref(), &contract).await?;
    Ok((contract, state))
}

/// The prices a client or worker holds a proxy's bookings to: with a chain, those of the proxy
/// contract at `proxy_contract` (read within `timeout`), which the proxy must charge and pay
/// by and which stay its contract's when the root's change; without one, `configured`.
///
/// # Errors
/// As [`proxy_contract_pricing`]; [`ChainError::Prices`] when the chain does not answer in
/// time.
pub async fn booking_prices(
    chain: Option<&str>,
    api_key: Option<&str>,
    proxy_contract: &str,
    configured: PricingParams,
    timeout: std::time::Duration,
) -> Result<PricingParams, ChainError> {
    let Some(chain) = chain else {
        return Ok(configured);
    };
    tokio::time::timeout(
        timeout,
        proxy_contract_pricing(chain, api_key, proxy_contract),
    )
    .await
    .map_err(|_| ChainError::Prices(format!("the chain gave no answer in {timeout:?}")))?
}

/// Checks that `configured` prices as the contract's parameters `core` do.
///
/// # Errors
/// [`ChainError::PricesDiffer`] naming every parameter that differs, with both values.
pub fn check_pricing(configured: &PricingParams, core: &ParamsCore) -> Result<(), ChainError> {
    let on_chain = contract_pricing(core)?;
    let differences = configured.differences(&on_chain);
    if differences.is_empty() {
        return Ok(());
    }
    Err(ChainError::PricesDiffer(
        differences
            .iter()
            .map(|(name, ours, theirs)| format!("{name} {ours} (the contract's: {theirs})"))
            .collect::<Vec<_>>()
            .join(", "),
    ))
}

/// What a worker holds a proxy that settles on `proxy_contract` to, read on `chain` within
/// `timeout`: the contract's prices, and the address of `owner`'s worker contract at it, the
/// only one its payout vouchers may pay (`None` when `owner` is not an address, as a worker in
/// local mode names itself). The address is derived from the contract's own key and
/// parameters, so a proxy cannot name another.
///
/// # Errors
/// As [`proxy_contract_pricing`]; [`ChainError::Prices`] when the chain does not answer in
/// time; [`ChainError::UnexpectedState`] when the worker contract's address cannot be derived.
pub async fn worker_terms(
    chain: &str,
    api_key: Option<&str>,
    proxy_contract: &str,
    owner: &str,
    timeout: std::time::Duration,
) -> Result<(PricingParams, Option<cocoon_ton::Address>), ChainError> {
    let read = async {
        let (contract, state) = read_proxy_contract(chain, api_key, proxy_contract).await?;
        let prices = contract_pricing(state.identity.params.core())?;
        let worker = match crate::parse_address(owner) {
            Ok(owner) => Some(
                cocoon_ton::contracts::worker_address(
                    &owner,
                    &contract,
                    &state.identity.proxy_public_key,
                    &state.identity.params,
                )
                .map_err(|e| ChainError::UnexpectedState {
                    contract: contract.to_raw(),
                    detail: format!("the worker contract's address cannot be derived: {e}"),
                })?,
            ),
            Err(_) => None,
        };
        Ok((prices, worker))
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| ChainError::Prices(format!("the chain gave no answer in {timeout:?}")))?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::emulator::local_params_core;

    #[test]
    fn local_mode_prices_are_the_market_defaults() {
        assert_eq!(
            contract_pricing(&local_params_core()).unwrap(),
            PricingParams::default()
        );
        check_pricing(&PricingParams::default(), &local_params_core()).unwrap();
    }

    #[test]
    fn a_configured_multiplier_above_the_contracts_is_named() {
        let dearer = PricingParams {
            completion_multiplier: 400_000,
            ..PricingParams::default()
        };
        let err = check_pricing(&dearer, &local_params_core()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the configured [pricing] differs from the proxy contract's parameters: \
             completion_multiplier 400000 (the contract's: 40000)"
        );
    }

    #[test]
    fn contract_prices_out_of_range_or_against_the_rules_are_refused() {
        let huge = ParamsCore {
            price_per_token: u128::from(u64::MAX) + 1,
            ..local_params_core()
        };
        assert!(matches!(
            contract_pricing(&huge),
            Err(ChainError::Prices(_))
        ));
        let free = ParamsCore {
            completion_multiplier: 0,
            ..local_params_core()
        };
        assert!(matches!(
            contract_pricing(&free),
            Err(ChainError::Prices(_))
        ));
    }
}
