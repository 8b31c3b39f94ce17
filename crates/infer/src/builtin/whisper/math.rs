//! The f32 kernels the speech model is made of: a blocked, multi-threaded matrix product
//! against row-major weights, layer norm, GELU and softmax. Whisper tiny is small enough that
//! plain f32 on the CPU transcribes faster than real time.

use rayon::prelude::*;

/// `x · wᵀ (+ bias)`: `x` is `n x k`, `w` is `m x k` (one output per row, as weights are
/// stored), the result `n x m`.
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
    const ROWS: usize = 4;
    const COLS: usize = 32;
    let mut out = vec![0f32; n * m];
    if m == 0 {
        return out;
    }
    out.par_chunks_mut(ROWS * m)
        .zip(x.par_chunks(ROWS * k))
        .for_each(|(out, x)| {
            let rows = x.len() / k;
            for j0 in (0..m).step_by(COLS) {
                for j in j0..(j0 + COLS).min(m) {
                    let wj = &w[j * k..(j + 1) * k];
                    let b = bias.map_or(0.0, |b| b[j]);
                    if rows == ROWS {
                        let d = dot4(
                            [&x[..k], &x[k..2 * k], &x[2 * k..3 * k], &x[3 * k..4 * k]],
                            wj,
                        );
                        for r in 0..ROWS {
                            out[r * m + j] = d[r] + b;
                        }
                    } else {
                        for r in 0..rows {
                            out[r * m + j] = dot(&x[r * k..(r + 1) * k], wj) + b;
                        }
                    }
                }
            }
        });
    out
}

/// Four dot products against one shared vector: each element of `w` is loaded once.
fn dot4(x: [&[f32]; 4], w: &[f32]) -> [f32; 4] {
    const L: usize = 8;
    let mut acc = [[0f32; L]; 4];
    let chunks = w.len() / L;
    for c in 0..chunks {
        let wc = &w[c * L..(c + 1) * L];
        for (r, xr) in x.iter().enumerate() {
            let xc = &xr[c * L..(c + 1) * L];
            for i in 0..L {
                acc[r][i] += xc[i] * wc[i];
            }
        }
    }
    let mut out = [0f32; 4];
    for r in 0..4 {
        out[r] = acc[r].iter().sum::<f32>()
            + x[r][chunks * L..]
                .iter()
                .zip(&w[chunks * L..])
                .map(|(a, b)| a * b)
                .sum::<f32>();
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
        let (n, k, m) = (7, 19, 37);
        let x: Vec<f32> = (0..n * k).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
        let w: Vec<f32> = (0..m * k).map(|i| ((i * 5) % 11) as f32 - 5.0).collect();
        let b: Vec<f32> = (0..m).map(|i| i as f32).collect();
        let got = matmul_t(&x, n, k, &w, m, Some(&b));
        for i in 0..n {
            for j in 0..m {
                let want: f32 = (0..k).map(|t| x[i * k + t] * w[j * k + t]).sum::<f32>() + b[j];
                assert_eq!(got[i * m + j], want, "({i}, {j})");
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
