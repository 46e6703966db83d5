"""Choose the fine-tuned encoder's head: calibration, codebook rule features and thresholds.

Issue 12, candidates 2 + 3. ``benchmarks/finetune_encoder.py`` leaves in its model folder the ONNX
encoder and the out-of-fold logits of every training row (``oof.npz``: logits and labels, no
text). This script fits, on those out-of-fold logits only, each way of turning them into tags:

- ``platt``: a Platt calibration per theme, thresholds chosen on every training row (what
  ``finetune_encoder.py`` ships by itself);
- ``platt, real thresholds``: the same calibration, each core theme's threshold chosen on the
  real training sentences alone (real text decides; a theme with no real positive keeps the
  all-rows threshold);
- ``rules``: a logistic regression per theme over the encoder's logit and two codebook features,
  the theme's keyword hit and its seed-pattern hit (``themes.baselines``), so a phrase the codebook
  names can lift a passage and a keyword without the failing cannot;
- ``rules, real thresholds``: both.

Every variant is then scored once, with the ONNX run-time path, on the written held-out documents,
the real held-out reports and the seed sentences (never trained on, never used to choose), beside
the keyword baseline on the same sentences. ``--write-head`` writes the chosen variant into the
model folder's ``head.json``.

Run after the fine-tune (the ``train`` extra is not needed here: onnxruntime and tokenizers are)::

    nice python benchmarks/encoder_head.py --model /tmp/themes-minilm-finetuned
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parent))
from classifier import SEED, eval_sets, load_data, score_row  # benchmarks/ is not a package

from themes.baselines import KeywordBaseline, PatternBaseline
from themes.config import CORE_THEMES
from themes.encoder import HEAD_FILE, OnnxThemeClassifier, rule_features
from themes.evaluate import best_thresholds, label_matrix
from themes.tables import markdown_table


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def fit_platt(y: np.ndarray, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per theme ``a, b`` of ``sigmoid(a * logit + b)``, fitted on the rows labelled for it."""
    a, b = np.ones(y.shape[1]), np.zeros(y.shape[1])
    for j in range(y.shape[1]):
        known = y[:, j] >= 0
        if len(np.unique(y[known, j])) == 2:
            lr = LogisticRegression(C=100.0).fit(logits[known, j:j + 1], y[known, j])
            a[j], b[j] = float(lr.coef_[0, 0]), float(lr.intercept_[0])
    return a, b


def fit_rules(y: np.ndarray, logits: np.ndarray, rules: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per theme ``a, b, w`` of ``sigmoid(a * logit + b + w . rules)`` (rules: n x themes x 2)."""
    a, b, w = np.ones(y.shape[1]), np.zeros(y.shape[1]), np.zeros((y.shape[1], rules.shape[2]))
    for j in range(y.shape[1]):
        known = y[:, j] >= 0
        if len(np.unique(y[known, j])) < 2:
            continue
        x = np.column_stack([logits[known, j], rules[known, j, :]])
        lr = LogisticRegression(C=1.0).fit(x, y[known, j])
        a[j], b[j], w[j] = float(lr.coef_[0, 0]), float(lr.intercept_[0]), lr.coef_[0, 1:]
    return a, b, w


def real_thresholds(y: np.ndarray, proba: np.ndarray, real: np.ndarray, themes: list[str],
                    fallback: np.ndarray) -> np.ndarray:
    """Each core theme's threshold chosen on the real rows; other themes (and a core theme with
    no real positive) keep ``fallback``."""
    out = fallback.copy()
    chosen = best_thresholds(y[real], proba[real])
    for j, theme in enumerate(themes):
        if theme in CORE_THEMES and (y[real, j] == 1).sum() > 0:
            out[j] = chosen[j]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="folder written by finetune_encoder.py")
    parser.add_argument("--model-file", default="model.int8.onnx", help="ONNX file scored (int8 or fp32)")
    parser.add_argument("--limit", type=int, default=0, help="as finetune_encoder.py --limit (smoke test)")
    parser.add_argument("--write-head", default="", help="write this variant into head.json")
    parser.add_argument("--out", type=Path, default=None, help="write encoder_head.json/.md here")
    args = parser.parse_args(argv)

    oof = np.load(args.model / "oof.npz")
    themes = [str(t) for t in oof["themes"]]
    data = load_data(True)
    frame = data.train
    if args.limit:
        frame = frame.sample(n=min(args.limit, len(frame)), random_state=SEED).reset_index(drop=True)
    if list(frame["doc"]) != [str(d) for d in oof["doc"]]:
        raise SystemExit("oof.npz rows do not match the training rows: different labels or --limit")
    y, logits, real = oof["y"], oof["logits"], np.asarray(oof["core_only"], dtype=bool)
    keywords = KeywordBaseline(themes).fit()
    patterns = PatternBaseline(themes).fit()
    rules = rule_features(keywords, patterns, list(frame["text"]))

    platt_a, platt_b = fit_platt(y, logits)
    platt_p = sigmoid(platt_a * logits + platt_b)
    rule_a, rule_b, rule_w = fit_rules(y, logits, rules)
    rule_p = sigmoid(rule_a * logits + rule_b + np.einsum("njf,jf->nj", rules, rule_w))
    variants = {}
    for name, (a, b, w, proba) in {"platt": (platt_a, platt_b, None, platt_p),
                                   "rules": (rule_a, rule_b, rule_w, rule_p)}.items():
        everywhere = best_thresholds(y, proba)
        variants[name] = (a, b, w, everywhere)
        variants[f"{name}, real thresholds"] = (a, b, w, real_thresholds(y, proba, real, themes, everywhere))

    clf = OnnxThemeClassifier.load(args.model, threads=1, model_file=args.model_file)
    core_cols = [themes.index(t) for t in CORE_THEMES]
    kw_core = KeywordBaseline(list(CORE_THEMES)).fit()
    rows = []
    for split_name, part, core_only in eval_sets(data):
        texts = list(part["text"])
        kinds = list(part["kind"]) if part["kind"].notna().any() else None
        part_logits = clf.decision_function(texts).astype(np.float64)
        part_rules = rule_features(keywords, patterns, texts)
        y_core = label_matrix(part["labels"], CORE_THEMES)
        row, _ = score_row("keywords", split_name, y_core, kw_core.predict(texts), list(CORE_THEMES), kinds)
        rows.append(row)
        for name, (a, b, w, thresholds) in variants.items():
            z = a * part_logits + b + (np.einsum("njf,jf->nj", part_rules, w) if w is not None else 0.0)
            pred = (sigmoid(z) >= thresholds).astype(int)
            row, _ = score_row(f"encoder + {name}", split_name, y_core, pred[:, core_cols], list(CORE_THEMES), kinds)
            rows.append(row)
    table = pd.DataFrame(rows)
    print(markdown_table(table))
    for name, (_, _, w, thresholds) in variants.items():
        print(name, {t: round(float(thresholds[themes.index(t)]), 3) for t in CORE_THEMES},
              "" if w is None else {t: np.round(w[themes.index(t)], 2).tolist() for t in CORE_THEMES})
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "encoder_head.json").write_text(table.to_json(orient="records", indent=1) + "\n")
        (args.out / "encoder_head.md").write_text(markdown_table(table) + "\n")
    if args.write_head:
        a, b, w, thresholds = variants[args.write_head]
        path = args.model / HEAD_FILE
        head = json.loads(path.read_text(encoding="utf-8"))
        head.update({"calibration_a": a.tolist(), "calibration_b": b.tolist(), "thresholds": thresholds.tolist()})
        head["rule_weights"] = None if w is None else w.tolist()
        head.setdefault("card", {})["head"] = args.write_head
        path.write_text(json.dumps(head) + "\n", encoding="utf-8")
        print(f"wrote {args.write_head} into {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
