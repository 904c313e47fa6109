"""CPU benchmark: the sparse-sparse backend against dense engines, side by side in one run.

Engines, each at batch 1 and batch 64, all on the same words:

* ``sparse cpu``: `pynq_sparse.backends.cpu_sparse.SparseCpuBackend` (bit-exact; batch 1
  through ``score_one``, batch 64 through ``scores`` over ``--threads`` threads);
* ``golden``: `pynq_sparse.golden.golden_scores`, the readable reference (a few words);
* ``onnxruntime fp32``: the dense network of the same architecture
  (``pynq_sparse/data/models/gsc_dense_fp16.onnx`` run with fp32 weights, else the same graph
  with random weights built with onnx.helper), ``intra_op_num_threads = --threads``;
* ``onnxruntime int8``: that model quantised by onnxruntime's own ``quantize_static``
  (calibrated on the benchmark words; QDQ and QOperator are both tried, the faster kept);
* ``pytorch fp32``: the same dense network in torch (when torch imports), same weights.

Every engine is timed in each of ``--repeats`` rounds, engines interleaved, and the
median round is reported, so that other jobs on the machine slow every column alike.
The last line printed is ``speedup_vs_ort_fp32_batch64: X`` (sparse cpu at batch 64 over
ONNX Runtime fp32 at batch 64).

Usage::

    pynq-sparse bench cpu                       # writes docs/benchmarks/cpu.md
    python -m pynq_sparse.bench.cpu --repeats 3 --no-write
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..architecture import ARCHITECTURE, random_model
from ..backends.cpu_sparse import SparseCpuBackend, default_threads
from . import cpu_name
from ..dense_baseline import DENSE_FP16_PATH as DENSE_ONNX
from ..dense_baseline import dense_onnx_bytes
from ..golden import golden_scores
from ..model_file import DEFAULT_MODEL_PATH, load_model

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("PYNQ_SPARSE_SHARED", REPO.parent / "shared"))
DEV_DATA = SHARED / "data" / "gsc_v2_dev"
OUT_MD = REPO / "docs" / "benchmarks" / "cpu.md"
BATCHES = (1, 64)
REFERENCE = ("onnxruntime fp32", 64)       # the denominator of every ratio


# ----------------------------------------------------------------------------- inputs
def benchmark_words(n_words: int, data: Path = DEV_DATA) -> tuple[np.ndarray, str]:
    """int8 words [n, 32, 32] from real clips spread over the dev set (random words if impossible)."""
    paths = sorted(str(p) for p in data.glob("**/*.wav")) if data.is_dir() else []
    try:
        from ..frontend import words_from_audio
    except ImportError:
        words_from_audio = None
    if paths and words_from_audio is not None:
        pick = np.linspace(0, len(paths) - 1, min(n_words, len(paths))).round().astype(int)
        return words_from_audio([paths[i] for i in pick]), f"{len(pick)} real words ({data})"
    rng = np.random.default_rng(0)
    return rng.integers(0, 128, (n_words, 32, 32)).astype(np.int8), f"{n_words} random words 0..127"


def benchmark_model():
    """(model, description): the shipped model if present, else random_model(seed=0)."""
    if DEFAULT_MODEL_PATH.exists():
        model = load_model()
        return model, f"shipped model {DEFAULT_MODEL_PATH.name} (id {model.model_id:#010x})"
    return random_model(seed=0), "random_model(seed=0) (no shipped model yet)"


# ----------------------------------------------------------------------------- dense baselines
def dense_onnx_model(path: Path = DENSE_ONNX):
    """(onnx.ModelProto, description): the exported dense baseline, or the same graph with random weights."""
    import onnx
    if path.exists():
        return onnx.load_from_string(dense_onnx_bytes(path)), \
            f"{path.name} (trained dense baseline, fp16-stored weights run as fp32)"
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    conv1, conv2, fc1, fc2 = ARCHITECTURE
    c1, c2, n_hidden, n_out = conv1.out_channels, conv2.out_channels, fc1.out_channels, fc2.out_channels
    k, n_flat = conv1.kernel_size, fc1.in_shape[0]

    def he(shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    inits = [numpy_helper.from_array(a, n) for n, a in (
        ("w1", he((c1, 1, k, k), k * k)), ("b1", np.zeros(c1, np.float32)),
        ("w2", he((c2, c1, k, k), c1 * k * k)), ("b2", np.zeros(c2, np.float32)),
        ("w3", he((n_hidden, n_flat), n_flat)), ("b3", np.zeros(n_hidden, np.float32)),
        ("w4", he((n_out, n_hidden), n_hidden)), ("b4", np.zeros(n_out, np.float32)),
        ("flat", np.array([-1, n_flat], np.int64)))]
    nodes = [helper.make_node("Conv", ["words", "w1", "b1"], ["c1"], kernel_shape=[k, k]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], kernel_shape=[k, k]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Reshape", ["p2", "flat"], ["f"]),
             helper.make_node("Gemm", ["f", "w3", "b3"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["hr"]),
             helper.make_node("Gemm", ["hr", "w4", "b4"], ["logits"], transB=1)]
    graph = helper.make_graph(
        nodes, "gsc_dense_random", [helper.make_tensor_value_info("words", TensorProto.FLOAT, ["B", 1, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", n_out])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, "same-architecture dense graph with random weights (no exported dense baseline yet)"


def _ort_session(model_bytes: bytes, threads: int):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def _float_words(words: np.ndarray) -> np.ndarray:
    return (words.astype(np.float32) / 127.0)[:, None]                      # [B, 1, 32, 32]


def quantized_onnx(model, words: np.ndarray, threads: int, seconds: float) -> tuple[bytes, str]:
    """onnxruntime's quantize_static of `model` (QDQ or QOperator, whichever runs faster here)."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quant_pre_process,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter([{"words": _float_words(words[i:i + 16])} for i in range(0, min(len(words), 128), 16)])

        def get_next(self):
            return next(self._batches, None)

    import onnx
    best: tuple[float, bytes, str] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "fp32.onnx"
        onnx.save(model, str(src))
        pre = Path(tmp) / "pre.onnx"
        try:
            quant_pre_process(str(src), str(pre))
        except Exception:                                  # pre-processing is an optimisation only
            pre = src
        x = _float_words(words[:64])
        for fmt, name in ((QuantFormat.QDQ, "QDQ"), (QuantFormat.QOperator, "QOperator")):
            dst = Path(tmp) / f"int8_{name}.onnx"
            quantize_static(str(pre), str(dst), Reader(), quant_format=fmt, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, per_channel=True)
            data = dst.read_bytes()
            sess = _ort_session(data, threads)
            rate = _rate(lambda: sess.run(None, {"words": x}), len(x), seconds)
            if best is None or rate > best[0]:
                best = (rate, data, name)
    assert best is not None
    return best[1], f"quantize_static, {best[2]} format, per-channel int8 weights, uint8 activations"


def torch_dense(model, threads: int):
    """A torch module with the dense ONNX model's weights, or None when torch does not import."""
    try:
        import torch
    except ImportError:
        return None
    from onnx import numpy_helper
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    gemms = [n for n in model.graph.node if n.op_type in ("Gemm", "MatMul")]
    torch.set_num_threads(threads)

    def param(name):
        return torch.nn.Parameter(torch.from_numpy(np.array(init[name], dtype=np.float32, order="C")),
                                  requires_grad=False)

    layers = []
    for node in convs:
        w = init[node.input[1]]
        conv = torch.nn.Conv2d(w.shape[1], w.shape[0], w.shape[2:], bias=len(node.input) > 2)
        conv.weight = param(node.input[1])
        if len(node.input) > 2:
            conv.bias = param(node.input[2])
        layers += [conv, torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
    layers.append(torch.nn.Flatten())
    for i, node in enumerate(gemms):
        trans_b = node.op_type == "Gemm" and any(a.name == "transB" and a.i == 1 for a in node.attribute)
        w = init[node.input[1]]
        w = w if trans_b else w.T                                            # torch wants [out, in]
        lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=len(node.input) > 2)
        lin.weight = torch.nn.Parameter(torch.from_numpy(np.array(w, dtype=np.float32, order="C")),
                                        requires_grad=False)
        if len(node.input) > 2:
            lin.bias = param(node.input[2])
        layers.append(lin)
        if i < len(gemms) - 1:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers).eval()


# ----------------------------------------------------------------------------- timing
def _rate(call: Callable[[], Any], words_per_call: int, seconds: float, min_calls: int = 2) -> float:
    """words/s of `call`, run for about `seconds` (at least `min_calls` calls)."""
    calls = 0
    t0 = time.perf_counter()
    while True:
        call()
        calls += 1
        elapsed = time.perf_counter() - t0
        if calls >= min_calls and elapsed >= seconds:
            return calls * words_per_call / elapsed


def _cpu_us_per_word(call: Callable[[], Any], words_per_call: int, seconds: float) -> float:
    """Process CPU time per word (microseconds) of `call`, run for about `seconds`."""
    calls = 0
    c0, t0 = time.process_time(), time.perf_counter()
    while calls < 2 or time.perf_counter() - t0 < seconds:
        call()
        calls += 1
    return (time.process_time() - c0) / (calls * words_per_call) * 1e6


def _cycler(batches: list) -> Callable[[], Any]:
    it = [0]

    def nxt():
        it[0] = (it[0] + 1) % len(batches)
        return batches[it[0]]
    return nxt


def run_cpu_bench(n_words: int = 512, repeats: int = 5, seconds: float = 1.0, golden_words: int = 8,
                  threads: int | None = None, data: Path = DEV_DATA, log=print) -> dict[str, Any]:
    """Time every engine at batch 1 and 64; return rates (words/s), notes and the exactness check."""
    threads = threads or default_threads()
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    model, model_note = benchmark_model()
    words, words_note = benchmark_words(n_words, data)
    log(f"model: {model_note}\nwords: {words_note}\nthreads: {threads}")

    sparse = SparseCpuBackend(model, threads=threads).warmup()
    # the numba kernels side by side when the default is the C extension (same layers, same results)
    numba = SparseCpuBackend(model, threads=threads, kernels="numba").warmup() if sparse.kernels != "numba" else None
    check = words[:64]
    golden_check = golden_scores(model, check)
    exact = bool(np.array_equal(sparse.scores(check), golden_check))
    if numba is not None:
        exact = exact and bool(np.array_equal(numba.scores(check), golden_check))
    log(f"sparse cpu ({sparse.kernels}) == golden on {len(check)} words: {exact}")

    dense, dense_note = dense_onnx_model()
    fp32 = _ort_session(dense.SerializeToString(), threads)
    int8_bytes, int8_note = quantized_onnx(dense, words, threads, seconds=min(seconds, 0.5))
    int8 = _ort_session(int8_bytes, threads)
    net = torch_dense(dense, threads)
    if net is None:
        torch_note = "torch not installed"
    else:
        import torch
        x = _float_words(words[:8])
        with torch.inference_mode():
            diff = float(np.abs(net(torch.from_numpy(x)).numpy() - fp32.run(None, {"words": x})[0]).max())
        same = "same weights" if diff < 1e-3 else \
            "conv/fc weights of the ONNX graph, but not its folded fc1 BatchNorm: a speed comparison only"
        torch_note = f"torch {torch.__version__} ({same}; max |logit diff| vs ORT fp32 {diff:.1e})"

    b64 = [words[i:i + 64] for i in range(0, len(words) - 63, 64)] or [words]
    one = [words[i:i + 1] for i in range(len(words))]
    f64 = [_float_words(b) for b in b64]
    f1 = [_float_words(b) for b in one]
    nb64, nb1, nf64, nf1 = _cycler(b64), _cycler(one), _cycler(f64), _cycler(f1)

    engines: dict[tuple[str, int], Callable[[], Any]] = {
        ("sparse cpu", 1): lambda: sparse.score_one(nb1()[0]),
        ("sparse cpu", 64): lambda: sparse.scores(nb64()),
        **({("sparse cpu (numba)", 1): lambda: numba.score_one(nb1()[0]),
            ("sparse cpu (numba)", 64): lambda: numba.scores(nb64())} if numba is not None else {}),
        ("onnxruntime fp32", 1): lambda: fp32.run(None, {"words": nf1()}),
        ("onnxruntime fp32", 64): lambda: fp32.run(None, {"words": nf64()}),
        ("onnxruntime int8", 1): lambda: int8.run(None, {"words": nf1()}),
        ("onnxruntime int8", 64): lambda: int8.run(None, {"words": nf64()}),
    }
    if net is not None:
        import torch

        def torch_run(x):
            with torch.inference_mode():
                return net(torch.from_numpy(x))
        engines[("pytorch fp32", 1)] = lambda: torch_run(nf1())
        engines[("pytorch fp32", 64)] = lambda: torch_run(nf64())
    gw = words[:max(1, golden_words)]
    engines[("golden", 1)] = lambda: golden_scores(model, nb1())
    engines[("golden", 64)] = lambda: golden_scores(model, np.resize(gw, (64, 32, 32)))

    for call in engines.values():                         # warm-up: thread pools, caches, first-call costs
        call()
    rates: dict[tuple[str, int], list[float]] = {key: [] for key in engines}
    for r in range(repeats):
        for (name, batch), call in engines.items():
            if name == "golden":                          # ~20 ms per word: a few calls only
                calls = golden_words if batch == 1 else 1
                t0 = time.perf_counter()
                for _ in range(calls):
                    call()
                rates[(name, batch)].append(calls * batch / (time.perf_counter() - t0))
            else:
                rates[(name, batch)].append(_rate(call, batch, seconds))
        log(f"round {r + 1}/{repeats}: " + ", ".join(f"{n} b{b} {v[-1]:,.0f}" for (n, b), v in rates.items()))
    sparse.close()
    if numba is not None:
        numba.close()

    # single-thread CPU time per word at batch 64: what each engine costs a core, whatever the load
    single = {"sparse cpu": SparseCpuBackend(model, threads=1).warmup(),
              "onnxruntime fp32": _ort_session(dense.SerializeToString(), 1),
              "onnxruntime int8": _ort_session(int8_bytes, 1)}
    one_thread: dict[str, Callable[[], Any]] = {
        "sparse cpu": lambda: single["sparse cpu"].scores(nb64()),
        "onnxruntime fp32": lambda: single["onnxruntime fp32"].run(None, {"words": nf64()}),
        "onnxruntime int8": lambda: single["onnxruntime int8"].run(None, {"words": nf64()}),
        "golden": lambda: golden_scores(model, np.resize(gw, (64, 32, 32))),
    }
    if numba is not None:
        single["sparse cpu (numba)"] = SparseCpuBackend(model, threads=1, kernels="numba").warmup()
        one_thread["sparse cpu (numba)"] = lambda: single["sparse cpu (numba)"].scores(nb64())
    if net is not None:
        torch.set_num_threads(1)
        one_thread["pytorch fp32"] = lambda: torch_run(nf64())
    cpu_us: dict[str, list[float]] = {key: [] for key in one_thread}
    for call in one_thread.values():
        call()
    for _ in range(max(1, repeats // 2)):
        for name, call in one_thread.items():
            cpu_us[name].append(_cpu_us_per_word(call, 64, 0.0 if name == "golden" else seconds / 2))
    log("single-thread CPU us/word: " + ", ".join(f"{n} {statistics.median(v):,.0f}" for n, v in cpu_us.items()))
    load_end = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "rates": {key: statistics.median(v) for key, v in rates.items()},
        "cpu_us": {key: statistics.median(v) for key, v in cpu_us.items()},
        "all_rates": rates, "exact": exact, "n_checked": len(check), "threads": threads,
        "model": model_note, "words": words_note, "dense": dense_note, "int8": int8_note, "torch": torch_note,
        "repeats": repeats, "seconds": seconds, "load_start": load_start, "load_end": load_end,
        "kernels": sparse.kernels,
    }


# ----------------------------------------------------------------------------- report
def machine_note() -> str:
    return f"{os.cpu_count()} CPUs ({cpu_name()}), {platform.machine()}, Python {platform.python_version()}"


def format_report(res: dict[str, Any], command: str) -> str:
    rates = res["rates"]
    ref = rates[REFERENCE]
    order = ["sparse cpu", "sparse cpu (numba)", "onnxruntime fp32", "onnxruntime int8", "pytorch fp32", "golden"]
    lines = ["| engine | batch | words/s | vs ORT fp32 batch 64 | speed-up over golden (same batch) |",
             "|---|---:|---:|---:|---:|"]
    for name in order:
        for batch in BATCHES:
            if (name, batch) not in rates:
                continue
            rate = rates[(name, batch)]
            gold = rates[("golden", batch)]
            lines.append(f"| {name} | {batch} | {rate:,.0f} | {rate / ref:.2f}x | {rate / gold:,.1f}x |")
    speedup = rates[("sparse cpu", 64)] / ref
    cpu = res["cpu_us"]
    lines += ["", "Single-thread cost (one core, batch 64, process CPU time per word; less sensitive to other "
              "jobs than words/s):", "",
              "| engine | CPU us per word | ORT fp32 cost / engine cost |", "|---|---:|---:|"]
    for name in order:
        if name in cpu:
            lines.append(f"| {name} | {cpu[name]:,.1f} | {cpu['onnxruntime fp32'] / cpu[name]:.2f}x |")
    notes = [
        "",
        f"* command: `{command}`",
        f"* machine: {machine_note()}; {res['threads']} threads for every engine that has threads",
        f"* load average (1, 5, 15 min) at start {', '.join(f'{v:.2f}' for v in res['load_start'])}, "
        f"at end {', '.join(f'{v:.2f}' for v in res['load_end'])}: other jobs shared the machine",
        f"* sparse model: {res['model']}; inputs: {res['words']}",
        f"* sparse cpu kernels: {res.get('kernels', 'numba')} (pynq_sparse/backends/cpu_sparse.py)"
        + ("; `sparse cpu (numba)`: the same backend with kernels=\"numba\", for comparison"
           if ("sparse cpu (numba)", 64) in rates else ""),
        f"* sparse cpu output identical to the golden reference on {res['n_checked']} benchmark words: "
        f"{'yes' if res['exact'] else 'NO'} (all dev clips: tests/test_cpu_backend.py)",
        f"* dense model: {res['dense']}; int8: {res['int8']}; {res['torch']}",
        f"* median of {res['repeats']} interleaved rounds, about {res['seconds']:g} s per engine per round "
        "(golden: a few words per round); batch 1 = one word per call (sparse cpu: `score_one`, one thread)",
        f"* sparse cpu batch 64 / ORT fp32 batch 64 = {speedup:.1f}x; "
        f"sparse cpu over golden: {rates[('sparse cpu', 1)] / rates[('golden', 1)]:,.0f}x (batch 1), "
        f"{rates[('sparse cpu', 64)] / rates[('golden', 64)]:,.0f}x (batch 64)",
    ]
    return "\n".join(lines + notes)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``pynq-sparse bench cpu``."""
    parser.add_argument("--words", type=int, default=512, help="benchmark words (real clips spread over the dev set)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds; the median is reported")
    parser.add_argument("--seconds", type=float, default=1.0, help="time per engine per round")
    parser.add_argument("--golden-words", type=int, default=8, help="golden calls per round at batch 1")
    parser.add_argument("--threads", type=int, default=None, help="threads per engine (default: every core)")
    parser.add_argument("--data", default=str(DEV_DATA), help="Speech Commands folder for the words")
    parser.add_argument("--out", default=str(OUT_MD), help="markdown file written with the table")
    parser.add_argument("--no-write", action="store_true", help="print only, do not write --out")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark, print the table, write it to --out; the last line is the batch-64 ratio."""
    res = run_cpu_bench(n_words=args.words, repeats=args.repeats, seconds=args.seconds,
                        golden_words=args.golden_words, threads=args.threads, data=Path(args.data),
                        log=lambda msg: print(msg, file=sys.stderr, flush=True))
    command = "pynq-sparse bench cpu" + "".join(f" {a}" for a in getattr(args, "argv", []))
    report = format_report(res, command)
    print(report)
    if not args.no_write:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("# CPU benchmark: sparse-sparse backend vs dense engines\n\n"
                       "Produced by `pynq-sparse bench cpu` (pynq_sparse/bench/cpu.py); rerun it to refresh.\n\n"
                       + report + "\n")
    speedup = res["rates"][("sparse cpu", 64)] / res["rates"][REFERENCE]
    print(f"speedup_vs_ort_fp32_batch64: {speedup:.1f}")
    return 0 if res["exact"] else 1


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m pynq_sparse.bench.cpu")
    add_arguments(_parser)
    _args = _parser.parse_args()
    _args.argv = sys.argv[1:]
    raise SystemExit(run(_args))
