"""The `pynq-sparse` command line.

Usage::

    pynq-sparse classify clip.wav other.flac      # label and confidence per file
    pynq-sparse evaluate --data ../shared/data/gsc_v2_dev --list ../shared/data/gsc_v2_dev/testing_list.txt
    pynq-sparse info                              # per-layer shapes, non-zeros, k
    pynq-sparse train --data DIR --out build/train   (needs the [train] extra)
    pynq-sparse export --checkpoint build/train/sparse_qat.pt --out model.pskw
    pynq-sparse bench cpu                         # benchmarks: frontend, cpu, host, all
    pynq-sparse run                               # the main job (make run)
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import PynqSparseError

SAMPLES_DIR = Path(__file__).parent / "data" / "samples"
BENCHES = ("frontend", "cpu", "host", "service")


def _backend(model, name: str):
    """A scoring backend for `model` ("auto": the fast CPU one when numba imports, else golden)."""
    from .backends import get_backend
    return get_backend(name, model)


def classify_files(paths: list[str], model_path: str | None = None, backend: str = "auto") -> list[dict]:
    """Classify audio files; returns one dict per file (path, label, confidence, scores)."""
    from .frontend import words_from_audio
    from .golden import confidences, predict
    from .model_file import load_model
    model = load_model(model_path)
    words = words_from_audio(paths)
    scores = _backend(model, backend).scores(words)
    conf = confidences(scores, model.score_scale)
    pred = predict(scores)
    return [{"path": p, "label": model.labels[c], "confidence": float(conf[i, c]), "scores": scores[i].tolist()}
            for i, (p, c) in enumerate(zip(paths, pred))]


def cmd_classify(args: argparse.Namespace) -> int:
    for r in classify_files(args.files, args.model, args.backend):
        print(f"{r['path']}: {r['label']} ({r['confidence']:.3f})")
    return 0


def confusion_matrix(labels: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    """cm[true, predicted] counts."""
    cm = np.zeros((n, n), np.int64)
    np.add.at(cm, (labels, pred), 1)
    return cm


def format_confusion(cm: np.ndarray, names: list[str]) -> str:
    short = [n.strip("_")[:7] for n in names]
    lines = ["true\\pred " + " ".join(f"{s:>7}" for s in short) + "   recall"]
    for i, row in enumerate(cm):
        recall = row[i] / row.sum() if row.sum() else float("nan")
        lines.append(f"{short[i]:>9} " + " ".join(f"{v:7d}" for v in row) + f"   {recall:.3f}")
    return "\n".join(lines)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .dataset import load_split, read_audio
    from .frontend import FastFrontend
    from .golden import predict
    from .model_file import load_model
    model = load_model(args.model)
    examples = load_split(args.data, args.split, list_file=args.list)
    t0 = time.time()
    words = FastFrontend().words(read_audio(examples))
    scores = _backend(model, args.backend).scores(words)
    pred = predict(scores)
    labels = np.array([e.label for e in examples])
    cm = confusion_matrix(labels, pred, model.n_classes)
    print(f"{len(examples)} clips from {args.data} ({args.list or args.split}), model {model.model_id:#010x}, "
          f"{time.time() - t0:.1f} s")
    print(format_confusion(cm, model.labels))
    print(f"accuracy: {np.mean(pred == labels):.4f}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .model_file import load_model
    model = load_model(args.model)
    print(f"model_id: {model.model_id:#010x}  labels: {' '.join(model.labels)}")
    for key, value in sorted(model.info.items()):
        if not isinstance(value, (dict, list)):       # scalars only; info["quant"] holds per-channel scales
            print(f"  {key}: {value}")
    print(f"{'layer':6} {'kind':4} {'input':>12} {'output':>12} {'n_pack':>6} {'k':>5} {'dense':>9} "
          f"{'nonzero':>8} {'density':>8} {'acc_bits':>8}")
    for layer in model.layers:
        dense = layer.out_channels * layer.fan_in
        print(f"{layer.name:6} {layer.kind:4} {'x'.join(map(str, layer.in_shape)):>12} "
              f"{'x'.join(map(str, layer.out_shape)):>12} {layer.n_pack:6d} {layer.k:5d} {dense:9d} "
              f"{layer.nonzero_weights:8d} {layer.nonzero_weights / dense:8.4f} {layer.acc_bits:8d}")
    print(f"nonzero_weights: {model.nonzero_weights}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .train.train import TrainConfig, run
    run(TrainConfig(**{k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__}))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import torch

    from .model_file import save_model
    from .train.export import export_onnx, to_sparse_model
    from .train.network import QuantSparseCNN, SparseCNN
    state = torch.load(args.checkpoint, map_location="cpu")
    if "act_scale" in state:
        net = QuantSparseCNN(SparseCNN())
        net.load_state_dict(state)
        path = save_model(to_sparse_model(net, info={"checkpoint": Path(args.checkpoint).name}), args.out)
        print(f"wrote {path}")
    else:
        net = SparseCNN(dense=bool(state["conv1_mask"].all()))     # the dense baseline has no zero in its masks
        net.load_state_dict(state)
    if args.onnx:
        print(f"wrote {export_onnx(net, args.onnx)}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    names = BENCHES if args.which == "all" else (args.which,)
    status = 0
    for name in names:
        mod = importlib.import_module(f"pynq_sparse.bench.{name}")
        sub = argparse.ArgumentParser(prog=f"pynq-sparse bench {name}")
        mod.add_arguments(sub)
        status |= mod.run(sub.parse_args(args.rest if args.which != "all" else []))
    return status


def sample_label(file_name: str) -> str:
    """Class of a bundled sample from its name `<class>__<original name>`."""
    from .architecture import LABELS
    return max((lab for lab in LABELS if file_name.startswith(lab + "__")), key=len, default="")


def cmd_run(args: argparse.Namespace) -> int:
    """The main job: the bundled real clips through KeywordSpotter (FPGA, else the emulated overlay), then serve."""
    from .spotter import KeywordSpotter
    paths = sorted(str(p) for p in SAMPLES_DIR.glob("*.wav"))
    if not paths:
        raise PynqSparseError(f"no sample clips in {SAMPLES_DIR}")
    with KeywordSpotter(model=args.model, backend=args.backend) as spotter:
        print(f"backend: {spotter.backend_name}")
        results = spotter.classify_batch(paths)
    correct = 0
    for path, r in zip(paths, results):
        correct += sample_label(Path(path).name) == r.label
        print(f"{Path(path).name:45} -> {r.label:10} ({r.confidence:.3f})")
    print(f"{correct}/{len(results)} sample clips classified as their folder label")
    if not args.serve:
        return 0
    from pynq_sparse.service.cli import add_serve_arguments, run_serve
    serve = argparse.ArgumentParser()
    add_serve_arguments(serve)
    print("starting the service: open http://127.0.0.1:8000/ (live microphone demo) or /docs; Ctrl-C stops it")
    return run_serve(serve.parse_args([]))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pynq-sparse", description="Sparse-sparse keyword spotting on PYNQ.")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(func=fn)
        return sp

    sp = add("classify", cmd_classify, "classify audio files (WAV/FLAC, any rate and channel count)")
    sp.add_argument("files", nargs="+")
    sp.add_argument("--model", default=None, help="model file (.pskw); default: the shipped model")
    sp.add_argument("--backend", default="auto", help="auto, cpu or golden")

    sp = add("evaluate", cmd_evaluate, "accuracy and confusion matrix on a Speech Commands folder")
    sp.add_argument("--data", required=True, help="folder in the full GSC layout or the gsc_v2_dev layout")
    sp.add_argument("--list", default=None, help="only the clips in this list file (paths relative to --data)")
    sp.add_argument("--split", default="all", choices=["all", "train", "validation", "testing"])
    sp.add_argument("--model", default=None)
    sp.add_argument("--backend", default="auto")

    sp = add("info", cmd_info, "per-layer shapes, non-zero weights and k of a model file")
    sp.add_argument("model", nargs="?", default=None)

    sp = add("train", cmd_train, "train the sparse network and the dense baseline (needs torch)")
    try:
        from .train.train import add_arguments as train_args
        train_args(sp)
    except ImportError as err:     # torch missing: the command explains itself when run
        sp.set_defaults(func=lambda a, e=err: _missing_extra("train", e))

    sp = add("export", cmd_export, "export a training checkpoint to .pskw and/or ONNX (needs torch)")
    sp.add_argument("--checkpoint", required=True)
    sp.add_argument("--out", default="model.pskw")
    sp.add_argument("--onnx", default=None)

    sp = add("bench", cmd_bench, "benchmarks (results written to docs/benchmarks/)")
    sp.add_argument("which", choices=BENCHES + ("all",))
    sp.add_argument("rest", nargs=argparse.REMAINDER)

    sp = add("run", cmd_run, "the main job of `make run`: classify the bundled clips, then serve")
    sp.add_argument("--model", default=None)
    sp.add_argument("--backend", default="auto", help="auto, fpga, emulated, cpu or golden")
    sp.add_argument("--no-serve", dest="serve", action="store_false", help="only classify the bundled clips")

    from pynq_sparse.service.cli import add_listen_arguments, add_serve_arguments, run_listen, run_serve
    sp = add("serve", run_serve, "start the keyword-spotting web service (uvicorn)")
    add_serve_arguments(sp)
    sp = add("listen", run_listen, "live keyword spotting from a microphone (or --from-file)")
    add_listen_arguments(sp)
    return p


def _missing_extra(extra: str, err: Exception) -> int:
    print(f"error: this command needs the [{extra}] extra ({err}); pip install 'pynq-sparse[{extra}]'",
          file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PynqSparseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
