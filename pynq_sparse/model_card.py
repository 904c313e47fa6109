"""Measure the shipped model and write its model card (docs/model_card.md).

Every figure comes from running the integer model (and the dense baseline via
ONNX Runtime) on the real dev clips now; nothing is copied from training logs
except the training configuration.

Usage::

    python -m pynq_sparse.model_card --data ../shared/data/gsc_v2_dev --out docs/model_card.md
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from .backends import get_backend
from .dataset import load_split, read_audio
from .dense_baseline import DENSE_FP16_PATH, dense_logits
from .frontend import FastFrontend
from .golden import golden_trace, predict
from .model_file import DEFAULT_MODEL_PATH, SparseModel, load_model

NOISE_LEVELS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
COMMAND = "python -m pynq_sparse.model_card --data ../shared/data/gsc_v2_dev --out docs/model_card.md"


def sparse_scores(model: SparseModel, words: np.ndarray) -> np.ndarray:
    """Golden-exact scores through the fast CPU backend (tested bit-exact against golden.py)."""
    return get_backend("auto", model).scores(words)


def activation_sparsity(model: SparseModel, words: np.ndarray) -> list[float]:
    """Mean share of zero activations after each k-WTA layer."""
    zeros = np.zeros(len(model.layers) - 1)
    for w in words:
        acts = golden_trace(model, w).activations[1:]
        zeros += [1.0 - np.count_nonzero(a) / a.size for a in acts]
    return (zeros / len(words)).tolist()


def measure(data: str, model: SparseModel, seed: int = 0) -> dict[str, Any]:
    fe = FastFrontend()
    examples = load_split(data, "testing")
    labels = np.array([e.label for e in examples])
    audio = read_audio(examples)
    words = fe.words(audio)
    pred = predict(sparse_scores(model, words))
    res: dict[str, Any] = {"n_test": len(labels), "sparse_acc": float(np.mean(pred == labels))}
    res["per_class"] = {model.labels[c]: {"n": int(np.sum(labels == c)), "sparse": float(np.mean(pred[labels == c] == c))}
                        for c in range(model.n_classes)}
    has_dense = DENSE_FP16_PATH.is_file()
    if has_dense:
        dpred = np.argmax(dense_logits(words), 1)
        res["dense_acc"] = float(np.mean(dpred == labels))
        for c in range(model.n_classes):
            res["per_class"][model.labels[c]]["dense"] = float(np.mean(dpred[labels == c] == c))
    res["activation_sparsity"] = activation_sparsity(model, words)
    rng = np.random.default_rng(seed)
    noise = []
    for a in NOISE_LEVELS:
        noisy = (audio * (1 - a) + a * rng.uniform(-1, 1, audio.shape)).astype(np.float32)
        nw = fe.words(noisy)
        row = {"a": a, "sparse": float(np.mean(predict(sparse_scores(model, nw)) == labels))}
        if has_dense:
            row["dense"] = float(np.mean(np.argmax(dense_logits(nw), 1) == labels))
        noise.append(row)
    res["noise"] = noise
    return res


def render(model: SparseModel, res: dict[str, Any], train_report: dict[str, Any] | None) -> str:
    dense = "dense_acc" in res
    L = ["# Model card: gsc_sparse_v1", "",
         f"Generated {time.strftime('%Y-%m-%d')} by `{COMMAND}` (all figures below measured by that command).", "",
         "**Task.** 12-class keyword spotting (yes no up down left right on off stop go, silence, unknown) on "
         "1-second 16 kHz clips. Data: Speech Commands v0.02 (Warden 2018, arXiv:1804.03209, CC-BY-4.0), the "
         "speaker-disjoint `gsc_v2_dev` subset. Figures are on its **test split** "
         f"({res['n_test']} clips of speakers never seen in training).", "",
         "**Model.** Whitepaper Table 1 CNN with complementary-sparse int8 weights and k-WTA activations; integer "
         "arithmetic as in [golden_model.md](golden_model.md). File `pynq_sparse/data/models/gsc_sparse_v1.pskw`, "
         f"model_id `{model.model_id:#010x}`.", "",
         "## Accuracy (dev test split)", "",
         "| model | accuracy |", "|---|---|",
         f"| sparse int8 (golden integer model) | {res['sparse_acc']:.4f} |"]
    if dense:
        L.append(f"| dense fp32 baseline, same architecture and data (ONNX Runtime; `gsc_dense_fp16.onnx`, "
                 f"weights stored as float16) | {res['dense_acc']:.4f} |")
        L += ["", f"Gap sparse - dense: {100 * (res['sparse_acc'] - res['dense_acc']):+.2f} points."]
    L += ["", "| class | clips | sparse int8 |" + (" dense fp32 |" if dense else ""),
          "|---|---|---|" + ("---|" if dense else "")]
    for name, row in res["per_class"].items():
        L.append(f"| {name} | {row['n']} | {row['sparse']:.3f} |" + (f" {row['dense']:.3f} |" if dense else ""))
    L += ["", "## Sparsity", "", "| layer | dense weights | non-zero weights | weight density | n_pack | k | "
          "activation sparsity (measured) |", "|---|---|---|---|---|---|---|"]
    for i, layer in enumerate(model.layers):
        dw = layer.out_channels * layer.fan_in
        sp = f"{100 * res['activation_sparsity'][i]:.2f}% (k-WTA bound {100 * (1 - layer.k / np.prod(layer.out_shape)):.1f}%)" \
            if i < len(res["activation_sparsity"]) else "- (scores)"
        L.append(f"| {layer.name} | {dw:,} | {layer.nonzero_weights:,} | {layer.nonzero_weights / dw:.4f} | "
                 f"{layer.n_pack} | {layer.k or '-'} | {sp} |")
    total_dense = sum(la.out_channels * la.fan_in for la in model.layers)
    L += [f"| **total** | {total_dense:,} | **{model.nonzero_weights:,}** | {model.nonzero_weights / total_dense:.4f} "
          "| | | |", "", "Whitepaper budget: 127,696 non-zero weights; activations >= 88% sparse in every k-WTA layer.",
          "", "## Noise robustness (Numenta's blend test)", "",
          "Each test clip becomes `x * (1 - a) + a * U(-1, 1)` before the front end (fixed seed).", "",
          "| a | sparse int8 |" + (" dense fp32 |" if dense else ""), "|---|---|" + ("---|" if dense else "")]
    for row in res["noise"]:
        L.append(f"| {row['a']:.2f} | {row['sparse']:.4f} |" + (f" {row['dense']:.4f} |" if dense else ""))
    if train_report:
        cfg = train_report.get("config", {})
        L += ["", "## Training", "",
              f"Recipe `pynq-sparse train` (pynq_sparse/train/train.py): {cfg.get('epochs')} float epochs + "
              f"{cfg.get('qat_epochs')} quantisation-aware epochs, AdamW one-cycle (lr {cfg.get('lr')}), batch "
              f"{cfg.get('batch_size')}, label smoothing {cfg.get('label_smoothing')}, k-WTA boost "
              f"{cfg.get('boost_strength')} x{cfg.get('boost_decay')}/epoch; augmentation: time shift, speed, gain, "
              "real background noise from the training `_silence_` clips, Numenta blend noise, spectrogram masking.",
              f"Training clips: {train_report.get('n_train')} ({train_report.get('n_synthetic')} synthetic, from "
              "espeak-ng/flite/festival via `python -m pynq_sparse.train.synth`), validation "
              f"{train_report.get('n_validation')} (model selection), test {train_report.get('n_test')} (reported only).",
              f"Quantised PyTorch (fake-quant, float32) vs golden integer model top-1 agreement on the test split "
              f"at the end of training: "
              f"{train_report.get('sparse_int8', {}).get('golden_vs_qat_top1_agreement', float('nan')):.4f}; "
              "the test suite checks the same agreement in float64 on every 12-class dev clip "
              "(`tests/test_quant_agreement.py`, >= 0.995 required)."]
        if train_report.get("teacher"):
            L.append(f"Distillation: the sparse network was trained with Hinton distillation (weight "
                     f"{cfg.get('distill_weight')}, temperature {cfg.get('distill_temp')}) from the dense baseline "
                     f"below, which was trained first with the same data and augmentation (30 epochs).")
        for prev in train_report.get("previous_sparse_runs", []):
            val = prev.get("best_val_acc")
            L.append(f"Earlier sparse run ({prev.get('note')}): test {prev.get('golden_test_acc', float('nan')):.4f}"
                     + (f", best validation {val:.4f}" if val is not None else "") + ".")
        if train_report.get("previous_sparse_runs"):
            best = max(h["val_acc"] for h in train_report.get("sparse_int8", {}).get("history", [{"val_acc": 0}]))
            L.append(f"The shipped model was chosen on the validation split (best quantisation-aware validation "
                     f"accuracy {best:.4f}); the test split was only read to report it.")
            epochs = cfg.get("epochs") or 0                 # runs of the same recipe length: seeds / distillation
            runs = [(p["best_val_acc"], p["golden_test_acc"]) for p in train_report["previous_sparse_runs"]
                    if p.get("best_val_acc") is not None and p.get("config", {}).get("epochs", 0) >= 0.6 * epochs]
            runs.append((best, train_report.get("sparse_int8", {}).get("golden_test_acc", float("nan"))))
            if len(runs) > 1:
                vals, tests = zip(*runs)
                L.append(f"The {len(runs)} runs of at least {round(0.6 * epochs)} float epochs span validation "
                         f"{min(vals):.4f}-{max(vals):.4f} and test {min(tests):.4f}-{max(tests):.4f}; one clip is "
                         f"{1 / train_report.get('n_test', 294):.2%} of the test split, so the run with the best "
                         "validation need not be the best on test (seed noise is as large as these differences).")
    L += ["", "## Limits", "",
          "The dev folder is small (a few thousand real clips); accuracy on other speakers, microphones and "
          "rooms will differ. The MLPerf Tiny keyword-spotting target is 90% top-1; compare the figures above "
          "with it honestly."]
    return "\n".join(L) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--model", default=None)
    p.add_argument("--train-report", default=str(DEFAULT_MODEL_PATH.parent / "train_report.json"))
    p.add_argument("--out", default="docs/model_card.md")
    args = p.parse_args(argv)
    model = load_model(args.model)
    res = measure(args.data, model)
    tr = Path(args.train_report)
    train_report = json.loads(tr.read_text()) if tr.is_file() else None
    Path(args.out).write_text(render(model, res, train_report))
    Path(args.out).with_suffix(".json").write_text(json.dumps(res, indent=1))
    print(f"sparse {res['sparse_acc']:.4f}" + (f" dense {res['dense_acc']:.4f}" if "dense_acc" in res else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
