//! WAV files from outside (a transcription request's upload): decoding any bytes must give
//! samples or a typed error, never a panic, and decoded samples are finite and in [-1, 1].

#![no_main]

use cocoon_infer::builtin::whisper::wav::WavData;
use cocoon_infer::builtin::whisper::Pcm16k;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The container alone, then the whole decode (channel mix and resampling to 16 kHz).
    if let Ok(wav) = WavData::parse(data) {
        assert!(wav.data.len() <= data.len());
        let frame = usize::from(wav.format.channels) * usize::from(wav.format.bits_per_sample / 8);
        assert_eq!(wav.data.len() % frame, 0);
    }
    if let Ok(pcm) = Pcm16k::from_wav(data) {
        assert!(pcm.samples().iter().all(|s| s.is_finite() && s.abs() <= 1.0));
    }
});
