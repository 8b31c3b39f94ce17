//! The built-in engine for speech: a Whisper model ([`super::whisper`]) on the CPU behind the
//! same [`Engine`] contract as the text models, so a worker serves
//! `POST /v1/audio/transcriptions` from it sealed, metered and paid like chat. It only
//! transcribes: a chat or completion request names the endpoint to use instead.
//!
//! The worker has already parsed the form and measured the audio; this engine decodes the
//! WAV and transcribes it on a blocking thread (one at a time: the model uses every core; once
//! started it runs to the end and is charged in full, even if the caller leaves), writes
//! the transcript in the form's `response_format`, and ends the answer with the usage the
//! worker measured. What the model cannot honour is refused by field: a `prompt` (the model
//! decodes without one), a `temperature` above 0 (it decodes greedily), word timestamps.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use cocoon_protocol::audio::{ResponseFormat, TimedText, TranscriptText};
use tokio::sync::{Semaphore, mpsc};

use super::whisper::{Pcm16k, TranscribeOptions, WhisperModel};
use crate::{
    BodyEvent, Engine, EngineError, EngineFuture, EngineResponse, InferenceRequest, ModelInfo,
    StopHandle, TokenUsage, TranscriptionRequest, WeightsDigest,
};

/// Transcriptions waiting for the model beyond the one running.
const MAX_WAITING: usize = 16;

/// A Whisper model serving transcriptions.
pub struct SpeechEngine {
    model: Arc<WhisperModel>,
    name: String,
    weights: WeightsDigest,
    /// One transcription at a time, [`MAX_WAITING`] more queued.
    running: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
}

impl SpeechEngine {
    /// Loads the model in `dir` (CTranslate2 `model.bin`, `vocabulary.txt`, `config.json`),
    /// served as `name`; its identity is the digest of its weights (`model.bin`).
    pub fn load(dir: &Path, name: impl Into<String>) -> Result<Self, EngineError> {
        let model = WhisperModel::load(dir).map_err(|e| {
            EngineError::Unavailable(format!("speech model {}: {e}", dir.display()))
        })?;
        let weights = WeightsDigest::of_path(&dir.join("model.bin"))
            .map_err(|e| EngineError::Unavailable(format!("speech model digest: {e}")))?;
        Ok(Self {
            model: Arc::new(model),
            name: name.into(),
            weights,
            running: Arc::new(Semaphore::new(1)),
            admitted: Arc::new(Semaphore::new(1 + MAX_WAITING)),
        })
    }
}

/// The first form field the model cannot honour, named.
fn unhonoured(request: &TranscriptionRequest) -> Option<String> {
    let form = &request.form;
    if form.prompt.as_deref().is_some_and(|p| !p.is_empty()) {
        return Some("`prompt` is not supported by this worker's built-in speech model".into());
    }
    if form.temperature.is_some_and(|t| t != 0.0) {
        return Some(
            "`temperature` above 0 is not supported by this worker's built-in speech model \
             (it decodes greedily)"
                .into(),
        );
    }
    if form.timestamp_granularities.iter().any(|g| g != "segment") {
        return Some(
            "`timestamp_granularities` other than segment are not supported by this worker's \
             built-in speech model"
                .into(),
        );
    }
    None
}

impl Engine for SpeechEngine {
    fn kind(&self) -> &'static str {
        "builtin-speech"
    }

    fn models(&self) -> Vec<ModelInfo> {
        vec![ModelInfo {
            name: self.name.clone(),
            context_length: None,
            weights: Some(self.weights),
        }]
    }

    fn run(
        &self,
        request: InferenceRequest,
    ) -> EngineFuture<'_, Result<EngineResponse, EngineError>> {
        let name = self.name.clone();
        Box::pin(async move {
            Err(EngineError::InvalidRequest(format!(
                "model `{name}` is a speech model: it answers /v1/audio/transcriptions, not {}",
                request.endpoint.path()
            )))
        })
    }

    fn transcribe(
        &self,
        request: TranscriptionRequest,
    ) -> EngineFuture<'_, Result<EngineResponse, EngineError>> {
        Box::pin(async move {
            if let Some(why) = unhonoured(&request) {
                return Err(EngineError::InvalidRequest(why));
            }
            let admitted = Arc::clone(&self.admitted)
                .try_acquire_owned()
                .map_err(|_| EngineError::Overloaded("too many transcriptions waiting".into()))?;
            // Decoded on a blocking thread: an hour of audio takes a while to resample. Only the
            // header is checked here, so a broken file is still refused by field at once.
            cocoon_protocol::audio::WavAudio::parse(&request.form.file.data)
                .map_err(|e| EngineError::InvalidRequest(format!("`file`: {e}")))?;
            let wav = request.form.file.data.clone();
            let format = request.form.response_format;
            let options = TranscribeOptions {
                language: request.form.language.clone(),
                timestamps: matches!(
                    format,
                    ResponseFormat::VerboseJson | ResponseFormat::Srt | ResponseFormat::Vtt
                ),
                ..TranscribeOptions::default()
            };
            let (tx, rx) = mpsc::channel(2);
            let stop = StopHandle::new();
            let model = Arc::clone(&self.model);
            let running = Arc::clone(&self.running);
            let usage = request.usage;
            let stopped = stop.clone();
            tokio::spawn(async move {
                let _admitted = admitted;
                let Ok(_turn) = running.acquire_owned().await else {
                    return;
                };
                // Nothing transcribed, nothing charged.
                if stopped.is_stopped() || tx.is_closed() {
                    let _ = tx.send(BodyEvent::Stopped(TokenUsage::default())).await;
                    return;
                }
                let work = tokio::task::spawn_blocking(move || {
                    let pcm = Pcm16k::from_wav(&wav)?;
                    model.transcribe(&pcm, &options)
                });
                tokio::pin!(work);
                let done = tokio::select! {
                    done = &mut work => done,
                    () = stopped.stopped() => {
                        // The model cannot be interrupted: started work runs to its end and is
                        // charged in full, said at once (the worker waits only briefly), and
                        // the turn is kept until the model is free.
                        let _ = tx.send(BodyEvent::Stopped(usage)).await;
                        let _ = work.await;
                        return;
                    }
                };
                let event = match done {
                    Ok(Ok(t)) => {
                        let text = TranscriptText {
                            text: t.text,
                            language: t.language,
                            duration: t.duration_s,
                            segments: t
                                .segments
                                .into_iter()
                                .map(|s| TimedText {
                                    start: s.start,
                                    end: s.end,
                                    text: s.text,
                                })
                                .collect(),
                        };
                        let _ = tx
                            .send(BodyEvent::Data(Bytes::from(text.render(format))))
                            .await;
                        BodyEvent::End(usage)
                    }
                    // A transcript that could not be made costs nothing.
                    Ok(Err(e)) => BodyEvent::Failed {
                        error: e.to_string(),
                        usage: TokenUsage::default(),
                    },
                    Err(e) => BodyEvent::Failed {
                        error: format!("transcription thread: {e}"),
                        usage: TokenUsage::default(),
                    },
                };
                let _ = tx.send(event).await;
            });
            Ok(EngineResponse {
                status: 200,
                headers: vec![("content-type".to_owned(), format.content_type().to_owned())],
                body: rx,
                stop,
            })
        })
    }
}
