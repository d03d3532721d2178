//! The BERT encoder's forward pass for inference, on candle tensors, built for throughput on a CPU:
//!
//! - **No padding.** A batch's sequences are packed one after another (`tokens × hidden`), so
//!   every matrix product runs over real tokens only and attention runs per sequence over its own
//!   length — nothing is masked because nothing is padded.
//! - **Four matrix products per layer** (queries, keys and values as one `hidden × 3·hidden`
//!   product), each one candle matmul over all of the batch's tokens.
//! - **Fused element-wise work** as candle custom ops ([`kernels`]): bias + GELU; bias + residual +
//!   layer norm; attention (bias, scaled scores, softmax, weighted values) per sequence — each a
//!   single pass, spread over the cores by sequence or by rows, compiled for the CPU's vector width.
//!
//! The arithmetic is the reference BERT's (exact-erf GELU, post-norm residual blocks); the test
//! `embed::tests::the_packed_encoder_matches_the_reference_model` holds it to candle-transformers'
//! `BertModel` on the same weights.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Device, Layout, Shape, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config, HiddenAct};
use rayon::prelude::*;

use super::kernels::{self, AttentionScratch, simd};

/// Rows per parallel task of the row-wise ops.
const ROWS_PER_TASK: usize = 16;

/// A transformer block's weights. Matrices are kept transposed (`in × out` views) for `x · W`.
struct Block {
    qkv: Tensor,
    qkv_bias: Vec<f32>,
    attn_out: Tensor,
    attn_out_bias: Vec<f32>,
    attn_norm: (Vec<f32>, Vec<f32>),
    up: Tensor,
    up_bias: Vec<f32>,
    down: Tensor,
    down_bias: Vec<f32>,
    out_norm: (Vec<f32>, Vec<f32>),
}

/// The loaded encoder.
pub(super) struct Encoder {
    hidden: usize,
    heads: usize,
    eps: f32,
    max_positions: usize,
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embed_norm: (Vec<f32>, Vec<f32>),
    blocks: Vec<Block>,
}

fn vector(vb: &VarBuilder, len: usize, name: &str) -> candle_core::Result<Vec<f32>> {
    vb.get(len, name)?.to_vec1::<f32>()
}

fn norm(vb: &VarBuilder, len: usize) -> candle_core::Result<(Vec<f32>, Vec<f32>)> {
    Ok((vector(vb, len, "LayerNorm.weight")?, vector(vb, len, "LayerNorm.bias")?))
}

impl Encoder {
    /// Reads the weights under `vb` (with or without a `bert.` prefix).
    pub(super) fn load(vb: VarBuilder, config: &Config) -> candle_core::Result<Encoder> {
        if config.hidden_act != HiddenAct::Gelu {
            return Err(candle_core::Error::Msg(format!(
                "unsupported activation {:?} (the encoder runs exact GELU)",
                config.hidden_act
            )));
        }
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") { vb.pp("bert") } else { vb };
        let (d, inner) = (config.hidden_size, config.intermediate_size);
        if config.num_attention_heads == 0 || d % config.num_attention_heads != 0 {
            return Err(candle_core::Error::Msg(format!(
                "hidden size {d} does not split into {} heads",
                config.num_attention_heads
            )));
        }
        let emb = vb.pp("embeddings");
        let table = |name: &str, rows: usize| -> candle_core::Result<Vec<f32>> {
            emb.get((rows, d), name)?.flatten_all()?.to_vec1::<f32>()
        };
        let word = table("word_embeddings.weight", config.vocab_size)?;
        let position = table("position_embeddings.weight", config.max_position_embeddings)?;
        let token_type = table("token_type_embeddings.weight", config.type_vocab_size)?
            .get(..d)
            .ok_or_else(|| candle_core::Error::Msg("the model has no token type embeddings".into()))?
            .to_vec();
        let embed_norm = norm(&emb, d)?;
        let blocks = (0..config.num_hidden_layers)
            .map(|i| {
                let l = vb.pp(format!("encoder.layer.{i}"));
                let (attn, sa) = (l.pp("attention"), l.pp("attention.self"));
                let qkv = Tensor::cat(
                    &[sa.get((d, d), "query.weight")?, sa.get((d, d), "key.weight")?, sa.get((d, d), "value.weight")?],
                    0,
                )?;
                let mut qkv_bias = vector(&sa, d, "query.bias")?;
                qkv_bias.extend(vector(&sa, d, "key.bias")?);
                qkv_bias.extend(vector(&sa, d, "value.bias")?);
                Ok(Block {
                    qkv: qkv.t()?,
                    qkv_bias,
                    attn_out: attn.get((d, d), "output.dense.weight")?.t()?,
                    attn_out_bias: vector(&attn, d, "output.dense.bias")?,
                    attn_norm: norm(&attn.pp("output"), d)?,
                    up: l.get((inner, d), "intermediate.dense.weight")?.t()?,
                    up_bias: vector(&l, inner, "intermediate.dense.bias")?,
                    down: l.get((d, inner), "output.dense.weight")?.t()?,
                    down_bias: vector(&l, d, "output.dense.bias")?,
                    out_norm: norm(&l.pp("output"), d)?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Encoder {
            hidden: d,
            heads: config.num_attention_heads,
            eps: config.layer_norm_eps as f32,
            max_positions: config.max_position_embeddings,
            word,
            position,
            token_type,
            embed_norm,
            blocks,
        })
    }

    /// The mean of each sequence's last hidden states (not yet normalised): `sequences` holds each
    /// sequence's token ids, special tokens included.
    pub(super) fn pooled(&self, sequences: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let d = self.hidden;
        let lengths: Vec<usize> = sequences.iter().map(|s| s.len()).collect();
        let tokens: usize = lengths.iter().sum();
        let mut x = Tensor::from_vec(self.embed(sequences)?, (tokens, d), &Device::Cpu)?;
        for b in &self.blocks {
            let qkv = x.matmul(&b.qkv)?;
            let ctx = qkv.apply_op1_no_bwd(&Attention { bias: &b.qkv_bias, lengths: &lengths, heads: self.heads })?;
            let attn = ctx.matmul(&b.attn_out)?;
            let x1 =
                attn.apply_op2_no_bwd(&x, &AddNorm { bias: &b.attn_out_bias, norm: &b.attn_norm, eps: self.eps })?;
            let h = x1.matmul(&b.up)?.apply_op1_no_bwd(&BiasGelu { bias: &b.up_bias })?;
            let out = h.matmul(&b.down)?;
            x = out.apply_op2_no_bwd(&x1, &AddNorm { bias: &b.down_bias, norm: &b.out_norm, eps: self.eps })?;
        }
        let x = x.flatten_all()?.to_vec1::<f32>()?;
        let mut pooled = Vec::with_capacity(sequences.len());
        let mut rows = x.chunks_exact(d);
        for &len in &lengths {
            let mut mean = vec![0.0f32; d];
            for row in rows.by_ref().take(len) {
                for (m, v) in mean.iter_mut().zip(row) {
                    *m += v;
                }
            }
            let n = len.max(1) as f32;
            mean.iter_mut().for_each(|m| *m /= n);
            pooled.push(mean);
        }
        Ok(pooled)
    }

    /// Word + position + token-type embeddings, layer-normalised, packed `tokens × hidden`.
    fn embed(&self, sequences: &[&[u32]]) -> candle_core::Result<Vec<f32>> {
        let d = self.hidden;
        let vocab = self.word.len() / d;
        let tokens: usize = sequences.iter().map(|s| s.len()).sum();
        let mut out = vec![0.0f32; tokens * d];
        let mut rest = &mut out[..];
        for seq in sequences {
            if seq.len() > self.max_positions {
                return Err(candle_core::Error::Msg(format!(
                    "{} tokens exceed the model's {} positions",
                    seq.len(),
                    self.max_positions
                )));
            }
            let (mine, tail) = std::mem::take(&mut rest).split_at_mut(seq.len() * d);
            rest = tail;
            for (p, (&id, row)) in seq.iter().zip(mine.chunks_exact_mut(d)).enumerate() {
                let id = id as usize;
                if id >= vocab {
                    return Err(candle_core::Error::Msg(format!("token id {id} outside the vocabulary of {vocab}")));
                }
                let (w, pos) = (&self.word[id * d..(id + 1) * d], &self.position[p * d..(p + 1) * d]);
                simd(|| {
                    for (((o, a), b), c) in row.iter_mut().zip(w).zip(pos).zip(&self.token_type) {
                        *o = a + b + c;
                    }
                    kernels::layer_norm(row, &self.embed_norm.0, &self.embed_norm.1, self.eps);
                });
            }
        }
        Ok(out)
    }
}

/// The storage of a contiguous f32 tensor.
fn slice<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("the encoder's ops take contiguous tensors".into()))?;
    Ok(&storage.as_slice::<f32>()?[start..end])
}

fn rows(layout: &Layout) -> candle_core::Result<(usize, usize)> {
    layout.shape().dims2()
}

/// Self-attention over packed sequences: `tokens × 3·hidden` (queries, keys, values, no biases
/// yet) → `tokens × hidden`.
struct Attention<'a> {
    bias: &'a [f32],
    lengths: &'a [usize],
    heads: usize,
}

impl CustomOp1 for Attention<'_> {
    fn name(&self) -> &'static str {
        "packed-attention"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let qkv = slice(storage, layout)?;
        let (tokens, width) = rows(layout)?;
        let hidden = width / 3;
        if width != self.bias.len() || self.lengths.iter().sum::<usize>() != tokens {
            return Err(candle_core::Error::Msg("attention: shapes do not match the batch".into()));
        }
        let mut ctx = vec![0.0f32; tokens * hidden];
        let mut parts = Vec::with_capacity(self.lengths.len());
        let (mut q_rest, mut c_rest) = (qkv, &mut ctx[..]);
        for &len in self.lengths {
            let (q, q_tail) = q_rest.split_at(len * width);
            let (c, c_tail) = std::mem::take(&mut c_rest).split_at_mut(len * hidden);
            parts.push((q, c));
            (q_rest, c_rest) = (q_tail, c_tail);
        }
        parts.into_par_iter().for_each_init(AttentionScratch::default, |scratch, (q, c)| {
            simd(|| kernels::attention(q, self.bias, c, self.heads, scratch));
        });
        Ok((CpuStorage::F32(ctx), Shape::from((tokens, hidden))))
    }
}

/// `gelu(x + bias)`.
struct BiasGelu<'a> {
    bias: &'a [f32],
}

impl CustomOp1 for BiasGelu<'_> {
    fn name(&self) -> &'static str {
        "bias-gelu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let mut out = slice(storage, layout)?.to_vec();
        let (n, d) = rows(layout)?;
        if d != self.bias.len() {
            return Err(candle_core::Error::Msg("bias-gelu: width does not match the bias".into()));
        }
        out.par_chunks_mut(d * ROWS_PER_TASK).for_each(|chunk| simd(|| kernels::bias_gelu(chunk, self.bias)));
        Ok((CpuStorage::F32(out), Shape::from((n, d))))
    }
}

/// `layer_norm(x + bias + residual)`.
struct AddNorm<'a> {
    bias: &'a [f32],
    norm: &'a (Vec<f32>, Vec<f32>),
    eps: f32,
}

impl CustomOp2 for AddNorm<'_> {
    fn name(&self) -> &'static str {
        "bias-residual-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, residual) = (slice(s1, l1)?, slice(s2, l2)?);
        let (n, d) = rows(l1)?;
        if rows(l2)? != (n, d) || d != self.bias.len() {
            return Err(candle_core::Error::Msg("bias-residual-norm: shapes do not match".into()));
        }
        let mut out = vec![0.0f32; n * d];
        let chunk = d * ROWS_PER_TASK;
        out.par_chunks_mut(chunk).zip(x.par_chunks(chunk)).zip(residual.par_chunks(chunk)).for_each(|((o, x), r)| {
            simd(|| kernels::add_bias_residual_norm(x, r, o, self.bias, &self.norm.0, &self.norm.1, self.eps))
        });
        Ok((CpuStorage::F32(out), Shape::from((n, d))))
    }
}
