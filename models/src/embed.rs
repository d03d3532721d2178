//! Sentence embeddings: a BERT encoder (all-MiniLM-L6-v2, 384 dimensions) run on the CPU with candle,
//! loaded from local files — the model is configuration, never downloaded at run time
//! (`scripts/setup.sh` unpacks it into `$ORBAS_MODELS/all-MiniLM-L6-v2`).
//!
//! An [`Embedder`] turns texts into L2-normalised vectors the way sentence-transformers does for this
//! model: WordPiece tokens (truncated to [`MAX_TOKENS`]), the encoder's last hidden states averaged
//! over the real tokens (attention-masked mean pooling), then scaled to unit length — so the dot
//! product of two embeddings is their cosine similarity. Texts are embedded in batches of similar
//! length (less padding); the output keeps the input order. Used by sentiment here and by search.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams, TruncationStrategy};
use tracing::{debug, info};

use crate::error::{Error, Result};

/// The model's directory name under the models root.
pub const MODEL_NAME: &str = "all-MiniLM-L6-v2";
/// Longer texts are cut to this many tokens (sentence-transformers uses 256 for this model).
pub const MAX_TOKENS: usize = 256;
/// Texts per forward pass.
const BATCH: usize = 32;
/// The files a model directory must hold.
const FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// Where models live unless configured otherwise: `$ORBAS_MODELS`, else `~/.cache/orbas/models`
/// (what `scripts/env.sh` exports and `scripts/setup.sh` fills).
pub fn default_models_root() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("ORBAS_MODELS").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/orbas/models"))
}

/// The embedding model's directory under `root` (or under [`default_models_root`]).
pub fn model_dir(root: Option<&Path>) -> Option<PathBuf> {
    root.map(Path::to_path_buf).or_else(default_models_root).map(|r| r.join(MODEL_NAME))
}

/// A loaded sentence encoder. Cheap to share behind an `Arc`; `embed` takes `&self`.
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    dim: usize,
    dir: PathBuf,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder").field("dir", &self.dir).field("dim", &self.dim).finish_non_exhaustive()
    }
}

fn model_err(dir: &Path, what: &str) -> impl FnOnce(candle_core::Error) -> Error {
    let dir = dir.to_path_buf();
    let what = what.to_owned();
    move |source| Error::Model { dir, what, source: Box::new(source) }
}

impl Embedder {
    /// Loads the model from `dir` (config.json, tokenizer.json, model.safetensors). The weights are
    /// read into memory (no mmap: the workspace forbids `unsafe`).
    pub fn load(dir: &Path) -> Result<Self> {
        let missing: Vec<&str> = FILES.iter().copied().filter(|f| !dir.join(f).is_file()).collect();
        if !missing.is_empty() {
            return Err(Error::ModelMissing { dir: dir.to_path_buf(), files: missing.join(", ") });
        }
        let read =
            |name: &str| std::fs::read(dir.join(name)).map_err(|source| Error::Io { path: dir.join(name), source });
        let config: Config = serde_json::from_slice(&read("config.json")?)
            .map_err(|source| Error::Json { path: dir.join("config.json"), source })?;
        let mut tokenizer = Tokenizer::from_bytes(read("tokenizer.json")?)
            .map_err(|source| Error::Tokenizer { what: "loading tokenizer.json".into(), source })?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                strategy: TruncationStrategy::LongestFirst,
                ..TruncationParams::default()
            }))
            .map_err(|source| Error::Tokenizer { what: "setting truncation".into(), source })?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            pad_id: config.pad_token_id as u32,
            ..PaddingParams::default()
        }));
        let device = Device::Cpu;
        let vb = VarBuilder::from_buffered_safetensors(read("model.safetensors")?, DType::F32, &device)
            .map_err(model_err(dir, "reading model.safetensors"))?;
        let model = BertModel::load(vb, &config).map_err(model_err(dir, "building the encoder"))?;
        info!(dir = %dir.display(), dim = config.hidden_size, "sentence encoder loaded");
        Ok(Embedder { model, tokenizer, device, dim: config.hidden_size, dir: dir.to_path_buf() })
    }

    /// The embedding dimension (384 for all-MiniLM-L6-v2).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The directory the model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Unit-length embeddings of `texts`, in input order. CPU-bound: call it off the async executor.
    pub fn embed<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>> {
        // Batches of similar length waste less work on padding.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].as_ref().len());
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(BATCH) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i].as_ref()).collect();
            for (&i, v) in chunk.iter().zip(self.embed_batch(&batch)?) {
                out[i] = v;
            }
        }
        debug!(texts = texts.len(), "embedded");
        Ok(out)
    }

    /// One padded batch through the encoder, mean-pooled over the attention mask and normalised.
    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|source| Error::Tokenizer { what: "tokenizing".into(), source })?;
        let width = encodings.first().map_or(0, |e| e.get_ids().len());
        let (mut ids, mut mask) = (Vec::with_capacity(texts.len() * width), Vec::with_capacity(texts.len() * width));
        for e in &encodings {
            ids.extend_from_slice(e.get_ids());
            mask.extend_from_slice(e.get_attention_mask());
        }
        let err = model_err(&self.dir, "running the encoder");
        self.forward(texts.len(), width, ids, mask).map_err(err)
    }

    fn forward(&self, rows: usize, width: usize, ids: Vec<u32>, mask: Vec<u32>) -> candle_core::Result<Vec<Vec<f32>>> {
        let ids = Tensor::from_vec(ids, (rows, width), &self.device)?;
        let mask = Tensor::from_vec(mask, (rows, width), &self.device)?;
        let types = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?; // (rows, width, dim)
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (rows, width, 1)
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?; // (rows, dim)
        let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?; // (rows, 1)
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        mean.broadcast_div(&norm)?.to_vec2::<f32>()
    }
}

/// Cosine similarity of two vectors (the dot product for unit-length embeddings).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 { 0.0 } else { dot / (na * nb) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_model_directory_says_what_to_do() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = Embedder::load(dir.path()).expect_err("no model there");
        let msg = err.to_string();
        assert!(msg.contains("model.safetensors") && msg.contains("scripts/setup.sh"), "{msg}");
    }

    #[test]
    fn cosine_of_known_vectors() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 2.0]).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }

    /// The real model; present after `scripts/setup.sh` (skips with a message otherwise).
    #[test]
    fn similar_sentences_are_closer_than_unrelated_ones() {
        let Some(dir) = model_dir(None).filter(|d| d.join("model.safetensors").is_file()) else {
            eprintln!("SKIPPED: no {MODEL_NAME} under $ORBAS_MODELS — run scripts/setup.sh");
            return;
        };
        let e = Embedder::load(&dir).expect("load the model");
        let v = e
            .embed(&[
                "The invoice shows the wrong number of seats.",
                "We were billed for more licences than we have.",
                "The weather in Lisbon is sunny today.",
                "",
            ])
            .expect("embed");
        assert_eq!(v.len(), 4);
        assert!(v.iter().all(|x| x.len() == 384));
        let norm: f32 = v[0].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "unit length: {norm}");
        let (similar, unrelated) = (cosine(&v[0], &v[1]), cosine(&v[0], &v[2]));
        assert!(similar > unrelated + 0.2, "similar {similar} vs unrelated {unrelated}");
        // Batch composition does not change a text's embedding (padding is masked out).
        let alone = e.embed(&["We were billed for more licences than we have."]).expect("embed");
        assert!(cosine(&alone[0], &v[1]) > 0.9999);
    }
}
