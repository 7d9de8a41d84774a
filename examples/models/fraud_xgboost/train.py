#!/usr/bin/python3
"""Trains the fraud example: a gradient-boosted tree model (XGBoost, binary:logistic) on the
generated card transactions (generate_data.py), split by time: the first 80% of the window to
train (its last sixth held out for early stopping), the last 20% to test, as a model is used in
production on transactions that come after its training data.

Writes, next to this script: model.ubj (the booster, trimmed to its best iteration),
features.json (the ordered input feature names), metrics.json (test AUC, PR-AUC, log loss, fraud
rates, sizes) and reference/input.features.npy + reference/output.probability.npy (64 test rows,
float32, and the probabilities booster.inplace_predict gives for them). The dataset itself is
never written. Needs python3-xgboost and python3-numpy (Debian); single-threaded and seeded, so
a rerun with the same library versions gives the same model byte for byte.

    /usr/bin/python3 train.py
"""
import json
import os

import numpy as np
import xgboost as xgb

import generate_data

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20261126
N_REFERENCE = 64

PARAMS = {
    "objective": "binary:logistic",
    "eval_metric": ["logloss", "aucpr"],
    "tree_method": "hist",
    "max_depth": 4,
    "eta": 0.1,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 2,
    "lambda": 1.0,
    "seed": SEED,
    "nthread": 1,
}


def roc_auc(y, p):
    """Area under the ROC curve (Mann-Whitney U, ties counted as half)."""
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p), dtype=np.float64)
    sp = p[order]
    i = 0
    while i < len(sp):  # average ranks over ties
        j = i
        while j + 1 < len(sp) and sp[j + 1] == sp[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1
        i = j + 1
    pos = y == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(y, p):
    """PR-AUC as average precision: the mean of the precision at each true positive's rank."""
    order = np.argsort(-p, kind="mergesort")
    ys = y[order]
    tp = np.cumsum(ys)
    precision = tp / np.arange(1, len(ys) + 1)
    return float((precision * ys).sum() / max(1, ys.sum()))


def log_loss(y, p):
    p = np.clip(p.astype(np.float64), 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def recall_at_fpr(y, p, fpr):
    """Share of fraud caught at the threshold that flags `fpr` of legitimate transactions."""
    thr = np.quantile(p[y == 0], 1 - fpr)
    return float((p[y == 1] > thr).mean())


def main():
    X, y, _, _ = generate_data.generate(generate_data.SEED)
    n = len(y)
    n_train = int(n * 0.8)
    n_fit = int(n_train * 5 / 6)
    dfit = xgb.DMatrix(X[:n_fit], label=y[:n_fit], feature_names=generate_data.FEATURES)
    dval = xgb.DMatrix(X[n_fit:n_train], label=y[n_fit:n_train],
                       feature_names=generate_data.FEATURES)
    booster = xgb.train(PARAMS, dfit, num_boost_round=400, evals=[(dval, "validation")],
                        early_stopping_rounds=40, verbose_eval=False)
    best = booster.best_iteration + 1
    booster = booster[:best]  # keep only the trees up to the best iteration

    path = os.path.join(HERE, "model.ubj")
    booster.save_model(path)
    model = xgb.Booster(model_file=path)  # what a server loads

    X_test, y_test = X[n_train:], y[n_train:].astype(np.float64)
    p = model.inplace_predict(X_test).astype(np.float32)
    assert np.array_equal(p, booster.inplace_predict(X_test).astype(np.float32))
    metrics = {
        "test_auc": round(roc_auc(y_test, p), 6),
        "test_pr_auc": round(average_precision(y_test, p), 6),
        "test_logloss": round(log_loss(y_test, p), 6),
        "test_recall_at_1pct_fpr": round(recall_at_fpr(y_test, p, 0.01), 6),
        "fraud_rate": round(float(y.mean()), 6),
        "test_fraud_rate": round(float(y_test.mean()), 6),
        "rows": n,
        "train_rows": n_train,
        "test_rows": n - n_train,
        "n_features": len(generate_data.FEATURES),
        "trees": best,
        "model_bytes": os.path.getsize(path),
        "xgboost_version": xgb.__version__,
    }
    assert metrics["model_bytes"] < 1 << 20, "examples must stay under 1 MiB"

    # Reference rows: a seeded draw of test rows, a quarter of them fraud, in time order.
    rng = np.random.default_rng(SEED)
    fraud_idx = np.flatnonzero(y_test == 1)
    legit_idx = np.flatnonzero(y_test == 0)
    pick = np.sort(np.concatenate([
        rng.choice(fraud_idx, N_REFERENCE // 4, replace=False),
        rng.choice(legit_idx, N_REFERENCE - N_REFERENCE // 4, replace=False)]))
    ref_in = np.ascontiguousarray(X_test[pick], dtype=np.float32)
    ref_out = model.inplace_predict(ref_in).astype(np.float32)
    ref = os.path.join(HERE, "reference")
    os.makedirs(ref, exist_ok=True)
    np.save(os.path.join(ref, "input.features.npy"), ref_in)
    np.save(os.path.join(ref, "output.probability.npy"), ref_out)

    with open(os.path.join(HERE, "features.json"), "w") as f:
        json.dump(generate_data.FEATURES, f, indent=2)
        f.write("\n")
    with open(os.path.join(HERE, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"fraud_xgboost: {metrics}")


if __name__ == "__main__":
    main()
