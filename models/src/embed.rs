//! Sentence embeddings: a BERT encoder (all-MiniLM-L6-v2, 384 dimensions) run on the CPU with candle,
//! loaded from local files — the model is configuration, never downloaded at run time
//! (`scripts/setup.sh` unpacks it into `$ORBAS_MODELS/all-MiniLM-L6-v2`).
//!
//! An [`Embedder`] turns texts into L2-normalised vectors the way sentence-transformers does for this
//! model: WordPiece tokens (truncated to [`MAX_TOKENS`]), the encoder's last hidden states averaged
//! over the real tokens (attention-masked mean pooling), then scaled to unit length — so the dot
//! product of two embeddings is their cosine similarity. Texts are embedded in batches of similar
//! length; the output keeps the input order. Used by sentiment here and by search.
//!
//! The forward pass is ours ([`encoder`]): packed sequences without padding and fused candle ops
//! (`orbas bench embed` measures it against sentence-transformers on the same weights).

mod encoder;
mod kernels;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config;
use tokenizers::{Tokenizer, TruncationParams, TruncationStrategy};
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
    encoder: encoder::Encoder,
    tokenizer: Tokenizer,
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
        // Sequences are packed, never padded.
        tokenizer.with_padding(None);
        let vb = VarBuilder::from_buffered_safetensors(read("model.safetensors")?, DType::F32, &Device::Cpu)
            .map_err(model_err(dir, "reading model.safetensors"))?;
        let encoder = encoder::Encoder::load(vb, &config).map_err(model_err(dir, "building the encoder"))?;
        info!(dir = %dir.display(), dim = config.hidden_size, "sentence encoder loaded");
        Ok(Embedder { encoder, tokenizer, dim: config.hidden_size, dir: dir.to_path_buf() })
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

    /// One batch through the encoder, mean-pooled over each text's tokens and normalised.
    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|source| Error::Tokenizer { what: "tokenizing".into(), source })?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        let mut pooled = self.encoder.pooled(&ids).map_err(model_err(&self.dir, "running the encoder"))?;
        for v in &mut pooled {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            v.iter_mut().for_each(|x| *x /= norm);
        }
        Ok(pooled)
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

    /// candle-transformers' BERT on padded batches, pooled the way sentence-transformers does: the
    /// reference our packed encoder must reproduce.
    struct Reference {
        model: candle_transformers::models::bert::BertModel,
        tokenizer: Tokenizer,
    }

    impl Reference {
        fn load(dir: &Path) -> Reference {
            use candle_transformers::models::bert::BertModel;
            use tokenizers::{PaddingParams, PaddingStrategy};

            let read = |name: &str| std::fs::read(dir.join(name)).expect("model file");
            let config: Config = serde_json::from_slice(&read("config.json")).expect("config");
            let mut tokenizer = Tokenizer::from_bytes(read("tokenizer.json")).expect("tokenizer");
            tokenizer
                .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..TruncationParams::default() }))
                .expect("truncation");
            tokenizer.with_padding(Some(PaddingParams {
                strategy: PaddingStrategy::BatchLongest,
                pad_id: config.pad_token_id as u32,
                ..PaddingParams::default()
            }));
            let vb = VarBuilder::from_buffered_safetensors(read("model.safetensors"), DType::F32, &Device::Cpu)
                .expect("weights");
            Reference { model: BertModel::load(vb, &config).expect("model"), tokenizer }
        }

        fn embed(&self, texts: &[&str]) -> Vec<Vec<f32>> {
            use candle_core::Tensor;

            let enc = self.tokenizer.encode_batch(texts.to_vec(), true).expect("tokenize");
            let width = enc[0].get_ids().len();
            let ids: Vec<u32> = enc.iter().flat_map(|e| e.get_ids().to_vec()).collect();
            let mask: Vec<u32> = enc.iter().flat_map(|e| e.get_attention_mask().to_vec()).collect();
            let ids = Tensor::from_vec(ids, (texts.len(), width), &Device::Cpu).expect("ids");
            let mask = Tensor::from_vec(mask, (texts.len(), width), &Device::Cpu).expect("mask");
            let types = ids.zeros_like().expect("types");
            let hidden = self.model.forward(&ids, &types, Some(&mask)).expect("forward");
            let mask = mask.to_dtype(DType::F32).and_then(|m| m.unsqueeze(2)).expect("mask");
            let mean = hidden
                .broadcast_mul(&mask)
                .and_then(|h| h.sum(1))
                .and_then(|s| s.broadcast_div(&mask.sum(1).expect("counts")))
                .and_then(|m| m.to_vec2::<f32>())
                .expect("pool");
            mean.into_iter()
                .map(|v| {
                    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                    v.into_iter().map(|x| x / n).collect()
                })
                .collect()
        }
    }

    #[test]
    fn the_packed_encoder_matches_the_reference_model() {
        let Some(dir) = model_dir(None).filter(|d| d.join("model.safetensors").is_file()) else {
            eprintln!("SKIPPED: no {MODEL_NAME} under $ORBAS_MODELS — run scripts/setup.sh");
            return;
        };
        // Lengths from one token to past the 256-token cut, so the batch pads heavily on the
        // reference side and truncation is exercised.
        let long = "renewal pricing escalation with the procurement team ".repeat(60);
        let texts = [
            "Hi",
            "The invoice shows the wrong number of seats.",
            "Customer is frustrated: the dashboard export keeps timing out since Monday, third ticket this week.",
            "",
            long.as_str(),
            "Ümlaut café — naïve résumé, 東京 office wants a demo.",
        ];
        let ours = Embedder::load(&dir).expect("load").embed(&texts).expect("embed");
        let theirs = Reference::load(&dir).embed(&texts);
        for ((text, a), b) in texts.iter().zip(&ours).zip(&theirs) {
            let c = cosine(a, b);
            assert!(c > 1.0 - 1e-6, "{:?}: cosine {c}", &text[..text.len().min(30)]);
            let max = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
            assert!(max < 1e-4, "{:?}: max difference {max}", &text[..text.len().min(30)]);
        }
    }

    /// Throughput of the encoder alone (`cargo test -p orbas-models --lib embed -- --ignored
    /// --nocapture`); `orbas bench embed` is the comparison with the peers.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn encoder_throughput() {
        let Some(dir) = model_dir(None).filter(|d| d.join("model.safetensors").is_file()) else {
            eprintln!("SKIPPED: no {MODEL_NAME} under $ORBAS_MODELS — run scripts/setup.sh");
            return;
        };
        let words = ["customer", "invoice", "renewal", "meeting", "pricing", "seats", "outage", "thanks", "the", "a"];
        let mut state = 42u64;
        let mut next = |n: u64| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) % n
        };
        let texts: Vec<String> = (0..500)
            .map(|_| {
                let len = if next(10) < 7 { 5 + next(21) } else { 26 + next(95) };
                (0..len).map(|_| words[next(words.len() as u64) as usize]).collect::<Vec<_>>().join(" ")
            })
            .collect();
        let e = Embedder::load(&dir).expect("load");
        e.embed(&texts[..32]).expect("warm up");
        let started = std::time::Instant::now();
        e.embed(&texts).expect("embed");
        let secs = started.elapsed().as_secs_f64();
        eprintln!("ours: {} sentences in {secs:.2} s: {:.1} sentences/s", texts.len(), texts.len() as f64 / secs);
        // candle-transformers' BERT on padded batches of the same length-sorted texts.
        let mut sorted: Vec<&str> = texts.iter().map(String::as_str).collect();
        sorted.sort_by_key(|t| t.len());
        let reference = Reference::load(&dir);
        let started = std::time::Instant::now();
        for chunk in sorted.chunks(BATCH) {
            reference.embed(chunk);
        }
        let secs = started.elapsed().as_secs_f64();
        eprintln!("reference: {secs:.2} s: {:.1} sentences/s", texts.len() as f64 / secs);
    }
}
