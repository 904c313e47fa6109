"""Train the sparse GSC network (float, then quantisation-aware) and its dense baseline; export both.

Example commands::

    pynq-sparse train --data ../shared/data/gsc_v2_dev --synth /work/synth_cache/gsc_synth --out build/train
    pynq-sparse train --data DIR --epochs 2 --qat-epochs 1 --out /tmp/smoke      # CPU smoke run
    python -m pynq_sparse.train.train --help

Outputs in --out: gsc_sparse_v1.pskw (integer model), gsc_dense_fp32.onnx,
gsc_sparse_fp32.onnx, checkpoints (*.pt), and train_report.json with every
accuracy, per-class figure and the configuration.
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..architecture import KEYWORDS, LABELS
from ..audio import fix_length, load_audio
from ..dataset import load_split, read_audio
from ..frontend import FastFrontend
from ..golden import golden_scores
from ..model_file import save_model
from .augment import AugmentConfig, Augmenter
from .export import export_onnx, to_sparse_model
from .network import QuantSparseCNN, SparseCNN, make_specs


@dataclass
class TrainConfig:
    data: str = "../shared/data/gsc_v2_dev"   # GSC folder (dev or full layout)
    synth: str = ""                # folder of synthetic clips with manifest.csv ("" = none)
    synth_max_per_class: int = 300  # cap synthetic clips per class (keep real speech dominant)
    out: str = "build/train"       # output folder
    seed: int = 0                  # masks, init, augmentation and sampling
    epochs: int = 30               # float training epochs (sparse and dense each)
    qat_epochs: int = 6            # quantisation-aware fine-tuning epochs
    batch_size: int = 64
    lr: float = 2e-3               # AdamW peak learning rate (one-cycle schedule)
    qat_lr: float = 2e-4
    weight_decay: float = 1e-2
    label_smoothing: float = 0.1
    boost_strength: float = 1.5    # k-WTA boosting, x boost_decay per epoch
    boost_decay: float = 0.9
    threads: int = 2
    train_dense: bool = True       # also train the dense baseline
    limit: int = 0                 # > 0: use at most this many clips per split (smoke tests)
    n_pack: str = ""               # per-layer n_pack override, e.g. "4,8,25,1" ("" = architecture.py)
    percent_on: str = ""           # k-WTA share override for the 3 hidden layers, e.g. "0.12,0.12,0.12"
    teacher: str = ""              # dense_float.pt of a trained dense baseline: distil from it ("" = off)
    distill_weight: float = 0.5    # share of the distillation loss (KL at distill_temp) in the total
    distill_temp: float = 4.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def load_synthetic(folder: str, cap: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic clips from a folder with manifest.csv (relpath,label,...) -> (audio [N,16000], labels)."""
    root = Path(folder)
    rows = list(csv.DictReader(open(root / "manifest.csv")))
    by_class: dict[int, list[str]] = {}
    for r in rows:
        cls = LABELS.index(r["label"]) if r["label"] in KEYWORDS else LABELS.index("_unknown_")
        by_class.setdefault(cls, []).append(r["relpath"])
    audio, labels = [], []
    for cls, paths in sorted(by_class.items()):
        for p in rng.permutation(paths)[:cap]:
            audio.append(fix_length(load_audio(root / p)))
            labels.append(cls)
    return np.stack(audio).astype(np.float32), np.array(labels, np.int64)


def balanced_epoch(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices for one epoch: every class drawn as often as the median class size."""
    classes = np.unique(labels)
    per = int(np.median([np.sum(labels == c) for c in classes]))
    idx = [rng.choice(np.flatnonzero(labels == c), per, replace=np.sum(labels == c) < per) for c in classes]
    return rng.permutation(np.concatenate(idx))


def to_input(words: np.ndarray) -> torch.Tensor:
    """int8 words [B, 32, 32] -> float network input [B, 1, 32, 32] = word / 127."""
    return torch.from_numpy(words.astype(np.float32) / 127.0)[:, None]


@torch.no_grad()
def predict_logits(net: torch.nn.Module, words: np.ndarray, batch: int = 512) -> np.ndarray:
    net.eval()
    return np.concatenate([net(to_input(words[i:i + batch])).numpy() for i in range(0, len(words), batch)])


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, 1) == labels))


def per_class(pred: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {LABELS[c]: float(np.mean(pred[labels == c] == c)) for c in range(len(LABELS)) if np.any(labels == c)}


def loss_fn(logits: torch.Tensor, y: torch.Tensor, cfg: TrainConfig,
            teacher_logits: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy with label smoothing, plus Hinton distillation from a teacher when given."""
    ce = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
    if teacher_logits is None:
        return ce
    t = cfg.distill_temp
    kl = F.kl_div(F.log_softmax(logits / t, 1), F.softmax(teacher_logits / t, 1), reduction="batchmean")
    return (1 - cfg.distill_weight) * ce + cfg.distill_weight * t * t * kl


def fit(net: torch.nn.Module, cfg: TrainConfig, train: tuple[np.ndarray, np.ndarray], val_words: np.ndarray,
        val_labels: np.ndarray, frontend: FastFrontend, aug: Augmenter, epochs: int, lr: float,
        rng: np.random.Generator, tag: str,
        teacher: torch.nn.Module | None = None) -> tuple[torch.nn.Module, list[dict[str, Any]]]:
    """Train `net` for `epochs` with fresh augmentation each epoch; keep the best validation state."""
    audio, labels = train
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=cfg.weight_decay)
    steps = epochs * (len(balanced_epoch(labels, rng)) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, steps), pct_start=0.15)
    best, best_acc, history = copy.deepcopy(net.state_dict()), -1.0, []
    step = 0
    for epoch in range(epochs):
        t0 = time.time()
        if isinstance(net, SparseCNN) and not net.dense:
            net.set_boost(cfg.boost_strength * cfg.boost_decay ** epoch)
        order = balanced_epoch(labels, rng)
        words = aug.spec_mask(frontend.words(aug.waveforms(audio[order])))
        y = torch.from_numpy(labels[order])
        net.train()
        total = 0.0
        nb = len(order) // cfg.batch_size
        for b in range(nb):
            sl = slice(b * cfg.batch_size, (b + 1) * cfg.batch_size)
            x = to_input(words[sl])
            t_logits = None
            if teacher is not None:
                with torch.no_grad():
                    t_logits = teacher(x)
            loss = loss_fn(net(x), y[sl], cfg, t_logits)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step < steps:
                sched.step()
                step += 1
            if hasattr(net, "apply_masks"):
                net.apply_masks()
            total += loss.item()
        val_acc = accuracy(predict_logits(net, val_words), val_labels)
        history.append({"epoch": epoch, "loss": total / max(1, nb), "val_acc": val_acc, "seconds": time.time() - t0})
        log(f"{tag} epoch {epoch + 1}/{epochs} loss {total / max(1, nb):.4f} val {val_acc:.4f} "
            f"({time.time() - t0:.1f}s)")
        if val_acc > best_acc:
            best_acc, best = val_acc, copy.deepcopy(net.state_dict())
    net.load_state_dict(best)
    return net, history


def run(cfg: TrainConfig) -> dict[str, Any]:
    """The whole recipe; returns (and writes) the report."""
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    frontend = FastFrontend()
    log(f"loading {cfg.data}")
    splits = {s: load_split(cfg.data, s) for s in ("train", "validation", "testing")}
    if cfg.limit > 0:
        splits = {s: [ex[i] for i in sorted(rng.permutation(len(ex))[:cfg.limit])] for s, ex in splits.items()}
    audio = {s: read_audio(ex) for s, ex in splits.items()}
    labels = {s: np.array([e.label for e in ex], np.int64) for s, ex in splits.items()}
    silence = labels["train"] == LABELS.index("_silence_")
    noise_bank = audio["train"][silence]
    train_audio, train_labels = audio["train"], labels["train"]
    n_synth = 0
    if cfg.synth:
        s_audio, s_labels = load_synthetic(cfg.synth, cfg.synth_max_per_class, rng)
        n_synth = len(s_labels)
        train_audio = np.concatenate([train_audio, s_audio])
        train_labels = np.concatenate([train_labels, s_labels])
    log(f"train {len(train_labels)} clips ({n_synth} synthetic), val {len(labels['validation'])}, "
        f"test {len(labels['testing'])}")
    words = {s: frontend.words(a) for s, a in audio.items()}
    aug = Augmenter(noise_bank, cfg.augment, rng)
    report: dict[str, Any] = {"config": asdict(cfg), "n_train": int(len(train_labels)), "n_synthetic": n_synth,
                              "n_validation": int(len(labels["validation"])), "n_test": int(len(labels["testing"]))}

    teacher = None
    if cfg.teacher:
        teacher = SparseCNN(seed=cfg.seed, dense=True)
        teacher.load_state_dict(torch.load(cfg.teacher, map_location="cpu"))
        teacher.eval()
        report["teacher"] = {"path": cfg.teacher, "test_acc": accuracy(predict_logits(teacher, words["testing"]),
                                                                       labels["testing"])}

    # 1. sparse float training
    net = SparseCNN(seed=cfg.seed, boost_strength=cfg.boost_strength, specs=make_specs(cfg.n_pack, cfg.percent_on))
    net, hist = fit(net, cfg, (train_audio, train_labels), words["validation"], labels["validation"], frontend, aug,
                    cfg.epochs, cfg.lr, rng, "sparse", teacher)
    torch.save(net.state_dict(), out / "sparse_float.pt")
    export_onnx(net, out / "gsc_sparse_fp32.onnx")
    report["sparse_float"] = {"history": hist, "test_acc": accuracy(predict_logits(net, words["testing"]),
                                                                    labels["testing"])}

    # 2. quantisation-aware fine-tuning
    calib = to_input(words["train"][rng.permutation(len(words["train"]))[:2000]])
    qnet = QuantSparseCNN.from_float(net.eval(), calib)
    qnet, qhist = fit(qnet, cfg, (train_audio, train_labels), words["validation"], labels["validation"], frontend,
                      aug, cfg.qat_epochs, cfg.qat_lr, rng, "qat", teacher)
    torch.save(qnet.state_dict(), out / "sparse_qat.pt")
    q_logits = predict_logits(qnet, words["testing"])
    model = to_sparse_model(qnet, info={"trained": time.strftime("%Y-%m-%d"), "seed": cfg.seed,
                                        "epochs": cfg.epochs, "qat_epochs": cfg.qat_epochs,
                                        "data": Path(cfg.data).name, "n_train": int(len(train_labels)),
                                        "n_synthetic": n_synth})
    save_model(model, out / "gsc_sparse_v1.pskw")
    g_scores = golden_scores(model, words["testing"])
    g_pred = np.argmax(g_scores, 1)
    report["sparse_int8"] = {
        "history": qhist, "qat_test_acc": accuracy(q_logits, labels["testing"]),
        "golden_test_acc": float(np.mean(g_pred == labels["testing"])),
        "golden_vs_qat_top1_agreement": float(np.mean(g_pred == np.argmax(q_logits, 1))),
        "golden_per_class": per_class(g_pred, labels["testing"]), "nonzero_weights": model.nonzero_weights,
        "model_id": model.model_id}

    # 3. dense baseline, same data and recipe
    if cfg.train_dense:
        dense = SparseCNN(seed=cfg.seed, dense=True)
        dense, dhist = fit(dense, cfg, (train_audio, train_labels), words["validation"], labels["validation"],
                           frontend, aug, cfg.epochs, cfg.lr, rng, "dense")
        torch.save(dense.state_dict(), out / "dense_float.pt")
        export_onnx(dense, out / "gsc_dense_fp32.onnx")
        d_pred = np.argmax(predict_logits(dense, words["testing"]), 1)
        report["dense_float"] = {"history": dhist, "test_acc": float(np.mean(d_pred == labels["testing"])),
                                 "per_class": per_class(d_pred, labels["testing"])}
    (out / "train_report.json").write_text(json.dumps(report, indent=1))
    log(f"done: {json.dumps({k: v for k, v in report.get('sparse_int8', {}).items() if 'acc' in k})}")
    return report


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    for name in ("data", "synth", "out", "teacher", "n_pack", "percent_on"):
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, default=getattr(d, name))
    for name in ("seed", "epochs", "qat_epochs", "batch_size", "threads", "synth_max_per_class", "limit"):
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=int, default=getattr(d, name))
    for name in ("lr", "qat_lr", "weight_decay", "distill_weight", "distill_temp"):
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=float, default=getattr(d, name))
    p.add_argument("--no-dense", dest="train_dense", action="store_false", help="skip the dense baseline")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    args = vars(p.parse_args(argv))
    run(TrainConfig(**args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
