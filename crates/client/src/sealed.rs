//! Proxy-blind requests (protocol version 3): the client seals each request to a few attested
//! workers and opens their sealed answers, so that the proxy in the middle routes and bills
//! requests it cannot read.
//!
//! 1. The proxy relays the workers' attestation bundles (`ext.getWorkerKeys`): each is a
//!    worker's RA-TLS certificate, whose evidence binds claims that carry the worker's X25519
//!    sealing key. The client verifies each certificate under its own attestation policy (the
//!    one it holds the proxy to: local mode accepts simulated evidence, production refuses it)
//!    and keeps the verified key until the certificate expires.
//! 2. The serialized `http.request` (endpoint, headers and the whole OpenAI body) is sealed once
//!    in a `cocoon_seal` envelope to up to [`ClientConfig::sealed_candidates`] of those workers
//!    and sent as `ext.runSealedQuery`, which names the candidates and carries in clear only the
//!    model, the token and price limits, the timeout and the request id.
//! 3. The answer comes back as a sealed chunk stream under the reply key of the worker that
//!    served it (the client tries its few reply keys on the first chunk); it is opened here,
//!    before the rest of the client sees the events, and any interference by the proxy
//!    (altered, reordered, dropped or spliced chunks, a stream cut short) fails the request.
//!
//! With a version 2 proxy, or when no verified worker key is available, the request goes the
//! reference way (unsealed) and is counted and reported as such, unless
//! [`ClientConfig::requires_sealing`] (the default under the production policy) refuses it instead.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cocoon_protocol::messages::ext;
use cocoon_protocol::model_name::base_name as base_model;
use cocoon_protocol::tl::{Int256, TlConstructor};
use cocoon_seal::{ChunkOpener, ChunkView, Envelope, ReplyKeys, SealingPublicKey, SystemRng};
use rand::seq::SliceRandom;
use sha2::{Digest as _, Sha256};

use crate::config::{ClientConfig, ClientError};

/// Why a request could not be sealed: sent unsealed (said and counted), or refused when the
/// configuration requires sealing.
#[derive(Debug, thiserror::Error)]
enum Unsealable {
    /// `sealing = false`.
    #[error("sealing is turned off in this client's configuration")]
    TurnedOff,
    /// The proxy is older than sealed requests.
    #[error("the proxy speaks protocol version {0}, sealed requests need {SEALED}", SEALED = cocoon_protocol::version::SEALED_VERSION)]
    OldProxy(i32),
    /// The pinned weights could not be read from the configuration.
    #[error("{0}")]
    Config(#[from] ClientError),
    /// The proxy did not list its workers' keys.
    #[error("ext.getWorkerKeys: {0}")]
    Keys(cocoon_net::NetError),
    /// The proxy's key list does not decode.
    #[error("bad ext.workerKeys: {0}")]
    BadKeys(cocoon_protocol::Error),
    /// No worker serves the pinned weights.
    #[error("no worker of `{0}` serves the weights pinned for it")]
    NoPinnedWorker(String),
    /// No worker's key verifies.
    #[error("no worker of `{0}` offers a sealing key this client could verify")]
    NoVerifiedKey(String),
    /// Sealing itself failed.
    #[error("cannot seal the request: {0}")]
    Seal(cocoon_seal::SealError),
}

/// Why one worker's announced sealing key is not used.
#[derive(Debug, thiserror::Error)]
enum KeyRefusal {
    /// The certificate does not verify under the client's policy.
    #[error(transparent)]
    Attestation(#[from] cocoon_attest::AttestError),
    /// The verified claims hold no sealing key.
    #[error(
        "its attested claims carry no sealing key (or this client's policy requires no evidence)"
    )]
    NoSealingKey,
}
use crate::link::{ProxyEvent, ProxyLink, Session, lock};
use crate::route::{RouteReceiver, RouteSender};

/// Start of a worker's error message whose text is a sealed chunk, in hex.
const SEALED_ERROR_PREFIX: &str = "sealed:";

/// A worker key that verified, and until when.
#[derive(Clone, Copy)]
struct VerifiedKey {
    key: SealingPublicKey,
    not_after: u64,
    /// The SHA-256 of the weights the worker's attested claims name.
    weights: Option<[u8; 32]>,
}

/// One worker a request can be sealed to.
#[derive(Clone, Copy)]
struct Candidate {
    worker_id: i64,
    key: SealingPublicKey,
    not_after: u64,
    weights: Option<[u8; 32]>,
}

/// Base model → when fetched, and its verified candidates.
type CandidateLists = HashMap<String, (Instant, Arc<Vec<Candidate>>)>;

/// The client's sealing state: verified worker keys, the per-model candidate lists, counters.
#[derive(Default)]
pub(crate) struct Sealing {
    /// SHA-256 of a certificate → its verified sealing key (kept until the certificate expires).
    verified: std::sync::Mutex<HashMap<[u8; 32], VerifiedKey>>,
    /// Base model → when fetched, and its candidates.
    lists: std::sync::Mutex<CandidateLists>,
    /// Requests sent sealed.
    pub(crate) sealed: AtomicU64,
    /// Requests sent unsealed because sealing was not possible.
    pub(crate) unsealed: AtomicU64,
    /// Requests refused because sealing was required and not possible.
    pub(crate) refused: AtomicU64,
    /// Requests sent unsealed after sealed ones had gone through (downgrades).
    pub(crate) downgraded: AtomicU64,
    /// Why the last request could not be sealed.
    pub(crate) last_reason: std::sync::Mutex<Option<String>>,
}

/// A request sealed and ready to send.
pub(crate) struct SealedQuery {
    envelope: Vec<u8>,
    candidates: Vec<i64>,
    reply_keys: ReplyKeys,
}

impl Sealing {
    /// Seals `query` (a serialized `http.request`) for `model`, or says why it cannot be sealed:
    /// `Ok(None)` means "send it unsealed" (counted), an error means "refuse it" (when the
    /// configuration requires sealing).
    pub(crate) async fn prepare(
        &self,
        config: &ClientConfig,
        link: &ProxyLink,
        session: &Session,
        model: &str,
        query: &[u8],
    ) -> Result<Option<SealedQuery>, ClientError> {
        let why = match self.try_seal(config, link, session, model, query).await {
            Ok(sealed) => {
                self.sealed.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(sealed));
            }
            Err(why) => why.to_string(),
        };
        *lock(&self.last_reason) = Some(why.clone());
        if config.requires_sealing() {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(ClientError::SealingUnavailable(why));
        }
        self.unsealed.fetch_add(1, Ordering::Relaxed);
        if self.sealed.load(Ordering::Relaxed) > 0 {
            // Sealing worked before: falling back to a request the proxy can read is a
            // downgrade, said loudly and counted.
            self.downgraded.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "DOWNGRADE: request sent unsealed (the proxy can read it) after sealed ones: {why}; \
                 set require_sealed to refuse instead"
            );
        } else {
            tracing::info!("request sent unsealed (the proxy can read it): {why}");
        }
        Ok(None)
    }

    async fn try_seal(
        &self,
        config: &ClientConfig,
        link: &ProxyLink,
        session: &Session,
        model: &str,
        query: &[u8],
    ) -> Result<SealedQuery, Unsealable> {
        if !config.sealing {
            return Err(Unsealable::TurnedOff);
        }
        if session.version < cocoon_protocol::version::SEALED_VERSION {
            return Err(Unsealable::OldProxy(session.version));
        }
        let all = self.candidates(config, link, session, model).await?;
        let pinned = config.pinned_weights_for(model)?;
        let all = match pinned {
            // Only workers whose attested certificate names the pinned weights.
            Some(weights) => Arc::new(
                all.iter()
                    .copied()
                    .filter(|c| c.weights == Some(weights))
                    .collect::<Vec<_>>(),
            ),
            None => all,
        };
        if pinned.is_some() && all.is_empty() {
            return Err(Unsealable::NoPinnedWorker(base_model(model).to_owned()));
        }
        let now = config.attestation.clock.now_unix();
        let mut usable: Vec<Candidate> =
            all.iter().copied().filter(|c| c.not_after > now).collect();
        if usable.is_empty() && !all.is_empty() {
            // Every key we held has expired: workers renew their certificates before that
            // and the proxy relays the new ones, so ask again now rather than at the next
            // refresh.
            lock(&self.lists).remove(base_model(model));
            let fresh = self.candidates(config, link, session, model).await?;
            usable = fresh
                .iter()
                .copied()
                .filter(|c| c.not_after > now)
                .collect();
        }
        if usable.is_empty() {
            return Err(Unsealable::NoVerifiedKey(base_model(model).to_owned()));
        }
        usable.shuffle(&mut rand::rng());
        usable.truncate(config.sealed_candidates.max(1));
        let recipients: Vec<_> = usable.iter().map(|c| (c.key.key_id(), c.key)).collect();
        let sealed =
            Envelope::seal(&recipients, &[], query, &mut SystemRng).map_err(Unsealable::Seal)?;
        Ok(SealedQuery {
            envelope: sealed.bytes,
            candidates: usable.iter().map(|c| c.worker_id).collect(),
            reply_keys: sealed.reply_keys,
        })
    }

    /// The verified candidates for `model`, fetched from the proxy at most every
    /// `models_refresh`.
    async fn candidates(
        &self,
        config: &ClientConfig,
        link: &ProxyLink,
        session: &Session,
        model: &str,
    ) -> Result<Arc<Vec<Candidate>>, Unsealable> {
        let base = base_model(model).to_owned();
        if let Some((at, list)) = lock(&self.lists).get(&base)
            && at.elapsed() < config.models_refresh
        {
            return Ok(list.clone());
        }
        let query = ext::GetWorkerKeys {
            model_name: base.clone(),
        };
        let answer = session
            .conn
            .query_with_timeout(Bytes::from(query.to_boxed_bytes()), Duration::from_secs(10))
            .await
            .map_err(Unsealable::Keys)?;
        let keys = ext::WorkerKeys::from_boxed_bytes(answer).map_err(Unsealable::BadKeys)?;
        let now = config.attestation.clock.now_unix();
        let mut list = Vec::with_capacity(keys.keys.len());
        for bundle in &keys.keys {
            match self.verify(link, &bundle.certificate, now) {
                Ok(v) => list.push(Candidate {
                    worker_id: bundle.worker_id,
                    key: v.key,
                    not_after: v.not_after,
                    weights: v.weights,
                }),
                Err(e) => {
                    tracing::warn!(worker = bundle.worker_id, "worker sealing key refused: {e}")
                }
            }
        }
        let list = Arc::new(list);
        lock(&self.lists).insert(base, (Instant::now(), list.clone()));
        Ok(list)
    }

    /// Verifies one bundle under the client's policy (cached per certificate until it expires).
    fn verify(
        &self,
        link: &ProxyLink,
        certificate: &[u8],
        now: u64,
    ) -> Result<VerifiedKey, KeyRefusal> {
        let digest: [u8; 32] = Sha256::digest(certificate).into();
        {
            let mut verified = lock(&self.verified);
            verified.retain(|_, v| v.not_after > now);
            if let Some(v) = verified.get(&digest) {
                return Ok(*v);
            }
        }
        let der = rustls_pki_types::CertificateDer::from(certificate);
        let peer = cocoon_attest::verified_peer(
            &[der],
            &link.workers.policy(),
            link.workers.evidence_verifier(),
            now,
        )?;
        let key = peer
            .claims
            .as_ref()
            .and_then(|c| c.extended.as_ref())
            .and_then(|e| e.sealing_public_key)
            .ok_or(KeyRefusal::NoSealingKey)?;
        let v = VerifiedKey {
            key: SealingPublicKey::from(*key.as_bytes()),
            not_after: u64::try_from(peer.certificate_not_after).unwrap_or(0),
            weights: peer.model_hash(),
        };
        lock(&self.verified).insert(digest, v);
        Ok(v)
    }

    /// The weights (SHA-256, hex, sorted, without repeats) that the attested certificates of
    /// `model`'s workers name, as this client verified them; empty when the proxy relays no
    /// sealing keys for it or the client cannot verify them.
    pub(crate) async fn attested_weights(
        &self,
        config: &ClientConfig,
        link: &ProxyLink,
        session: &Session,
        model: &str,
    ) -> Vec<String> {
        if session.version < cocoon_protocol::version::SEALED_VERSION {
            return Vec::new();
        }
        let Ok(list) = self.candidates(config, link, session, model).await else {
            return Vec::new();
        };
        let mut weights: Vec<String> = list
            .iter()
            .filter_map(|c| c.weights.map(hex::encode))
            .collect();
        weights.sort();
        weights.dedup();
        weights
    }

    /// Forgets every verified key and candidate list (the worker policy changed).
    pub(crate) fn forget_verified(&self) {
        lock(&self.verified).clear();
        lock(&self.lists).clear();
    }

    /// Forgets `model`'s candidates (after a refusal, the proxy's workers may have changed).
    pub(crate) fn invalidate(&self, model: &str) {
        lock(&self.lists).remove(base_model(model));
    }
}

impl SealedQuery {
    /// SHA-256 of the envelope as sent, which the worker's receipt must name.
    pub(crate) fn envelope_hash(&self) -> [u8; 32] {
        cocoon_attest::receipt::body_hash(&self.envelope)
    }

    /// The `ext.runSealedQuery` to send.
    pub(crate) fn message(
        &self,
        model: String,
        max_coefficient: i32,
        max_tokens: i32,
        timeout: f64,
        request_id: Int256,
        options: QueryFlags,
    ) -> Vec<u8> {
        ext::RunSealedQuery {
            model_name: model,
            envelope: Bytes::from(self.envelope.clone()),
            candidates: self.candidates.clone(),
            max_coefficient,
            max_tokens,
            timeout,
            request_id,
            flags: options.preference,
            enable_debug: options.enable_debug.then_some(true),
        }
        .to_boxed_bytes()
    }

    /// A route sender that opens the sealed answer before passing its events to `out`.
    pub(crate) fn unsealing_route(&self, out: RouteSender, budget: usize) -> RouteSender {
        let (tx, rx) = crate::route::route_queue(budget);
        tokio::spawn(unseal_events(
            rx,
            out,
            AnswerOpener::new(self.reply_keys.clone()),
        ));
        tx
    }
}

/// Opens the chunks of one sealed answer stream, as the proxy relays them (answer bytes that
/// concatenate one or more chunks, error messages that carry one). Every failure is a
/// [`ClientError::SealedAnswer`].
pub struct AnswerOpener {
    keys: ReplyKeys,
    opener: Option<ChunkOpener>,
    finished: bool,
}

fn refused(why: impl Into<String>) -> ClientError {
    ClientError::SealedAnswer(why.into())
}

impl AnswerOpener {
    /// An opener for the answer to an envelope sealed with `keys` (one per candidate).
    pub fn new(keys: ReplyKeys) -> Self {
        Self {
            keys,
            opener: None,
            finished: false,
        }
    }

    /// Opens the chunks concatenated in `data` (one or more; none is allowed only for an
    /// empty part), returning their plaintext in order.
    ///
    /// # Errors
    /// Malformed or cut chunks, chunks no candidate's reply key opens, and every stream error of
    /// [`ChunkOpener`] (reordering, replay, splicing, chunks after the final one).
    pub fn open(&mut self, data: &[u8]) -> Result<Vec<u8>, ClientError> {
        let mut out = Vec::with_capacity(data.len());
        let mut rest = data;
        while !rest.is_empty() {
            let len = ChunkView::frame_len(rest)
                .map_err(|e| refused(e.to_string()))?
                .ok_or_else(|| refused("a sealed chunk is cut short"))?;
            let chunk = rest
                .get(..len)
                .ok_or_else(|| refused("a sealed chunk is cut short"))?;
            rest = &rest[len..];
            self.open_chunk(chunk, &mut out)?;
        }
        Ok(out)
    }

    fn open_chunk(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), ClientError> {
        let info = match &mut self.opener {
            Some(opener) => opener
                .open_into(chunk, out)
                .map_err(|e| refused(e.to_string()))?,
            None => {
                // The first chunk tells which candidate answered: only its reply key opens it.
                let mut found = None;
                for (_, key) in self.keys.iter() {
                    let mut opener = key.opener();
                    if let Ok(info) = opener.open_into(chunk, out) {
                        found = Some((opener, info));
                        break;
                    }
                }
                let (opener, info) = found.ok_or_else(|| {
                    refused("the answer is not sealed by any worker this request was sealed to")
                })?;
                self.opener = Some(opener);
                info
            }
        };
        if info.is_final {
            self.finished = true;
        }
        Ok(())
    }

    /// Checks that the stream ended with its final chunk (call it when the transport says the
    /// answer is over).
    ///
    /// # Errors
    /// When the final chunk has not been opened: the stream was cut short.
    pub fn check_complete(&self) -> Result<(), ClientError> {
        if self.finished {
            Ok(())
        } else {
            Err(refused("the sealed answer stream was cut short"))
        }
    }

    /// A worker's error message: opened when sealed; the proxy's own errors are in clear.
    ///
    /// # Errors
    /// A sealed message that is not hex or does not open as the stream's final chunk.
    pub fn open_error(&mut self, message: String) -> Result<String, ClientError> {
        let Some(hex_chunk) = message.strip_prefix(SEALED_ERROR_PREFIX) else {
            return Ok(message);
        };
        let chunk =
            hex::decode(hex_chunk).map_err(|e| refused(format!("bad sealed error: {e}")))?;
        let text = self.open(&chunk)?;
        self.check_complete()?;
        Ok(String::from_utf8_lossy(&text).into_owned())
    }
}

/// Passes a sealed request's events on with their answer bytes and error messages opened; on
/// the first failure to open, the request ends with an error.
async fn unseal_events(mut rx: RouteReceiver, out: RouteSender, mut opener: AnswerOpener) {
    while let Some(event) = rx.recv().await {
        let opened = match event {
            ProxyEvent::Answer { answer, final_info } => {
                opened_answer(&mut opener, &answer, final_info.is_some())
                    .map(|answer| ProxyEvent::Answer { answer, final_info })
            }
            ProxyEvent::Part { answer, final_info } => {
                opened_answer(&mut opener, &answer, final_info.is_some())
                    .map(|answer| ProxyEvent::Part { answer, final_info })
            }
            ProxyEvent::Error {
                code,
                message,
                final_info,
            } => opener.open_error(message).map(|message| ProxyEvent::Error {
                code,
                message,
                final_info,
            }),
            other => Ok(other),
        };
        match opened {
            Ok(event) => {
                if out.send(event).await.is_err() {
                    return;
                }
            }
            Err(why) => {
                tracing::warn!("{why}");
                let _ = out
                    .send(ProxyEvent::Error {
                        code: 502,
                        message: why.to_string(),
                        final_info: None,
                    })
                    .await;
                return;
            }
        }
    }
}

fn opened_answer(opener: &mut AnswerOpener, data: &[u8], last: bool) -> Result<Bytes, ClientError> {
    let plaintext = opener.open(data)?;
    if last {
        opener.check_complete()?;
    } else if opener.finished {
        return Err(refused("the sealed answer ended before its last part"));
    }
    Ok(Bytes::from(plaintext))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use cocoon_seal::SealingKeyPair;

    fn sealed_to(workers: &[&SealingKeyPair], body: &[u8]) -> cocoon_seal::SealedEnvelope {
        let recipients: Vec<_> = workers.iter().map(|w| (w.key_id(), w.public())).collect();
        Envelope::seal(&recipients, &[], body, &mut SystemRng).unwrap()
    }

    #[test]
    fn opens_the_stream_of_whichever_candidate_answered() {
        let a = SealingKeyPair::generate(&mut SystemRng).unwrap();
        let b = SealingKeyPair::generate(&mut SystemRng).unwrap();
        let sealed = sealed_to(&[&a, &b], b"request");
        let opened = Envelope::open(&sealed.bytes, b.key_id(), &b, &[]).unwrap();
        let mut sealer = opened.reply_key.sealer(&mut SystemRng).unwrap();
        let mut two = sealer.seal(b"hello ").unwrap();
        two.extend(sealer.seal(b"sealed ").unwrap());
        let last = sealer.seal_final(b"world").unwrap();

        let mut opener = AnswerOpener::new(sealed.reply_keys.clone());
        assert_eq!(opener.open(&two).unwrap(), b"hello sealed ");
        assert!(opener.check_complete().is_err());
        assert_eq!(opener.open(&last).unwrap(), b"world");
        assert!(opener.check_complete().is_ok());
    }

    #[test]
    fn refuses_streams_of_other_keys_cut_or_altered_streams() {
        let a = SealingKeyPair::generate(&mut SystemRng).unwrap();
        let outsider = SealingKeyPair::generate(&mut SystemRng).unwrap();
        let sealed = sealed_to(&[&a], b"request");
        let other = sealed_to(&[&outsider], b"request");
        let stranger = Envelope::open(&other.bytes, outsider.key_id(), &outsider, &[]).unwrap();
        let chunk = stranger
            .reply_key
            .sealer(&mut SystemRng)
            .unwrap()
            .seal_final(b"x")
            .unwrap();
        assert!(
            AnswerOpener::new(sealed.reply_keys.clone())
                .open(&chunk)
                .is_err()
        );

        let mine = Envelope::open(&sealed.bytes, a.key_id(), &a, &[]).unwrap();
        let mut sealer = mine.reply_key.sealer(&mut SystemRng).unwrap();
        let mut chunk = sealer.seal_final(b"answer").unwrap();
        let cut = &chunk[..chunk.len() - 1];
        assert!(
            AnswerOpener::new(sealed.reply_keys.clone())
                .open(cut)
                .is_err()
        );
        let n = chunk.len();
        chunk[n - 1] ^= 1;
        assert!(
            AnswerOpener::new(sealed.reply_keys.clone())
                .open(&chunk)
                .is_err()
        );
    }

    #[test]
    fn sealed_error_messages_open_and_clear_ones_pass() {
        let a = SealingKeyPair::generate(&mut SystemRng).unwrap();
        let sealed = sealed_to(&[&a], b"request");
        let mine = Envelope::open(&sealed.bytes, a.key_id(), &a, &[]).unwrap();
        let chunk = mine
            .reply_key
            .sealer(&mut SystemRng)
            .unwrap()
            .seal_final(b"field `x` is not accepted")
            .unwrap();
        let mut opener = AnswerOpener::new(sealed.reply_keys.clone());
        let message = format!("{SEALED_ERROR_PREFIX}{}", hex::encode(chunk));
        assert_eq!(
            opener.open_error(message).unwrap(),
            "field `x` is not accepted"
        );
        let mut opener = AnswerOpener::new(sealed.reply_keys);
        assert_eq!(
            opener.open_error("no worker available".into()).unwrap(),
            "no worker available"
        );
        assert!(opener.open_error("sealed:zz".into()).is_err());
    }

    /// What a hostile proxy relays for a sealed request, driven through the real unsealing task
    /// and the client's answer machine, as the answer stream's driver does (a closed queue is
    /// `Lost`). Returns the emitted text and how the request ended.
    async fn through_unsealing(keys: ReplyKeys, events: Vec<ProxyEvent>) -> (String, String) {
        use crate::stream::machine::{Action, AnswerMachine, Ask, Ending, Event, ReceiptBinding};
        let (in_tx, in_rx) = crate::route::route_queue(1 << 20);
        let (out_tx, mut out_rx) = crate::route::route_queue(1 << 20);
        let task = tokio::spawn(unseal_events(in_rx, out_tx, AnswerOpener::new(keys)));
        for e in events {
            in_tx.try_send(e).unwrap();
        }
        drop(in_tx);
        let t0 = Instant::now();
        let mut m = AnswerMachine::new(Ask {
            started: t0,
            timeout: Duration::from_secs(10),
            sealed: true,
            pricing: cocoon_market::PricingParams::default(),
            max_coefficient: cocoon_market::Coefficient::DEFAULT_CLIENT_MAX,
            max_charge: 0,
            binding: ReceiptBinding {
                client_request_id: [0xA; 32],
                envelope_hash: Some([0xE; 32]),
                request_hash: [0xB; 32],
                weights: None,
            },
            reference: None,
        });
        let (mut text, mut end) = (String::new(), "no end".to_owned());
        while !m.is_done() {
            let event = out_rx.recv().await.unwrap_or(ProxyEvent::Lost);
            for action in m.handle(Event::Proxy(event), t0) {
                match action {
                    Action::Emit(b) => text.push_str(&String::from_utf8_lossy(&b)),
                    Action::Record(Ending::Succeeded { usage, .. }) => {
                        end = format!("succeeded {} tokens", usage.total_tokens);
                    }
                    Action::Record(Ending::Failed) => end = "failed".into(),
                    _ => {}
                }
            }
        }
        task.await.unwrap();
        (text, end)
    }

    fn final_info() -> cocoon_protocol::messages::client::QueryFinalInfo {
        cocoon_protocol::messages::client::QueryFinalInfo {
            tokens_used: cocoon_protocol::messages::TokensUsed {
                prompt_tokens_used: 3,
                completion_tokens_used: 5,
                total_tokens_used: 8,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn first(chunk: &[u8]) -> ProxyEvent {
        ProxyEvent::Answer {
            answer: Bytes::copy_from_slice(chunk),
            final_info: None,
        }
    }

    fn part(chunk: &[u8], last: bool) -> ProxyEvent {
        ProxyEvent::Part {
            answer: Bytes::copy_from_slice(chunk),
            final_info: last.then(final_info),
        }
    }

    #[tokio::test]
    async fn a_hostile_proxy_cannot_make_a_sealed_answer_end_well_unless_it_is_whole() {
        let a = SealingKeyPair::generate(&mut SystemRng).unwrap();
        let outsider = SealingKeyPair::generate(&mut SystemRng).unwrap();
        let sealed = sealed_to(&[&a], b"request");
        let mine = Envelope::open(&sealed.bytes, a.key_id(), &a, &[]).unwrap();
        let mut sealer = mine.reply_key.sealer(&mut SystemRng).unwrap();
        let head = cocoon_protocol::messages::http::Response {
            http_version: "HTTP/1.1".into(),
            status_code: 200,
            reason: "OK".into(),
            headers: Vec::new(),
            payload: Bytes::from_static(b"he"),
        }
        .to_boxed_bytes();
        let c0 = sealer.seal(&head).unwrap();
        let c1 = sealer.seal(b"l").unwrap();
        let c2 = sealer.seal(b"lo").unwrap();
        let c3 = sealer.seal_final(b"!").unwrap();
        // A chunk of another worker's stream for the same position.
        let other = sealed_to(&[&outsider], b"request");
        let theirs = Envelope::open(&other.bytes, outsider.key_id(), &outsider, &[]).unwrap();
        let mut their_sealer = theirs.reply_key.sealer(&mut SystemRng).unwrap();
        let _ = their_sealer.seal(b"x").unwrap();
        let spliced = their_sealer.seal(b"LO").unwrap();
        let both = [c1.clone(), c2.clone()].concat();
        let error = |message: String| ProxyEvent::Error {
            code: 502,
            message,
            final_info: Some(final_info()),
        };

        let cases: Vec<(&str, Vec<ProxyEvent>, &str, &str)> = vec![
            (
                "the whole answer, as the worker sent it",
                vec![
                    first(&c0),
                    part(&c1, false),
                    part(&c2, false),
                    part(&c3, true),
                ],
                "hello!",
                "succeeded 8 tokens",
            ),
            (
                "two chunks in one part (a proxy may join them)",
                vec![first(&c0), part(&both, false), part(&c3, true)],
                "hello!",
                "succeeded 8 tokens",
            ),
            (
                "a duplicated chunk",
                vec![
                    first(&c0),
                    part(&c1, false),
                    part(&c1, false),
                    part(&c2, false),
                    part(&c3, true),
                ],
                "hel",
                "failed",
            ),
            (
                "chunks out of order",
                vec![
                    first(&c0),
                    part(&c2, false),
                    part(&c1, false),
                    part(&c3, true),
                ],
                "he",
                "failed",
            ),
            (
                "cut short: the final usage on an empty part",
                vec![first(&c0), part(&c1, false), part(b"", true)],
                "hel",
                "failed",
            ),
            (
                "cut short: the final usage on a chunk that is not the last",
                vec![first(&c0), part(&c1, false), part(&c2, true)],
                "hel",
                "failed",
            ),
            (
                "the final chunk without the final usage, then the usage alone",
                vec![
                    first(&c0),
                    part(&c1, false),
                    part(&c2, false),
                    part(&c3, false),
                    part(b"", true),
                ],
                "hello",
                "failed",
            ),
            (
                "a chunk of another stream spliced in",
                vec![
                    first(&c0),
                    part(&c1, false),
                    part(&spliced, false),
                    part(&c3, true),
                ],
                "hel",
                "failed",
            ),
            (
                "the first chunk missing",
                vec![first(&c1), part(&c2, false), part(&c3, true)],
                "",
                "failed",
            ),
            (
                "the final usage before the head",
                vec![part(&c3, true), first(&c0)],
                "",
                "failed",
            ),
            (
                "a sealed error forged from a chunk of the stream",
                vec![
                    first(&c0),
                    part(&c1, false),
                    error(format!("{SEALED_ERROR_PREFIX}{}", hex::encode(&c3))),
                ],
                "hel",
                "failed",
            ),
            (
                "a replayed chunk and a second usage after the end change nothing",
                vec![
                    first(&c0),
                    part(&c1, false),
                    part(&c2, false),
                    part(&c3, true),
                    part(&c1, true),
                    part(b"", true),
                ],
                "hello!",
                "succeeded 8 tokens",
            ),
            (
                "the stream stops before its end (the queue closes)",
                vec![first(&c0), part(&c1, false)],
                "hel",
                "failed",
            ),
        ];
        for (name, events, text, end) in cases {
            let got = through_unsealing(sealed.reply_keys.clone(), events).await;
            assert_eq!(got, (text.to_owned(), end.to_owned()), "{name}");
        }
    }
}

/// The options of a query that ride in its flags: debug output and the worker preference
/// (`cocoon_market::Preference::to_query_flags`, 0 for none).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct QueryFlags {
    pub(crate) enable_debug: bool,
    /// The worker preference and other extension bits, as they go in `flags`.
    pub(crate) preference: u32,
}
