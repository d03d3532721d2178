"""The peers of `orbas models eval`: scikit-learn trained on the exact rows Orbas exported.

Usage: sklearn_eval.py DIR — reads DIR/train.csv and DIR/test.csv (id,cutoff,label,features…),
prints one JSON object: per model, ROC AUC, log-loss, Brier score and expected calibration error
(10 equal-width bins, the same definition as Orbas'), and fit / score seconds.
"""

import csv
import json
import sys
import time

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def load(path):
    with open(path) as f:
        rows = list(csv.reader(f))
    body = rows[1:]
    y = np.array([int(r[2]) for r in body])
    x = np.array([[float(v) for v in r[3:]] for r in body]).reshape(len(body), len(rows[0]) - 3)
    return x, y


def ece(p, y, bins=10):
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += abs(p[m].sum() - y[m].sum())
    return total / len(p)


def main():
    d = sys.argv[1]
    xtr, ytr = load(f"{d}/train.csv")
    xte, yte = load(f"{d}/test.csv")
    models = {
        "LogisticRegression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
        "HistGradientBoosting": HistGradientBoostingClassifier(random_state=0),
    }
    out = {}
    for name, model in models.items():
        t0 = time.perf_counter()
        model.fit(xtr, ytr)
        t1 = time.perf_counter()
        p = model.predict_proba(xte)[:, 1]
        t2 = time.perf_counter()
        both = len(set(yte.tolist())) == 2
        out[name] = {
            "auc": float(roc_auc_score(yte, p)) if both else None,
            "log_loss": float(log_loss(yte, p, labels=[0, 1])),
            "brier": float(brier_score_loss(yte, p)),
            "calibration_error": float(ece(p, yte)),
            "fit_s": t1 - t0,
            "score_s": t2 - t1,
        }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
