//! The f32 kernels the speech model is made of: a blocked, multi-threaded matrix product
//! against row-major weights, layer norm, GELU and softmax. Whisper tiny is small enough that
//! plain f32 on the CPU transcribes faster than real time.

use rayon::prelude::*;

/// `x · wᵀ (+ bias)`: `x` is `n x k`, `w` is `m x k` (one output per row, as weights are
/// stored), the result `n x m`. Rows of `x` are shared out between threads in groups of four;
/// each group meets the weights two rows at a time in SIMD registers (AVX2 and FMA where the
/// CPU has them, chosen at run time by `pulp`). A single row (a decoding step) shares out the
/// weight rows instead.
pub(super) fn matmul_t(
    x: &[f32],
    n: usize,
    k: usize,
    w: &[f32],
    m: usize,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    debug_assert_eq!(x.len(), n * k);
    debug_assert_eq!(w.len(), m * k);
    let mut out = vec![0f32; n * m];
    if m == 0 {
        return out;
    }
    if k == 0 {
        if let Some(b) = bias {
            for row in out.chunks_exact_mut(m) {
                row.copy_from_slice(b);
            }
        }
        return out;
    }
    let arch = pulp::Arch::new();
    if n == 1 {
        const COLS: usize = 64;
        out.par_chunks_mut(COLS).enumerate().for_each(|(c, out)| {
            let cols = c * COLS..c * COLS + out.len();
            let w = &w[cols.start * k..cols.end * k];
            let bias = bias.map(|b| &b[cols]);
            arch.dispatch(Block { x, k, w, bias, out });
        });
        return out;
    }
    out.par_chunks_mut(ROWS * m)
        .zip(x.par_chunks(ROWS * k))
        .for_each(|(out, x)| arch.dispatch(Block { x, k, w, bias, out }));
    out
}

const ROWS: usize = 4;

/// At most [`ROWS`] rows of `x` against all of `w` (`out` is `rows x m`).
struct Block<'a> {
    x: &'a [f32],
    k: usize,
    w: &'a [f32],
    bias: Option<&'a [f32]>,
    out: &'a mut [f32],
}

impl pulp::WithSimd for Block<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let Block { x, k, w, bias, out } = self;
        let rows = x.len() / k;
        let m = w.len() / k;
        let xr = |r: usize| &x[r * k..(r + 1) * k];
        let wr = |j: usize| &w[j * k..(j + 1) * k];
        let b = |j: usize| bias.map_or(0.0, |b| b[j]);
        let mut j = 0;
        while j < m {
            let pair = j + 1 < m;
            if rows == ROWS {
                let xs = [xr(0), xr(1), xr(2), xr(3)];
                if pair {
                    let t = tile::<S, 4, 2>(simd, xs, [wr(j), wr(j + 1)]);
                    for (r, t) in t.iter().enumerate() {
                        out[r * m + j] = t[0] + b(j);
                        out[r * m + j + 1] = t[1] + b(j + 1);
                    }
                } else {
                    let t = tile::<S, 4, 1>(simd, xs, [wr(j)]);
                    for (r, t) in t.iter().enumerate() {
                        out[r * m + j] = t[0] + b(j);
                    }
                }
            } else {
                for r in 0..rows {
                    if pair {
                        let t = tile::<S, 1, 2>(simd, [xr(r)], [wr(j), wr(j + 1)]);
                        out[r * m + j] = t[0][0] + b(j);
                        out[r * m + j + 1] = t[0][1] + b(j + 1);
                    } else {
                        out[r * m + j] = tile::<S, 1, 1>(simd, [xr(r)], [wr(j)])[0][0] + b(j);
                    }
                }
            }
            j += 2;
        }
    }
}

/// `R x C` dot products of equal-length rows, accumulated in SIMD registers.
#[inline(always)]
fn tile<S: pulp::Simd, const R: usize, const C: usize>(
    simd: S,
    x: [&[f32]; R],
    w: [&[f32]; C],
) -> [[f32; C]; R] {
    let xs = x.map(|r| S::as_simd_f32s(r));
    let ws = w.map(|r| S::as_simd_f32s(r));
    let mut acc = [[simd.splat_f32s(0.0); C]; R];
    for i in 0..ws[0].0.len() {
        for c in 0..C {
            let wv = ws[c].0[i];
            for r in 0..R {
                acc[r][c] = simd.mul_add_f32s(xs[r].0[i], wv, acc[r][c]);
            }
        }
    }
    let mut out = [[0f32; C]; R];
    for r in 0..R {
        for c in 0..C {
            out[r][c] = simd.reduce_sum_f32s(acc[r][c])
                + xs[r].1.iter().zip(ws[c].1).map(|(a, b)| a * b).sum::<f32>();
        }
    }
    out
}

/// The dot product of two equal-length vectors.
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    const L: usize = 16;
    let mut acc = [0f32; L];
    let (ca, cb) = (a.chunks_exact(L), b.chunks_exact(L));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..L {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Layer norm over rows of `d` (epsilon 1e-5), in place.
pub(super) fn layer_norm(x: &mut [f32], d: usize, gamma: &[f32], beta: &[f32]) {
    x.par_chunks_mut(d).for_each(|row| {
        let mean = row.iter().sum::<f32>() / d as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
        let inv = 1.0 / (var + 1e-5).sqrt();
        for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
            *v = (*v - mean) * inv * g + b;
        }
    });
}

/// A copy of `x` layer-normed.
pub(super) fn normed(x: &[f32], d: usize, gamma: &[f32], beta: &[f32]) -> Vec<f32> {
    let mut y = x.to_vec();
    layer_norm(&mut y, d, gamma, beta);
    y
}

/// GELU (the exact form, with erf), in place.
pub(super) fn gelu(x: &mut [f32]) {
    x.par_chunks_mut(4096).for_each(|c| {
        for v in c {
            *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
        }
    });
}

/// The error function (Abramowitz and Stegun 7.1.26, absolute error below 1.5e-7).
fn erf(x: f32) -> f32 {
    let x = f64::from(x);
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let y = 1.0 - poly * (-x * x).exp();
    (if x < 0.0 { -y } else { y }) as f32
}

/// Softmax of one row, in place.
pub(super) fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

/// `a += b` elementwise.
pub(super) fn add_assign(a: &mut [f32], b: &[f32]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn matmul_matches_the_naive_product() {
        for (n, k, m) in [(7, 19, 37), (1, 40, 130), (8, 3, 2), (5, 64, 1)] {
            check(n, k, m);
        }
    }

    fn check(n: usize, k: usize, m: usize) {
        let x: Vec<f32> = (0..n * k).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
        let w: Vec<f32> = (0..m * k).map(|i| ((i * 5) % 11) as f32 - 5.0).collect();
        let b: Vec<f32> = (0..m).map(|i| i as f32).collect();
        let got = matmul_t(&x, n, k, &w, m, Some(&b));
        for i in 0..n {
            for j in 0..m {
                let want: f32 = (0..k).map(|t| x[i * k + t] * w[j * k + t]).sum::<f32>() + b[j];
                assert!(
                    (got[i * m + j] - want).abs() <= 1e-3 * want.abs().max(1.0),
                    "({i}, {j})"
                );
            }
        }
    }

    #[test]
    fn erf_and_gelu_known_values() {
        assert!((erf(0.5) - 0.520_499_9).abs() < 1e-6);
        let mut v = [1.0f32, -1.0, 0.0];
        gelu(&mut v);
        assert!((v[0] - 0.841_344_7).abs() < 1e-6 && (v[1] + 0.158_655_3).abs() < 1e-6);
        assert_eq!(v[2], 0.0);
    }
}
