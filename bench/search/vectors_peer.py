"""The peer of `orbas bench vectors`: faiss's HNSW (IndexHNSWFlat) on the same vectors and queries.

Same graph parameters as ours (M = 16 links per node, 32 on the base layer; efConstruction = 200;
efSearch = 64), inner product on unit vectors (= cosine). Builds on every core, answers the queries one
at a time on one thread, saves the index to a file, reads it back and answers again; recall@k against
the exact neighbours the Rust side computed. Prints one JSON object.

usage: vectors_peer.py VECTORS N QUERIES NQ TRUTH K DIM THREADS WORKDIR
"""

import json
import os
import sys
import time

import faiss
import numpy as np


def main() -> None:
    vectors, n, queries, nq, truth, k, dim, threads, work = sys.argv[1:10]
    n, nq, k, dim, threads = int(n), int(nq), int(k), int(dim), int(threads)
    x = np.fromfile(vectors, dtype="<f4").reshape(n, dim)
    q = np.fromfile(queries, dtype="<f4").reshape(nq, dim)
    exact = np.fromfile(truth, dtype="<u4").reshape(nq, k)

    faiss.omp_set_num_threads(threads)
    index = faiss.IndexHNSWFlat(dim, 16, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 200
    started = time.perf_counter()
    index.add(x)
    build = time.perf_counter() - started

    def answer(ix):
        ix.hnsw.efSearch = 64
        faiss.omp_set_num_threads(1)
        started = time.perf_counter()
        found = [ix.search(q[i : i + 1], k)[1][0] for i in range(nq)]
        seconds = time.perf_counter() - started
        recall = float(np.mean([len(set(f.tolist()) & set(e.tolist())) / k for f, e in zip(found, exact)]))
        return seconds, recall

    seconds, recall = answer(index)
    path = os.path.join(work, "faiss.index")
    started = time.perf_counter()
    faiss.write_index(index, path)
    with open(path, "rb") as f:
        os.fsync(f.fileno())
    save = time.perf_counter() - started
    del index
    started = time.perf_counter()
    loaded = faiss.read_index(path)
    load = time.perf_counter() - started
    seconds_loaded, recall_loaded = answer(loaded)
    print(
        json.dumps(
            {
                "version": faiss.__version__,
                "build_s": build,
                "save_s": save,
                "load_s": load,
                "bytes": os.path.getsize(path),
                "query_s": seconds,
                "recall": recall,
                "query_loaded_s": seconds_loaded,
                "recall_loaded": recall_loaded,
            }
        )
    )


if __name__ == "__main__":
    main()
