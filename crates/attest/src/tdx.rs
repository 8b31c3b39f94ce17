//! Intel TDX quotes: parsing (for measurements and report data), a signature pre-check with
//! a precise error, the collateral freshness window, and full DCAP verification through
//! `dcap-qvl` at a caller-supplied time.
//!
//! Collateral (TCB info, QE identity, CRLs, all signed by Intel) either travels inside our
//! evidence envelope or comes from a [`CollateralProvider`] the verifier was given; since the
//! verification pins Intel's root, the carrier of collateral does not need to be trusted.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use dcap_qvl::QuoteCollateralV3;
use dcap_qvl::quote::{Quote, Report, TDReport10};

use crate::digest::{Digest, Digest48};
use crate::error::AttestError;
use crate::evidence::EvidenceKind;
use crate::measurements::{Measurements, TdAttributes, TdxMeasurements, TdxTcbVerdict};
use crate::verifier::VerifiedEvidence;

/// SHA-384 of the public key of Intel's SGX/TDX root CA ("Intel SGX Root CA"), as reported
/// by DCAP verification. Production policies pin it.
pub const INTEL_ROOT_KEY_ID: Digest48 = Digest([
    0x46, 0xe4, 0x03, 0xbd, 0x34, 0xf0, 0x5a, 0x3f, 0x28, 0x17, 0xab, 0x9b, 0xad, 0xca, 0xac, 0xc7,
    0xff, 0xc9, 0x8e, 0x0f, 0x26, 0x10, 0x08, 0xcd, 0x30, 0xda, 0xe9, 0x36, 0xca, 0xce, 0x18, 0xd5,
    0xdc, 0xf5, 0x8e, 0xef, 0x31, 0x46, 0x36, 0x13, 0xde, 0x15, 0x70, 0xd5, 0x16, 0x20, 0x09, 0x93,
]);

/// A parsed TDX quote whose signatures have **not** been checked. Use it to read fields
/// (for example before fetching collateral) and never as proof of anything.
#[derive(Clone)]
pub struct UnverifiedTdxQuote {
    raw: Vec<u8>,
    quote: Quote,
}

impl fmt::Debug for UnverifiedTdxQuote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnverifiedTdxQuote")
            .field("version", &self.quote.header.version)
            .field("len", &self.raw.len())
            .finish_non_exhaustive()
    }
}

impl UnverifiedTdxQuote {
    /// Parses a v4 or v5 TDX quote; SGX quotes and non-zero trailing bytes are refused (quote
    /// generators hand out fixed-size buffers, so zero padding after the quote is normal).
    pub fn parse(bytes: &[u8]) -> Result<Self, AttestError> {
        let mut input = bytes;
        let quote = <Quote as scale::Decode>::decode(&mut input)
            .map_err(|e| AttestError::TdxQuoteMalformed(e.to_string()))?;
        if input.iter().any(|&b| b != 0) {
            return Err(AttestError::TdxQuoteMalformed(format!(
                "{} trailing bytes after the quote are not zero padding",
                input.len()
            )));
        }
        if !matches!(quote.header.version, 4 | 5) {
            return Err(AttestError::TdxQuoteMalformed(format!(
                "quote version {} is not a TDX quote version",
                quote.header.version
            )));
        }
        if quote.header.tee_type != 0x81 || quote.report.as_td10().is_none() {
            return Err(AttestError::TdxQuoteMalformed(
                "quote is not from a TD (TEE type 0x81)".into(),
            ));
        }
        if quote.header.attestation_key_type != 2 {
            return Err(AttestError::TdxQuoteMalformed(format!(
                "attestation key type {} is not ECDSA-P256",
                quote.header.attestation_key_type
            )));
        }
        Ok(Self {
            raw: bytes.to_vec(),
            quote,
        })
    }

    /// The raw quote bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// Quote format version (4 or 5).
    pub fn version(&self) -> u16 {
        self.quote.header.version
    }

    fn td_report(&self) -> Option<&TDReport10> {
        self.quote.report.as_td10()
    }

    /// The 64-byte report data the TD put into the quote.
    pub fn report_data(&self) -> [u8; 64] {
        self.td_report().map(|r| r.report_data).unwrap_or([0u8; 64])
    }

    /// The measurements as the quote states them (no TCB verdict: nothing is verified).
    pub fn measurements(&self) -> TdxMeasurements {
        match self.td_report() {
            Some(r) => measurements_from_report(r, None),
            // parse() guarantees a TD report; an empty set is unreachable in practice.
            None => measurements_from_report(&zero_td_report(), None),
        }
    }

    /// ECDSA-P256 attestation key (64 bytes, x ‖ y) the quote is signed with.
    pub fn attestation_key(&self) -> [u8; 64] {
        match &self.quote.auth_data {
            dcap_qvl::quote::AuthData::V3(a) => a.ecdsa_attestation_key,
            dcap_qvl::quote::AuthData::V4(a) => a.ecdsa_attestation_key,
        }
    }

    fn signature(&self) -> [u8; 64] {
        match &self.quote.auth_data {
            dcap_qvl::quote::AuthData::V3(a) => a.ecdsa_signature,
            dcap_qvl::quote::AuthData::V4(a) => a.ecdsa_signature,
        }
    }

    /// The bytes covered by the attestation-key signature (header and TD report).
    pub fn signed_bytes(&self) -> &[u8] {
        let len = self.quote.signed_length().min(self.raw.len());
        &self.raw[..len]
    }

    /// Checks the quote signature over header and TD report under the attestation key the
    /// quote itself carries. This proves integrity, not origin: only full DCAP verification
    /// ties that key to Intel.
    pub fn verify_signature(&self) -> Result<(), AttestError> {
        let mut public_key = [0x04u8; 65];
        public_key[1..].copy_from_slice(&self.attestation_key());
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            &public_key[..],
        )
        .verify(self.signed_bytes(), &self.signature())
        .map_err(|_| AttestError::TdxQuoteSignature)
    }

    /// FMSPC of the platform, read from the PCK certificate embedded in the quote.
    pub fn fmspc(&self) -> Option<[u8; 6]> {
        dcap_qvl::intel::quote_fmspc_with::<dcap_qvl::configs::RustCryptoConfig>(&self.quote).ok()
    }
}

fn zero_td_report() -> TDReport10 {
    TDReport10 {
        tee_tcb_svn: [0; 16],
        mr_seam: [0; 48],
        mr_signer_seam: [0; 48],
        seam_attributes: [0; 8],
        td_attributes: [0; 8],
        xfam: [0; 8],
        mr_td: [0; 48],
        mr_config_id: [0; 48],
        mr_owner: [0; 48],
        mr_owner_config: [0; 48],
        rt_mr0: [0; 48],
        rt_mr1: [0; 48],
        rt_mr2: [0; 48],
        rt_mr3: [0; 48],
        report_data: [0; 64],
    }
}

fn measurements_from_report(r: &TDReport10, tcb: Option<TdxTcbVerdict>) -> TdxMeasurements {
    TdxMeasurements {
        mrtd: Digest(r.mr_td),
        rtmrs: [
            Digest(r.rt_mr0),
            Digest(r.rt_mr1),
            Digest(r.rt_mr2),
            Digest(r.rt_mr3),
        ],
        mrconfigid: Digest(r.mr_config_id),
        mrowner: Digest(r.mr_owner),
        mrownerconfig: Digest(r.mr_owner_config),
        td_attributes: TdAttributes::from_report_bytes(r.td_attributes),
        xfam: u64::from_le_bytes(r.xfam),
        tee_tcb_svn: Digest(r.tee_tcb_svn),
        mrseam: Digest(r.mr_seam),
        tcb,
    }
}

/// Supplies DCAP collateral for quotes that do not carry their own. Called from inside TLS
/// verification, so it must answer from memory (a background task keeps it filled).
pub trait CollateralProvider: Send + Sync + fmt::Debug {
    /// Collateral for the platform with this FMSPC, if known.
    fn collateral_for(&self, fmspc: &[u8; 6]) -> Option<Arc<QuoteCollateralV3>>;
}

/// A provider that never has collateral: quotes must bring their own.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoCollateral;

impl CollateralProvider for NoCollateral {
    fn collateral_for(&self, _fmspc: &[u8; 6]) -> Option<Arc<QuoteCollateralV3>> {
        None
    }
}

/// An in-memory collateral cache keyed by FMSPC, filled from a PCCS or from files.
#[derive(Debug, Default)]
pub struct CollateralStore {
    by_fmspc: RwLock<HashMap<[u8; 6], Arc<QuoteCollateralV3>>>,
}

impl CollateralStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) collateral, keyed by the FMSPC named in its TCB info.
    pub fn insert(&self, collateral: QuoteCollateralV3) -> Result<[u8; 6], AttestError> {
        let fmspc = collateral_fmspc(&collateral)?;
        let mut map = self.by_fmspc.write().unwrap_or_else(|e| e.into_inner());
        map.insert(fmspc, Arc::new(collateral));
        Ok(fmspc)
    }

    /// Parses collateral JSON (the `dcap-qvl` / PCCS-derived layout) and adds it.
    pub fn insert_json(&self, json: &[u8]) -> Result<[u8; 6], AttestError> {
        let collateral: QuoteCollateralV3 = serde_json::from_slice(json)
            .map_err(|e| AttestError::CollateralMalformed(format!("collateral JSON: {e}")))?;
        self.insert(collateral)
    }
}

impl CollateralProvider for CollateralStore {
    fn collateral_for(&self, fmspc: &[u8; 6]) -> Option<Arc<QuoteCollateralV3>> {
        let map = self.by_fmspc.read().unwrap_or_else(|e| e.into_inner());
        map.get(fmspc).cloned()
    }
}

fn collateral_fmspc(collateral: &QuoteCollateralV3) -> Result<[u8; 6], AttestError> {
    let info: serde_json::Value = serde_json::from_str(&collateral.tcb_info)
        .map_err(|e| AttestError::CollateralMalformed(format!("TCB info JSON: {e}")))?;
    let fmspc = info
        .get("fmspc")
        .and_then(|v| v.as_str())
        .ok_or_else(|| AttestError::CollateralMalformed("TCB info has no fmspc".into()))?;
    let mut out = [0u8; 6];
    hex::decode_to_slice(fmspc, &mut out)
        .map_err(|e| AttestError::CollateralMalformed(format!("TCB info fmspc: {e}")))?;
    Ok(out)
}

/// The time window in which a set of collateral is usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CollateralWindow {
    /// Latest issue date / thisUpdate among the items (unix seconds).
    pub latest_issue: u64,
    /// Earliest nextUpdate among the items (unix seconds).
    pub earliest_next_update: u64,
}

/// Reads the issue and next-update dates of TCB info, QE identity and both CRLs and checks
/// `now` against each, so that stale collateral is reported as such (and not as a generic
/// DCAP failure).
pub fn check_collateral_window(
    collateral: &QuoteCollateralV3,
    now: u64,
) -> Result<CollateralWindow, AttestError> {
    let items = [
        json_dates("TCB info", &collateral.tcb_info)?,
        json_dates("QE identity", &collateral.qe_identity)?,
        crl_dates("root CA CRL", &collateral.root_ca_crl)?,
        crl_dates("PCK CRL", &collateral.pck_crl)?,
    ];
    for &(what, issued_at, next_update) in &items {
        if now < issued_at {
            return Err(AttestError::CollateralNotYetValid {
                what,
                issued_at,
                now,
            });
        }
        if now > next_update {
            return Err(AttestError::CollateralStale {
                what,
                expired_at: next_update,
                now,
            });
        }
    }
    Ok(CollateralWindow {
        latest_issue: items.iter().map(|i| i.1).max().unwrap_or(0),
        earliest_next_update: items.iter().map(|i| i.2).min().unwrap_or(0),
    })
}

fn json_dates(what: &'static str, json: &str) -> Result<(&'static str, u64, u64), AttestError> {
    let value: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| AttestError::CollateralMalformed(format!("{what} JSON: {e}")))?;
    let date = |field: &str| -> Result<u64, AttestError> {
        let text = value
            .get(field)
            .and_then(|v| v.as_str())
            .ok_or_else(|| AttestError::CollateralMalformed(format!("{what} has no {field}")))?;
        parse_rfc3339(text)
            .ok_or_else(|| AttestError::CollateralMalformed(format!("{what} {field} {text:?}")))
    };
    Ok((what, date("issueDate")?, date("nextUpdate")?))
}

fn crl_dates(what: &'static str, der: &[u8]) -> Result<(&'static str, u64, u64), AttestError> {
    let (_, crl) = x509_parser::parse_x509_crl(der)
        .map_err(|e| AttestError::CollateralMalformed(format!("{what}: {e}")))?;
    let this_update = non_negative(crl.last_update().timestamp());
    let next_update = crl
        .next_update()
        .map(|t| non_negative(t.timestamp()))
        .ok_or_else(|| AttestError::CollateralMalformed(format!("{what} has no nextUpdate")))?;
    Ok((what, this_update, next_update))
}

fn non_negative(t: i64) -> u64 {
    u64::try_from(t).unwrap_or(0)
}

fn parse_rfc3339(text: &str) -> Option<u64> {
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp()).ok()
}

/// Verifies a TDX quote end to end at time `now` (unix seconds): structure, quote signature,
/// collateral freshness, then DCAP (PCK chain to Intel's root, QE report and identity, TCB
/// level). Debug TDs pass this step so that the policy can refuse them with its own error.
pub fn verify_quote(
    quote_bytes: &[u8],
    collateral: &QuoteCollateralV3,
    now: u64,
) -> Result<VerifiedEvidence, AttestError> {
    let parsed = UnverifiedTdxQuote::parse(quote_bytes)?;
    parsed.verify_signature()?;
    verify_parsed(&parsed, collateral, now)
}

/// DCAP verification of a quote whose structure and signature were already checked.
fn verify_parsed(
    parsed: &UnverifiedTdxQuote,
    collateral: &QuoteCollateralV3,
    now: u64,
) -> Result<VerifiedEvidence, AttestError> {
    let quote_bytes = parsed.as_bytes();
    let window = check_collateral_window(collateral, now)?;
    let verifier = dcap_qvl::verify::QuoteVerifier::new_prod()
        .with_config::<dcap_qvl::configs::RustCryptoConfig>()
        .allow_debug(true);
    let claims = verifier
        .verify_with_policy(
            quote_bytes,
            collateral.clone(),
            now,
            &dcap_qvl::QuotePolicy::claims_only(now),
        )
        .map_err(|e| AttestError::TdxQuoteRejected(format!("{e:#}")))?;
    let report = match &claims.report {
        Report::TD10(r) => r,
        Report::TD15(r) => &r.base,
        Report::TD15Ex(r) => &r.base.base,
        Report::SgxEnclave(_) => {
            return Err(AttestError::TdxQuoteMalformed(
                "DCAP returned an SGX report for a TDX quote".into(),
            ));
        }
    };
    let root_key_id = Digest48::from_slice(&claims.platform.root_key_id)
        .ok_or_else(|| AttestError::TdxQuoteRejected("root key id is not 48 bytes".into()))?;
    let expires_at = claims
        .earliest_expiration_date
        .min(window.earliest_next_update);
    let verdict = TdxTcbVerdict {
        status: claims.tcb.status.to_string(),
        advisory_ids: claims.tcb.advisory_ids.clone(),
        fmspc: Digest(claims.platform.pck.fmspc),
        root_key_id,
        collateral_expires_at: expires_at,
        evaluation_data_number: claims.tcb.eval_data_number,
    };
    Ok(VerifiedEvidence {
        kind: EvidenceKind::Tdx,
        measurements: Measurements::Tdx(measurements_from_report(report, Some(verdict))),
        report_data: report.report_data,
        valid_until: expires_at,
    })
}

/// How recent a set of collateral is: Intel's TCB evaluation data number (the lower of TCB
/// info's and QE identity's), then the latest issue date. `None` when unreadable.
pub fn collateral_freshness(collateral: &QuoteCollateralV3) -> Option<(u64, u64)> {
    let number = |json: &str| {
        serde_json::from_str::<serde_json::Value>(json)
            .ok()?
            .get("tcbEvaluationDataNumber")?
            .as_u64()
    };
    let evaluation = number(&collateral.tcb_info)?.min(number(&collateral.qe_identity)?);
    let issued = [
        json_dates("TCB info", &collateral.tcb_info).ok()?.1,
        json_dates("QE identity", &collateral.qe_identity).ok()?.1,
    ];
    Some((evaluation, issued.into_iter().max().unwrap_or(0)))
}

/// The collateral to verify a quote with: the verifier's own (from `provider`) unless the
/// collateral the peer supplied is at least as fresh ([`collateral_freshness`]). A peer cannot
/// pass off old collateral (from before a TCB recovery) over what the verifier knows.
fn choose_collateral(
    embedded: Option<&QuoteCollateralV3>,
    own: Option<Arc<QuoteCollateralV3>>,
    fmspc: Option<[u8; 6]>,
) -> Result<Arc<QuoteCollateralV3>, AttestError> {
    match (embedded, own) {
        (Some(peer), Some(own)) => {
            if collateral_freshness(peer) >= collateral_freshness(&own) {
                Ok(Arc::new(peer.clone()))
            } else {
                Ok(own)
            }
        }
        (Some(peer), None) => Ok(Arc::new(peer.clone())),
        (None, Some(own)) => Ok(own),
        (None, None) => Err(AttestError::CollateralMissing {
            fmspc: fmspc.map_or_else(|| "unknown".into(), hex::encode),
        }),
    }
}

/// Finds collateral for a quote (the verifier's own from `provider`, or the peer's when at
/// least as fresh) and verifies it.
pub(crate) fn verify_with_provider(
    quote_bytes: &[u8],
    embedded: Option<&QuoteCollateralV3>,
    provider: &dyn CollateralProvider,
    now: u64,
) -> Result<VerifiedEvidence, AttestError> {
    let parsed = UnverifiedTdxQuote::parse(quote_bytes)?;
    parsed.verify_signature()?;
    let fmspc = parsed.fmspc();
    let own = fmspc.and_then(|f| provider.collateral_for(&f));
    let collateral = choose_collateral(embedded, own, fmspc)?;
    verify_parsed(&parsed, &collateral, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2025-06-19T10:16:03Z"), Some(1_750_328_163));
        assert_eq!(parse_rfc3339("not a date"), None);
    }

    #[test]
    fn garbage_is_not_a_quote() {
        assert!(matches!(
            UnverifiedTdxQuote::parse(&[4, 0, 2, 0, 0x81, 0, 0, 0]),
            Err(AttestError::TdxQuoteMalformed(_))
        ));
        assert!(UnverifiedTdxQuote::parse(&[]).is_err());
    }
}
