//! The encoder's element-wise and attention arithmetic on plain `f32` slices, written so the
//! compiler vectorises it: branch-free bodies, lane-wise accumulators instead of float reductions
//! (which it may not reorder), and `exp`/`erf` as polynomials instead of calls into libm. Callers
//! run these inside [`simd`], which compiles them for AVX2+FMA or AVX-512 when the CPU has them
//! (runtime dispatch through `pulp`, no `unsafe` here) and as plain scalar code otherwise.
//!
//! Accuracy: `exp` within 3e-7 relative on the softmax's range, `erf` within 1e-6 absolute
//! (Abramowitz & Stegun 7.1.26) — far below what moves a sentence embedding (the encoder test
//! compares against the reference implementation to cosine 1 − 1e-6).

/// Lanes of the accumulators: one AVX-512 register, or two AVX2 ones.
const LANES: usize = 16;

/// Runs `f` compiled for the best instruction set this CPU has.
#[inline(always)]
pub(super) fn simd<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// e^x for x ≤ 0 (the softmax's shifted scores), clamped below at e^-87 (≈ 1.6e-38).
#[inline(always)]
pub(super) fn exp_neg(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two (Cody & Waite) so n·ln2 is exact in the reduction.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.0, 0.0);
    let n = (x * LOG2E).round_ties_even();
    let r = x - n * LN2_HI - n * LN2_LO; // |r| ≤ ln2 / 2
    let p = 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    // 2^n built in the exponent bits; n ∈ [-126, 0] keeps it a normal number.
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// erf(x), within 1e-6: Abramowitz & Stegun 7.1.26 (1.5e-7 in exact arithmetic) evaluated in f32.
#[inline(always)]
pub(super) fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let y = 1.0 - poly * exp_neg(-a * a);
    y.copysign(x)
}

/// GELU as BERT uses it (the exact, erf-based form), of `x + bias` in place; `x` holds rows of
/// `bias.len()` values.
#[inline(always)]
pub(super) fn bias_gelu(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            let z = *v + b;
            *v = 0.5 * z * (1.0 + erf(z * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

/// Σ f(x) over a slice with lane-wise partial sums (vectorisable, unlike a sequential fold).
#[inline(always)]
fn lane_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|v| f(*v)).sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += f(*v);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Sum of a slice, lane-wise.
#[inline(always)]
pub(super) fn sum(x: &[f32]) -> f32 {
    lane_sum(x, |v| v)
}

/// Layer normalisation of one row in place: (x − mean) / √(var + eps) · gamma + beta.
#[inline(always)]
pub(super) fn layer_norm(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = x.len() as f32;
    let mean = sum(x) / n;
    let inv = 1.0 / (lane_sum(x, |v| (v - mean) * (v - mean)) / n + eps).sqrt();
    for ((v, g), b) in x.iter_mut().zip(gamma).zip(beta) {
        *v = (*v - mean) * inv * g + b;
    }
}

/// `dst = layer_norm(x + bias + residual)` row by row (the sub-layer output of a BERT block).
#[inline(always)]
pub(super) fn add_bias_residual_norm(
    x: &[f32],
    residual: &[f32],
    dst: &mut [f32],
    bias: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) {
    let d = bias.len();
    for ((row, res), out) in x.chunks_exact(d).zip(residual.chunks_exact(d)).zip(dst.chunks_exact_mut(d)) {
        for (((o, v), r), b) in out.iter_mut().zip(row).zip(res).zip(bias) {
            *o = v + r + b;
        }
        layer_norm(out, gamma, beta, eps);
    }
}

/// Softmax of one row of scores in place.
#[inline(always)]
pub(super) fn softmax(scores: &mut [f32]) {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = scores.chunks_exact(LANES);
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a = a.max(*v);
        }
    }
    let max = acc.iter().fold(tail, |m, v| m.max(*v));
    for v in scores.iter_mut() {
        *v = exp_neg(*v - max);
    }
    let inv = 1.0 / sum(scores);
    for v in scores.iter_mut() {
        *v *= inv;
    }
}

/// Scratch space of one sequence's attention, reused across heads.
#[derive(Default)]
pub(super) struct AttentionScratch {
    /// The head's keys transposed: `head_dim` rows of `len` values.
    keys_t: Vec<f32>,
    /// One query's scores over the sequence.
    scores: Vec<f32>,
}

/// Self-attention of one sequence: `qkv` holds its `len` token rows of `3 · hidden` values (queries,
/// keys, values, each `heads` heads wide, without their biases yet); writes the `len × hidden`
/// context into `ctx`.
#[inline(always)]
pub(super) fn attention(qkv: &[f32], bias: &[f32], ctx: &mut [f32], heads: usize, scratch: &mut AttentionScratch) {
    let hidden = bias.len() / 3;
    let len = qkv.len() / (3 * hidden);
    let head_dim = hidden / heads;
    let scale = 1.0 / (head_dim as f32).sqrt();
    scratch.keys_t.resize(head_dim * len, 0.0);
    scratch.scores.resize(len, 0.0);
    ctx.fill(0.0);
    for h in 0..heads {
        let (q0, k0, v0) = (h * head_dim, hidden + h * head_dim, 2 * hidden + h * head_dim);
        for (j, row) in qkv.chunks_exact(3 * hidden).enumerate() {
            for (d, (k, b)) in row[k0..k0 + head_dim].iter().zip(&bias[k0..k0 + head_dim]).enumerate() {
                scratch.keys_t[d * len + j] = k + b;
            }
        }
        for (i, row) in qkv.chunks_exact(3 * hidden).enumerate() {
            // scores[j] = (q_i · k_j) · scale, accumulated over the head's dimensions.
            let scores = &mut scratch.scores[..];
            scores.fill(0.0);
            for d in 0..head_dim {
                let q = (row[q0 + d] + bias[q0 + d]) * scale;
                for (s, k) in scores.iter_mut().zip(&scratch.keys_t[d * len..(d + 1) * len]) {
                    *s += q * k;
                }
            }
            softmax(scores);
            // ctx_i = Σ_j p_j · v_j (the value bias adds once: the weights sum to 1).
            let out = &mut ctx[i * hidden + q0..i * hidden + q0 + head_dim];
            for (p, vrow) in scores.iter().zip(qkv.chunks_exact(3 * hidden)) {
                for (o, v) in out.iter_mut().zip(&vrow[v0..v0 + head_dim]) {
                    *o += p * v;
                }
            }
            for (o, b) in out.iter_mut().zip(&bias[v0..v0 + head_dim]) {
                *o += b;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf by its Maclaurin series in f64 (exact to ~1e-11 for |x| ≤ 4).
    fn erf_reference(x: f64) -> f64 {
        let mut term = x;
        let mut sum = x;
        for n in 1..120 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn exp_matches_the_standard_library_on_the_softmax_range() {
        let mut worst = 0.0f64;
        for i in 0..=200_000 {
            let x = -87.0 * i as f32 / 200_000.0;
            let (ours, std) = (simd(|| exp_neg(x)) as f64, (x as f64).exp());
            worst = worst.max(((ours - std) / std).abs());
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp_neg(0.0), 1.0);
        assert!(exp_neg(f32::NEG_INFINITY) < 1e-37);
    }

    #[test]
    fn erf_is_within_its_published_bound() {
        let mut worst = 0.0f64;
        for i in -60_000..=60_000 {
            let x = i as f32 / 10_000.0;
            let expected = if x.abs() > 4.0 { (x as f64).signum() } else { erf_reference(x as f64) };
            worst = worst.max((simd(|| erf(x)) as f64 - expected).abs());
        }
        assert!(worst < 1e-6, "worst absolute error {worst}");
        assert!(erf(0.0).abs() < 2e-7 && erf(-1.0) == -erf(1.0));
    }

    #[test]
    fn gelu_layer_norm_and_softmax_agree_with_their_definitions() {
        let bias = [0.5f32, -1.0, 0.0];
        let mut x = [1.0f32, 2.0, -3.0, 0.0, 0.0, 0.0];
        bias_gelu(&mut x, &bias);
        let gelu = |z: f64| 0.5 * z * (1.0 + erf_reference(z / 2f64.sqrt()));
        for (got, z) in x.iter().zip([1.5, 1.0, -3.0, 0.5, -1.0, 0.0]) {
            assert!((*got as f64 - gelu(z)).abs() < 1e-6, "gelu({z}) = {got}");
        }

        let mut row: Vec<f32> = (0..37).map(|i| (i as f32 * 0.7).sin() * 3.0 + 1.0).collect();
        let gamma = vec![2.0f32; 37];
        let beta = vec![0.25f32; 37];
        layer_norm(&mut row, &gamma, &beta, 1e-12);
        let mean = row.iter().map(|v| (v - 0.25) / 2.0).sum::<f32>() / 37.0;
        let var = row.iter().map(|v| ((v - 0.25) / 2.0 - mean).powi(2)).sum::<f32>() / 37.0;
        assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5, "mean {mean} var {var}");

        let mut scores: Vec<f32> = (0..21).map(|i| i as f32 * 0.3 - 2.0).collect();
        let expected: Vec<f64> = {
            let e: Vec<f64> = scores.iter().map(|s| (*s as f64).exp()).collect();
            let total: f64 = e.iter().sum();
            e.iter().map(|v| v / total).collect()
        };
        softmax(&mut scores);
        for (got, want) in scores.iter().zip(&expected) {
            assert!((*got as f64 - want).abs() < 1e-7, "{got} vs {want}");
        }
    }

    #[test]
    fn attention_matches_a_direct_computation() {
        let (len, heads, head_dim) = (5usize, 2usize, 4usize);
        let hidden = heads * head_dim;
        let qkv: Vec<f32> = (0..len * 3 * hidden).map(|i| ((i * 37 % 17) as f32 - 8.0) / 9.0).collect();
        let bias: Vec<f32> = (0..3 * hidden).map(|i| (i as f32 - 12.0) / 40.0).collect();
        let mut ctx = vec![f32::NAN; len * hidden];
        attention(&qkv, &bias, &mut ctx, heads, &mut AttentionScratch::default());
        let at = |t: usize, c: usize| (qkv[t * 3 * hidden + c] + bias[c]) as f64;
        for h in 0..heads {
            for i in 0..len {
                let scores: Vec<f64> = (0..len)
                    .map(|j| {
                        (0..head_dim).map(|d| at(i, h * head_dim + d) * at(j, hidden + h * head_dim + d)).sum::<f64>()
                            / (head_dim as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = e.iter().sum();
                for d in 0..head_dim {
                    let want: f64 = (0..len).map(|j| e[j] / total * at(j, 2 * hidden + h * head_dim + d)).sum();
                    let got = ctx[i * hidden + h * head_dim + d] as f64;
                    assert!((got - want).abs() < 1e-5, "head {h} row {i} dim {d}: {got} vs {want}");
                }
            }
        }
    }
}
