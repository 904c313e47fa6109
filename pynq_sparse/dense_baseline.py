"""The dense baseline (same architecture, same data, fp32) for comparisons, stored with fp16 weights.

The baseline ships as `data/models/gsc_dense_fp16.onnx` (weights rounded to float16 to keep
the package small); `dense_onnx_bytes()` returns the same graph with float32 weights, which is
what the model card and `pynq-sparse bench cpu` run with ONNX Runtime.

Usage::

    from pynq_sparse.dense_baseline import dense_session
    sess = dense_session(threads=2)
    logits = sess.run(["logits"], {"words": words[:, None].astype("float32") / 127})[0]
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .model_file import DEFAULT_MODEL_PATH

DENSE_FP16_PATH = DEFAULT_MODEL_PATH.parent / "gsc_dense_fp16.onnx"


def compress_onnx(src: str | Path, dst: str | Path = DENSE_FP16_PATH) -> Path:
    """Write a copy of the fp32 ONNX model `src` whose float32 initializers are stored as float16."""
    import onnx
    from onnx import numpy_helper
    model = onnx.load(str(src))
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.float32:
            init.CopyFrom(numpy_helper.from_array(arr.astype(np.float16), init.name))
    model.doc_string = "pynq-sparse dense baseline; float16-stored weights, run with float32 weights"
    onnx.save(model, str(dst))
    return Path(dst)


def dense_onnx_bytes(path: str | Path = DENSE_FP16_PATH) -> bytes:
    """The dense baseline as a float32 ONNX model (float16-stored initializers cast up)."""
    import onnx
    from onnx import numpy_helper
    model = onnx.load(str(path))
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.float16:
            init.CopyFrom(numpy_helper.from_array(arr.astype(np.float32), init.name))
    return model.SerializeToString()


def dense_session(threads: int = 2, path: str | Path = DENSE_FP16_PATH):
    """An onnxruntime InferenceSession of the fp32 dense baseline (input `words` [B,1,32,32], output `logits`)."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(dense_onnx_bytes(path), opts, providers=["CPUExecutionProvider"])


def dense_logits(words: np.ndarray, threads: int = 2, batch: int = 256) -> np.ndarray:
    """Logits [B, 12] of the dense baseline for int8 words [B, 32, 32]."""
    sess = dense_session(threads)
    x = (words.astype(np.float32) / 127.0)[:, None]
    return np.concatenate([sess.run(["logits"], {"words": x[i:i + batch]})[0] for i in range(0, len(x), batch)])
