//! Continuous batching for [`super::BuiltinEngine`]: one thread owns the model and runs
//! forward passes over every active request together.
//!
//! At each step boundary the scheduler admits waiting requests (up to the batch limit),
//! gives each active sequence its next tokens (a piece of its prompt, or the token sampled
//! last step) and runs one batched forward pass; each sequence then samples from its own
//! logits with its own sampler, stop strings and limits, and turns the token into response
//! bytes. A sequence whose client went away (its receiver dropped) is removed at the next
//! step boundary, which frees its slot and its KV cache; one whose client reads slowly is
//! paused (its output buffered) rather than holding up the others. One whose worker asked it
//! to stop (its [`StopHandle`] set) ends at the next step boundary with
//! [`BodyEvent::Stopped`] and the tokens processed and generated until then.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use burn::tensor::backend::Backend;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use super::engine::{Job, ResponseMeta, StopScanner, stream_chunk, stream_chunk_with};
use super::json_constraint::JsonConstraint;
use super::logprobs::{self, TokenLogprob};
use super::{BatchStep, FinishReason, SequenceCache, TextModel};
use crate::tokenizer::{StreamDecoder, Tokenizer};
use crate::{BodyEvent, Endpoint, StopHandle, TokenUsage};

/// A request handed to the scheduler.
pub(super) struct Admission {
    pub(super) job: Job,
    pub(super) meta: ResponseMeta,
    pub(super) tx: mpsc::Sender<BodyEvent>,
    /// Set by the worker to stop the answer early.
    pub(super) stop: StopHandle,
    /// Held while the request is queued or running.
    pub(super) permit: OwnedSemaphorePermit,
}

/// Limits of the scheduler.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Sequences in one forward pass.
    pub(super) max_batch: usize,
    /// Prompt tokens one sequence contributes to one step.
    pub(super) prefill_chunk: usize,
}

/// One request in flight.
struct Sequence<'t, B: Backend> {
    job: Job,
    meta: ResponseMeta,
    tx: mpsc::Sender<BodyEvent>,
    stop: StopHandle,
    _permit: OwnedSemaphorePermit,
    cache: SequenceCache<B>,
    /// Prompt tokens already in the cache.
    prefilled: usize,
    /// The token sampled last, to be fed next step.
    next: Option<u32>,
    generated: usize,
    /// Taken when the answer is complete.
    decoder: Option<StreamDecoder<'t>>,
    scanner: StopScanner,
    /// The answer so far, for non-streamed responses.
    text: String,
    /// Body events not yet taken by the client's channel.
    outbox: VecDeque<BodyEvent>,
    /// Set once the answer is complete (the outbox may still hold its end).
    finished: bool,
    /// Log-probabilities of the tokens generated, when asked for.
    logprobs: Vec<TokenLogprob>,
    /// Of those, how many a streamed chunk has carried, and their bytes.
    logprobs_sent: (usize, usize),
}

impl<'t, B: Backend> Sequence<'t, B> {
    fn new(model: &'t TextModel<B>, a: Admission) -> Self {
        let Admission {
            mut job,
            meta,
            tx,
            stop,
            permit,
        } = a;
        job.sampler.observe_prompt(&job.prompt);
        let scanner = StopScanner::new(std::mem::take(&mut job.stop));
        let text = job.echo_prompt.take().unwrap_or_default();
        let mut seq = Self {
            cache: model.new_cache(),
            prefilled: 0,
            next: None,
            generated: 0,
            decoder: Some(model.tokenizer().stream_decoder(false)),
            scanner,
            text,
            outbox: VecDeque::new(),
            finished: false,
            logprobs: Vec::new(),
            logprobs_sent: (0, 0),
            job,
            meta,
            tx,
            stop,
            _permit: permit,
        };
        if seq.job.stream {
            let chat = seq.chat();
            if chat {
                let delta = json!({"role": "assistant", "content": ""});
                seq.push_data(stream_chunk(&seq.meta, true, delta, None));
            } else if !seq.text.is_empty() {
                let echo = json!(seq.text);
                seq.push_data(stream_chunk(&seq.meta, false, echo, None));
            }
        }
        if seq.job.max_tokens == 0 {
            seq.finish(FinishReason::Length, model.tokenizer());
        }
        seq
    }

    fn chat(&self) -> bool {
        self.job.endpoint == Endpoint::ChatCompletions
    }

    fn push_data(&mut self, s: String) {
        self.outbox.push_back(BodyEvent::Data(Bytes::from(s)));
    }

    fn usage(&self) -> TokenUsage {
        TokenUsage {
            prompt_tokens: self.job.prompt.len() as u64,
            completion_tokens: self.generated as u64,
            ..TokenUsage::default()
        }
    }

    /// Text released by the stop scanner.
    fn emit(&mut self, release: String, tokenizer: &Tokenizer) {
        if release.is_empty() {
            return;
        }
        if self.job.stream {
            let chat = self.chat();
            let delta = if chat {
                json!({"content": release})
            } else {
                json!(release)
            };
            let lp = self.unsent_logprobs(tokenizer);
            let chunk = stream_chunk_with(&self.meta, chat, delta, None, lp);
            self.push_data(chunk);
        } else {
            self.text.push_str(&release);
        }
    }

    /// The `logprobs` of the tokens no streamed chunk has carried yet (`null` when not asked
    /// for), marked as carried.
    fn unsent_logprobs(&mut self, tokenizer: &Tokenizer) -> Value {
        if self.job.logprobs.is_none() {
            return Value::Null;
        }
        let (from, offset) = self.logprobs_sent;
        let tokens = &self.logprobs[from..];
        let bytes: usize = tokens
            .iter()
            .map(|t| tokenizer.token_bytes(t.id).map_or(0, <[u8]>::len))
            .sum();
        let value = if self.chat() {
            logprobs::chat(tokenizer, tokens)
        } else {
            logprobs::completions(tokenizer, tokens, offset)
        };
        self.logprobs_sent = (self.logprobs.len(), offset + bytes);
        value
    }

    /// Ends the answer at once if the worker asked it to stop: what is queued is dropped (the
    /// worker reads no more of it) and the usage so far closes the body. Prompt tokens count
    /// as far as they were fed to the model.
    fn check_stop(&mut self) {
        if self.finished || !self.stop.is_stopped() {
            return;
        }
        self.finished = true;
        self.next = None;
        self.outbox.clear();
        let usage = TokenUsage {
            prompt_tokens: self.prefilled as u64,
            completion_tokens: self.generated as u64,
            ..TokenUsage::default()
        };
        self.outbox.push_back(BodyEvent::Stopped(usage));
    }

    /// Whether the client is gone (nobody will read the answer).
    fn abandoned(&self) -> bool {
        self.tx.is_closed()
    }

    /// Whether the sequence can take part in the next forward pass: not finished, and its
    /// client keeps up (a full outbox pauses it).
    fn ready(&self) -> bool {
        !self.finished && self.outbox.len() < 4
    }

    /// Takes the sampled logits of the step; returns nothing, records the outcome.
    fn on_logits(&mut self, logits: &[f32], model: &TextModel<B>) {
        let tokenizer = model.tokenizer();
        let picked = match &self.job.constraint {
            Some(constraint) => {
                let mut masked = logits.to_vec();
                let left = self.job.max_tokens.saturating_sub(self.generated);
                if !constraint.mask(tokenizer, &mut masked, left) {
                    self.fail("no token of the vocabulary continues the response_format".into());
                    return;
                }
                self.job.sampler.pick(&masked)
            }
            None => self.job.sampler.pick(logits),
        };
        let Some(id) = picked else {
            self.fail("empty logits".into());
            return;
        };
        if tokenizer.is_end_of_generation(id) {
            self.finish(FinishReason::Stop, tokenizer);
            return;
        }
        if let Some(top) = self.job.logprobs {
            self.logprobs.push(logprobs::token_logprob(logits, id, top));
        }
        if let Some(constraint) = self.job.constraint.as_mut()
            && !constraint.advance(tokenizer.token_bytes(id).unwrap_or_default())
        {
            self.fail("the token chosen does not continue the response_format".into());
            return;
        }
        self.generated += 1;
        let pushed = match self.decoder.as_mut() {
            Some(decoder) => decoder.push(id),
            None => Ok(String::new()),
        };
        let piece = match pushed {
            Ok(piece) => piece,
            Err(e) => {
                self.fail(e.to_string());
                return;
            }
        };
        let (release, stopped) = self.scanner.push(&piece);
        self.emit(release, tokenizer);
        let closed = self
            .job
            .constraint
            .as_ref()
            .is_some_and(JsonConstraint::closed);
        if stopped || closed {
            self.finish(FinishReason::Stop, tokenizer);
        } else if self.generated >= self.job.max_tokens {
            self.finish(FinishReason::Length, tokenizer);
        } else {
            self.next = Some(id);
        }
    }

    fn fail(&mut self, error: String) {
        let usage = self.usage();
        self.outbox.push_back(BodyEvent::Failed { error, usage });
        self.finished = true;
    }

    /// Completes the answer: held-back text, the closing chunk or whole body, usage.
    fn finish(&mut self, mut reason: FinishReason, tokenizer: &Tokenizer) {
        self.finished = true;
        self.next = None;
        if !self.scanner.stopped() {
            // Bytes of an incomplete character at the end, then text held for a stop
            // string that never came.
            let rest = self
                .decoder
                .take()
                .map(StreamDecoder::finish)
                .unwrap_or_default();
            let (release, stopped) = self.scanner.push(&rest);
            self.emit(release, tokenizer);
            if stopped {
                reason = FinishReason::Stop;
            } else {
                let tail = self.scanner.take_held();
                self.emit(tail, tokenizer);
            }
        }
        let usage = self.usage();
        let chat = self.chat();
        let usage_json = json!({
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total(),
        });
        let mut out = Vec::new();
        if self.job.stream {
            let empty = if chat { json!({}) } else { json!("") };
            let lp = self.unsent_logprobs(tokenizer);
            let meta = &self.meta;
            let last = stream_chunk_with(meta, chat, empty, Some(reason.as_openai()), lp);
            out.push(last);
            if self.job.include_usage {
                let chunk = json!({
                    "id": meta.id,
                    "object": if chat { "chat.completion.chunk" } else { "text_completion" },
                    "created": meta.created,
                    "model": meta.model,
                    "choices": [],
                    "usage": usage_json,
                });
                out.push(format!("data: {chunk}\n\n"));
            }
            out.push("data: [DONE]\n\n".to_owned());
        } else {
            let text = std::mem::take(&mut self.text);
            let lp = match self.job.logprobs {
                None => Value::Null,
                Some(_) if chat => logprobs::chat(tokenizer, &self.logprobs),
                Some(_) => logprobs::completions(tokenizer, &self.logprobs, 0),
            };
            let meta = &self.meta;
            let choice = if chat {
                json!({
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": lp,
                    "finish_reason": reason.as_openai(),
                })
            } else {
                json!({
                    "index": 0,
                    "text": text,
                    "logprobs": lp,
                    "finish_reason": reason.as_openai(),
                })
            };
            let body = json!({
                "id": meta.id,
                "object": if chat { "chat.completion" } else { "text_completion" },
                "created": meta.created,
                "model": meta.model,
                "choices": [choice],
                "usage": usage_json,
            });
            out.push(body.to_string());
        }
        for s in out {
            self.push_data(s);
        }
        self.outbox.push_back(BodyEvent::End(usage));
    }

    /// Moves buffered events into the channel while it has room. Returns `false` once the
    /// client is gone.
    fn flush(&mut self) -> bool {
        while let Some(event) = self.outbox.pop_front() {
            match self.tx.try_send(event) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(event)) => {
                    self.outbox.push_front(event);
                    return true;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
            }
        }
        true
    }

    /// Whether everything is said and delivered.
    fn done(&self) -> bool {
        self.finished && self.outbox.is_empty()
    }
}

/// The scheduler loop; returns when the engine is dropped and all requests are done.
pub(super) fn run<B: Backend>(
    model: Arc<TextModel<B>>,
    limits: Limits,
    inbox: std_mpsc::Receiver<Admission>,
) {
    let model: &TextModel<B> = &model;
    let mut waiting: VecDeque<Admission> = VecDeque::new();
    let mut active: Vec<Sequence<'_, B>> = Vec::new();
    let mut open = true;
    loop {
        // Admission at the step boundary: block only when there is nothing to do.
        if active.is_empty() && waiting.is_empty() {
            if !open {
                return;
            }
            match inbox.recv() {
                Ok(a) => waiting.push_back(a),
                Err(_) => return,
            }
        }
        loop {
            match inbox.try_recv() {
                Ok(a) => waiting.push_back(a),
                Err(std_mpsc::TryRecvError::Empty) => break,
                Err(std_mpsc::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        while active.len() < limits.max_batch {
            let Some(a) = waiting.pop_front() else { break };
            if a.tx.is_closed() {
                continue;
            }
            if a.stop.is_stopped() {
                // Stopped while waiting: nothing was computed.
                let _ = a.tx.try_send(BodyEvent::Stopped(TokenUsage::default()));
                continue;
            }
            active.push(Sequence::new(model, a));
        }
        for s in &mut active {
            s.check_stop();
        }

        // Deliver, and drop the sequences that are done or abandoned (freeing their slots).
        active.retain_mut(|s| s.flush() && !s.abandoned() && !s.done());

        let ready: Vec<usize> = (0..active.len()).filter(|&i| active[i].ready()).collect();
        if ready.is_empty() {
            if !active.is_empty() {
                // Everyone waits on a slow client: let them read.
                std::thread::sleep(Duration::from_millis(2));
            }
            continue;
        }
        step(model, limits, &mut active, &ready);
    }
}

/// One batched forward pass over the `ready` sequences, then sampling.
fn step<B: Backend>(
    model: &TextModel<B>,
    limits: Limits,
    active: &mut [Sequence<'_, B>],
    ready: &[usize],
) {
    // Tokens of each participant, decided before the caches are borrowed.
    let mut plan: Vec<(usize, Vec<u32>, bool)> = Vec::with_capacity(ready.len());
    for &i in ready {
        let s = &active[i];
        if s.prefilled < s.job.prompt.len() {
            let end = (s.prefilled + limits.prefill_chunk).min(s.job.prompt.len());
            let tokens = s.job.prompt[s.prefilled..end].to_vec();
            plan.push((i, tokens, end == s.job.prompt.len()));
        } else if let Some(id) = s.next {
            plan.push((i, vec![id], true));
        }
    }
    if plan.is_empty() {
        return;
    }
    let chosen: Vec<usize> = plan.iter().map(|p| p.0).collect();
    let result = {
        let mut steps: Vec<BatchStep<'_, B>> = Vec::with_capacity(plan.len());
        let mut rest: &mut [Sequence<'_, B>] = active;
        let mut offset = 0;
        for (i, tokens, logits) in &plan {
            let (_, tail) = std::mem::take(&mut rest).split_at_mut(i - offset);
            let (seq, after) = tail.split_at_mut(1);
            steps.push(BatchStep {
                tokens,
                cache: &mut seq[0].cache,
                logits: *logits,
            });
            rest = after;
            offset = i + 1;
        }
        model.forward_batch(&mut steps)
    };
    match result {
        Ok(logits) => {
            for ((i, tokens, _), logits) in plan.iter().zip(logits) {
                let s = &mut active[*i];
                if s.prefilled < s.job.prompt.len() {
                    s.prefilled += tokens.len();
                }
                if let Some(logits) = logits {
                    s.on_logits(&logits, model);
                }
            }
        }
        Err(e) => {
            let error = e.to_string();
            for i in chosen {
                active[i].fail(error.clone());
            }
        }
    }
}
