//! Whisper's front end: 16 kHz samples to the log-mel spectrogram the encoder reads.
//!
//! As Whisper defines it: a 400-sample (25 ms) periodic Hann window every 160 samples (10 ms),
//! frames centred with reflect padding, the power spectrum of 201 bins through 80 mel filters
//! (Slaney's mel scale and area normalisation, 0 to 8 kHz), `log10` clamped at 1e-10, then
//! floored at the maximum minus 8 and mapped by `(x + 4) / 4`. The audio is followed by 30 s of
//! silence before the transform and the last frame dropped, so every 30 s window is whole.

use super::math::matmul_t;

/// Samples per FFT window.
pub const N_FFT: usize = 400;
/// Samples between frames.
pub const HOP: usize = 160;
/// Frames in one 30 s window, the encoder's input length.
pub const WINDOW_FRAMES: usize = 3000;
/// Samples in 30 s.
pub const WINDOW_SAMPLES: usize = 480_000;
const BINS: usize = N_FFT / 2 + 1;

fn hz_to_mel(hz: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let log_step = 6.4f64.ln() / 27.0;
    if hz >= 1000.0 {
        15.0 + (hz / 1000.0).ln() / log_step
    } else {
        hz / f_sp
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let log_step = 6.4f64.ln() / 27.0;
    if mel >= 15.0 {
        1000.0 * (log_step * (mel - 15.0)).exp()
    } else {
        f_sp * mel
    }
}

/// The mel filterbank, `n_mels` rows of 201 weights over the FFT bins.
pub fn filterbank(n_mels: usize, sample_rate: f64) -> Vec<f32> {
    let fft_freqs: Vec<f64> = (0..BINS)
        .map(|i| i as f64 * sample_rate / N_FFT as f64)
        .collect();
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(sample_rate / 2.0));
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut weights = vec![0f32; n_mels * BINS];
    for m in 0..n_mels {
        let enorm = 2.0 / (mel_f[m + 2] - mel_f[m]);
        for (b, &f) in fft_freqs.iter().enumerate() {
            let lower = (f - mel_f[m]) / (mel_f[m + 1] - mel_f[m]);
            let upper = (mel_f[m + 2] - f) / (mel_f[m + 2] - mel_f[m + 1]);
            weights[m * BINS + b] = (lower.min(upper).max(0.0) * enorm) as f32;
        }
    }
    weights
}

/// The log-mel spectrogram of `samples` followed by 30 s of silence, time-major:
/// `frames x n_mels`, where `frames = (samples.len() + 480000) / 160`.
pub fn log_mel(samples: &[f32], n_mels: usize) -> Vec<f32> {
    let mut padded = samples.to_vec();
    padded.resize(samples.len() + WINDOW_SAMPLES, 0.0);
    let frames = padded.len() / HOP; // 1 + len / HOP frames, the last dropped.
    let half = N_FFT / 2;
    // Reflect padding: index -i is i, index len-1+i is len-1-i.
    let len = padded.len() as isize;
    let at = |i: isize| -> f32 {
        let j = if i < 0 {
            -i
        } else if i >= len {
            2 * (len - 1) - i
        } else {
            i
        };
        padded[j.clamp(0, len - 1) as usize]
    };
    let window: Vec<f32> = (0..N_FFT)
        .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / N_FFT as f64).cos()) as f32)
        .collect();
    let mut windowed = vec![0f32; frames * N_FFT];
    for (t, row) in windowed.chunks_exact_mut(N_FFT).enumerate() {
        let start = (t * HOP) as isize - half as isize;
        for (i, v) in row.iter_mut().enumerate() {
            *v = at(start + i as isize) * window[i];
        }
    }
    // The DFT as two matrix products with cosine and sine tables (N_FFT is not a power of 2).
    let mut cos = vec![0f32; BINS * N_FFT];
    let mut sin = vec![0f32; BINS * N_FFT];
    for k in 0..BINS {
        for n in 0..N_FFT {
            let phase = 2.0 * std::f64::consts::PI * ((k * n) % N_FFT) as f64 / N_FFT as f64;
            cos[k * N_FFT + n] = phase.cos() as f32;
            sin[k * N_FFT + n] = phase.sin() as f32;
        }
    }
    let re = matmul_t(&windowed, frames, N_FFT, &cos, BINS, None);
    let im = matmul_t(&windowed, frames, N_FFT, &sin, BINS, None);
    let power: Vec<f32> = re.iter().zip(&im).map(|(r, i)| r * r + i * i).collect();
    let filters = filterbank(n_mels, 16_000.0);
    let mut mel = matmul_t(&power, frames, BINS, &filters, n_mels, None);
    let mut max = f32::NEG_INFINITY;
    for v in &mut mel {
        *v = v.max(1e-10).log10();
        max = max.max(*v);
    }
    for v in &mut mel {
        *v = (v.max(max - 8.0) + 4.0) / 4.0;
    }
    mel
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn filterbank_is_slaney_normalised_triangles() {
        let f = filterbank(80, 16_000.0);
        for m in 0..80 {
            let row = &f[m * BINS..(m + 1) * BINS];
            assert!(row.iter().all(|&w| w >= 0.0));
            assert!(row.iter().any(|&w| w > 0.0), "filter {m} is empty");
        }
        // The first filter spans 0 to 74.5 Hz with its peak at 37.2 Hz: bins 0, 40 and 80 Hz.
        assert!(f[1] > f[0] && f[1] > f[2]);
    }

    #[test]
    fn shape_and_silence() {
        let mel = log_mel(&[0.0; 16_000], 80);
        assert_eq!(mel.len(), (16_000 + WINDOW_SAMPLES) / HOP * 80);
        // All silence: everything is the floor (log10(1e-10) + 4) / 4.
        assert!(mel.iter().all(|&v| (v - (-10.0 + 4.0) / 4.0).abs() < 1e-6));
    }
}
