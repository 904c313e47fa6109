"""The `.pskw` model file: packed int8 complementary-sparse layers, versioned and checksummed.

The format is specified in docs/golden_model.md section 5.

Usage::

    from pynq_sparse.model_file import load_model, save_model
    model = load_model()                 # the shipped model
    print(model.layers[0].n_pack, model.nonzero_weights)
    save_model(model, "copy.pskw")
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import (ChecksumError, InvalidModelError, ModelFormatError, NotAModelFileError,
                     TruncatedModelError, UnsupportedVersionError)

MAGIC = b"PSKWMDL\x00"
FORMAT_VERSION = 1
ALIGN = 64
_PREAMBLE = struct.Struct("<8sHHI")  # magic, version, reserved, header length
_DIGEST = 32
MULT_MIN, MULT_MAX = 1 << 14, (1 << 15) - 1
SHIFT_MIN, SHIFT_MAX = 1, 62
ACT_MAX = 127
WEIGHT_MAX = 127

DEFAULT_MODEL_PATH = Path(__file__).parent / "data" / "models" / "gsc_sparse_v1.pskw"

_ARRAYS = {  # name -> dtype, in payload order
    "packed_weights": np.dtype("int8"),
    "owner": np.dtype("uint8"),
    "bias": np.dtype("<i4"),
    "requant_mult": np.dtype("<i4"),
    "requant_shift": np.dtype("uint8"),
}


@dataclass
class Layer:
    """One complementary-sparse layer (conv or fc) in integer form.

    `packed_weights[g, i]` belongs to kernel `g * n_pack + owner[g, i]`.
    """

    name: str
    kind: str                      # "conv" or "fc"
    in_shape: tuple[int, ...]      # (C, H, W) for conv, (N,) for fc
    out_channels: int
    kernel_size: int               # 5 for conv, 0 for fc
    pool: int                      # 2 (2x2 max-pool) or 1 (none)
    n_pack: int                    # kernels per packed kernel
    k: int                         # k-WTA winners; 0 = final layer (scores)
    packed_weights: np.ndarray     # int8 [G, F]
    owner: np.ndarray              # uint8 [G, F]
    bias: np.ndarray               # int32 [C_out]
    requant_mult: np.ndarray       # int32 [C_out], [2^14, 2^15) (unused by the final layer)
    requant_shift: np.ndarray      # uint8 [C_out], 1..62
    acc_bits: int = 32             # signed accumulator bits that suffice

    @property
    def fan_in(self) -> int:
        """Inputs per kernel: C*k*k for conv, N for fc."""
        if self.kind == "conv":
            return self.in_shape[0] * self.kernel_size * self.kernel_size
        return int(np.prod(self.in_shape))

    @property
    def n_groups(self) -> int:
        """Packed kernels G = out_channels / n_pack."""
        return self.out_channels // self.n_pack

    @property
    def out_shape(self) -> tuple[int, ...]:
        """Shape after pooling: (C, H', W') for conv, (C_out,) for fc."""
        if self.kind == "conv":
            _, h, w = self.in_shape
            ho, wo = h - self.kernel_size + 1, w - self.kernel_size + 1
            return (self.out_channels, ho // self.pool, wo // self.pool)
        return (self.out_channels,)

    @property
    def is_final(self) -> bool:
        return self.k == 0

    def dense_weights(self) -> np.ndarray:
        """Unpack to the sparse dense matrix W[C_out, F] (int8), zeros where not owned."""
        g = np.arange(self.out_channels) // self.n_pack
        slot = np.arange(self.out_channels) % self.n_pack
        owned = self.owner[g] == slot[:, None]
        return np.where(owned, self.packed_weights[g], 0).astype(np.int8)

    @property
    def nonzero_weights(self) -> int:
        return int(np.count_nonzero(self.packed_weights))


@dataclass
class SparseModel:
    """A whole network: layers in order plus labels, front-end parameters and scales."""

    layers: list[Layer]
    labels: list[str]
    frontend: dict[str, Any]
    input_scale: float = 1.0 / 127.0
    score_scale: float = 1.0
    info: dict[str, Any] = field(default_factory=dict)
    model_id: int = 0              # filled in by save/load from the payload digest

    @property
    def nonzero_weights(self) -> int:
        return sum(layer.nonzero_weights for layer in self.layers)

    @property
    def n_classes(self) -> int:
        return len(self.labels)


def _payload(model: SparseModel) -> tuple[bytes, list[dict[str, Any]]]:
    chunks: list[bytes] = []
    offset = 0
    layer_headers = []
    for layer in model.layers:
        arrays = {}
        for name, dtype in _ARRAYS.items():
            arr = np.ascontiguousarray(getattr(layer, name), dtype=dtype)
            pad = (-offset) % ALIGN
            chunks.append(b"\0" * pad)
            offset += pad
            data = arr.tobytes()
            arrays[name] = {"dtype": dtype.str, "shape": list(arr.shape), "offset": offset,
                            "nbytes": len(data)}
            chunks.append(data)
            offset += len(data)
        layer_headers.append({
            "name": layer.name, "kind": layer.kind, "in_shape": list(layer.in_shape),
            "out_channels": layer.out_channels, "kernel_size": layer.kernel_size,
            "pool": layer.pool, "n_pack": layer.n_pack, "k": layer.k,
            "acc_bits": layer.acc_bits, "arrays": arrays})
    return b"".join(chunks), layer_headers


def model_to_bytes(model: SparseModel) -> bytes:
    """Serialise `model` (validated first) to the bytes of a `.pskw` file."""
    for layer in model.layers:
        layer.acc_bits = accumulator_bits(layer)
    validate_model(model)
    payload, layer_headers = _payload(model)
    model.model_id = int.from_bytes(hashlib.sha256(payload).digest()[:4], "little")
    header = {
        "labels": list(model.labels), "frontend": model.frontend,
        "input_scale": model.input_scale, "score_scale": model.score_scale,
        "model_id": model.model_id, "info": model.info, "layers": layer_headers,
    }
    head = json.dumps(header, indent=1, sort_keys=True).encode("utf-8")
    pre = _PREAMBLE.pack(MAGIC, FORMAT_VERSION, 0, len(head)) + head
    pre += b"\0" * ((-len(pre)) % ALIGN)
    body = pre + payload
    return body + hashlib.sha256(body).digest()


def save_model(model: SparseModel, path: str | Path) -> Path:
    """Write `model` to `path` and return the path."""
    path = Path(path)
    path.write_bytes(model_to_bytes(model))
    return path


def model_from_bytes(data: bytes, source: str = "<bytes>") -> SparseModel:
    """Parse and validate the bytes of a `.pskw` file (errors name `source`)."""
    if len(data) < _PREAMBLE.size:
        if not data or not MAGIC.startswith(bytes(data[:8])):
            raise NotAModelFileError(f"{source}: not a pynq-sparse model file (no {MAGIC!r} magic)")
        raise TruncatedModelError(f"{source}: file is {len(data)} bytes, shorter than the 16-byte preamble")
    magic, version, _reserved, head_len = _PREAMBLE.unpack_from(data, 0)
    if magic != MAGIC:
        raise NotAModelFileError(f"{source}: not a pynq-sparse model file (magic {magic!r}, expected {MAGIC!r})")
    if version != FORMAT_VERSION:
        raise UnsupportedVersionError(
            f"{source}: model format version {version}, this pynq-sparse reads version {FORMAT_VERSION}; "
            "re-export the model with a matching pynq-sparse")
    start = _PREAMBLE.size + head_len
    payload_start = start + (-start) % ALIGN
    if len(data) < payload_start + _DIGEST:
        raise TruncatedModelError(f"{source}: file is {len(data)} bytes, its header alone needs {payload_start + _DIGEST}")
    try:
        header = json.loads(bytes(data[_PREAMBLE.size:start]).decode("utf-8"))
        layer_headers = header["layers"]
        need = max((a["offset"] + a["nbytes"] for lh in layer_headers for a in lh["arrays"].values()), default=0)
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as err:
        if len(data) >= _DIGEST and hashlib.sha256(data[:-_DIGEST]).digest() != bytes(data[-_DIGEST:]):
            raise ChecksumError(f"{source}: checksum mismatch (the header is corrupt)") from err
        raise InvalidModelError(f"{source}: unreadable header: {err}") from err
    if len(data) < payload_start + need + _DIGEST:
        raise TruncatedModelError(
            f"{source}: file is {len(data)} bytes but its arrays need {payload_start + need + _DIGEST}; "
            "the file was cut short (re-copy or re-download it)")
    if len(data) > payload_start + need + _DIGEST + ALIGN:
        raise InvalidModelError(f"{source}: {len(data) - payload_start - need - _DIGEST} unexpected trailing bytes")
    body, digest = bytes(data[:-_DIGEST]), bytes(data[-_DIGEST:])
    if hashlib.sha256(body).digest() != digest:
        raise ChecksumError(f"{source}: SHA-256 mismatch: the file is corrupt (re-copy or re-export it)")
    payload = memoryview(body)[payload_start:]
    try:
        layers = [_layer_from_header(lh, payload) for lh in layer_headers]
        model = SparseModel(layers=layers, labels=list(header["labels"]), frontend=dict(header["frontend"]),
                            input_scale=float(header["input_scale"]), score_scale=float(header["score_scale"]),
                            info=dict(header.get("info", {})), model_id=int(header["model_id"]))
    except (KeyError, TypeError, ValueError) as err:
        raise InvalidModelError(f"{source}: malformed layer description: {err}") from err
    validate_model(model, source)
    return model


def _layer_from_header(lh: dict[str, Any], payload: memoryview) -> Layer:
    arrays = {}
    for name, dtype in _ARRAYS.items():
        spec = lh["arrays"][name]
        if np.dtype(spec["dtype"]) != dtype:
            raise ValueError(f"layer {lh['name']}: array {name} has dtype {spec['dtype']}, expected {dtype.str}")
        count = int(np.prod(spec["shape"]))
        if count * dtype.itemsize != spec["nbytes"]:
            raise ValueError(f"layer {lh['name']}: array {name} size does not match its shape")
        arr = np.frombuffer(payload, dtype=dtype, count=count, offset=spec["offset"])
        arrays[name] = arr.reshape(spec["shape"]).astype(dtype.newbyteorder("="))
    return Layer(name=str(lh["name"]), kind=str(lh["kind"]), in_shape=tuple(int(v) for v in lh["in_shape"]),
                 out_channels=int(lh["out_channels"]), kernel_size=int(lh["kernel_size"]), pool=int(lh["pool"]),
                 n_pack=int(lh["n_pack"]), k=int(lh["k"]), acc_bits=int(lh["acc_bits"]), **arrays)


def load_model(path: str | Path | None = None) -> SparseModel:
    """Load and validate a `.pskw` file; `None` loads the model shipped with the package."""
    path = Path(path) if path is not None else DEFAULT_MODEL_PATH
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelFormatError(f"model file not found: {path}") from None
    return model_from_bytes(data, str(path))


def as_model(model: "SparseModel | str | Path | bytes | None") -> SparseModel:
    """A SparseModel from a model, a path, the bytes of a `.pskw` file, or None (the shipped model)."""
    if isinstance(model, SparseModel):
        return model
    if isinstance(model, (bytes, bytearray, memoryview)):
        return model_from_bytes(bytes(model))
    return load_model(model)


def accumulator_bits(layer: Layer) -> int:
    """Signed bits that hold any accumulator of `layer` for inputs in 0..127."""
    w = layer.dense_weights().astype(np.int64)
    bound = np.abs(layer.bias.astype(np.int64)) + ACT_MAX * np.abs(w).sum(axis=1)
    return int(bound.max()).bit_length() + 1


def validate_model(model: SparseModel, source: str = "<model>") -> None:
    """Raise InvalidModelError unless `model` keeps every invariant of docs/golden_model.md."""
    def fail(msg: str) -> None:
        raise InvalidModelError(f"{source}: {msg}")

    if not model.layers:
        fail("no layers")
    shape: Sequence[int] | None = None
    for idx, layer in enumerate(model.layers):
        tag = f"layer {layer.name}"
        if layer.kind not in ("conv", "fc"):
            fail(f"{tag}: kind {layer.kind!r} is neither 'conv' nor 'fc'")
        if shape is not None and int(np.prod(shape)) != int(np.prod(layer.in_shape)):
            fail(f"{tag}: input {layer.in_shape} does not match the previous output {tuple(shape)}")
        if layer.kind == "conv" and (len(layer.in_shape) != 3 or layer.kernel_size < 1):
            fail(f"{tag}: conv layers need a (C, H, W) input and a kernel size")
        if layer.pool not in (1, 2) or (layer.kind == "fc" and layer.pool != 1):
            fail(f"{tag}: pool {layer.pool} not supported")
        if layer.n_pack < 1 or layer.out_channels % layer.n_pack:
            fail(f"{tag}: n_pack {layer.n_pack} does not divide {layer.out_channels} kernels")
        g, f = layer.n_groups, layer.fan_in
        for name, want in (("packed_weights", (g, f)), ("owner", (g, f)), ("bias", (layer.out_channels,)),
                           ("requant_mult", (layer.out_channels,)), ("requant_shift", (layer.out_channels,))):
            arr = getattr(layer, name)
            if tuple(arr.shape) != want:
                fail(f"{tag}: {name} has shape {tuple(arr.shape)}, expected {want}")
            if arr.dtype != _ARRAYS[name].newbyteorder("="):
                fail(f"{tag}: {name} has dtype {arr.dtype}, expected {_ARRAYS[name]}")
        if np.any(layer.packed_weights == -128):
            fail(f"{tag}: weight -128 is outside the symmetric range -127..127")
        if np.any(layer.owner >= layer.n_pack):
            fail(f"{tag}: owner id >= n_pack {layer.n_pack}")
        counts = np.stack([(layer.owner == s).sum(axis=1) for s in range(layer.n_pack)], axis=1)
        if counts.max() - counts.min() > 1:
            fail(f"{tag}: owners do not split the fan-in evenly (counts {counts.min()}..{counts.max()})")
        final = idx == len(model.layers) - 1
        if final != layer.is_final:
            fail(f"{tag}: only the last layer has k = 0 (no k-WTA)")
        n_out = int(np.prod(layer.out_shape))
        if not final:
            if not 0 < layer.k <= n_out:
                fail(f"{tag}: k = {layer.k} outside 1..{n_out}")
            if np.any(layer.requant_mult < MULT_MIN) or np.any(layer.requant_mult > MULT_MAX):
                fail(f"{tag}: requant_mult outside [{MULT_MIN}, {MULT_MAX}]")
            if np.any(layer.requant_shift < SHIFT_MIN) or np.any(layer.requant_shift > SHIFT_MAX):
                fail(f"{tag}: requant_shift outside [{SHIFT_MIN}, {SHIFT_MAX}]")
        if accumulator_bits(layer) > 32:
            fail(f"{tag}: |bias| + 127*sum|W| reaches 2^31: int32 accumulators could overflow")
        if layer.acc_bits < accumulator_bits(layer):
            fail(f"{tag}: acc_bits {layer.acc_bits} is too narrow")
        shape = layer.out_shape
    if len(model.labels) != int(np.prod(shape)):
        fail(f"{len(model.labels)} labels for {int(np.prod(shape))} scores")


def replace_layer(model: SparseModel, index: int, **changes: Any) -> SparseModel:
    """Return a copy of `model` with fields of layer `index` replaced (for tests and tools)."""
    layers = list(model.layers)
    layers[index] = dataclasses.replace(layers[index], **changes)
    return dataclasses.replace(model, layers=layers)
