"""The sparse-kws core's interface, defined once: stream formats, register map, weight image.

The RTL (`overlays/rtl/`), the emulated device (`pynq_sparse/emulation/`), the
IP driver and the block-design description all import these numbers instead
of repeating them. docs/core_interface.md explains them in prose.

Usage::

    from pynq_sparse.core_interface import REG, weight_image, parse_weight_image
    image = weight_image(load_model())        # uint32 words to write through WLOAD_DATA
    model_layers = parse_weight_image(image)  # what a core holds after loading
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from .errors import InvalidModelError
from .model_file import Layer, SparseModel

VLNV = "numenta-pynq-sparse:kws:sparse_kws:1.0"   # vendor:library:name:version of the core IP
CORE_VERSION = 0x0001_0000                         # major.minor in the VERSION register

# --- AXI4-Stream formats ----------------------------------------------------
STREAM_BYTES = 8                    # TDATA width of both streams (64 bits)
WORD_BYTES = 32 * 32                # one int8 spectrogram: cell (h, w) at byte h*32 + w
WORD_BEATS = WORD_BYTES // STREAM_BYTES            # 128 input beats per word
RESULT_INTS = 16                    # one result: 16 int32 (little-endian) = 64 bytes
RESULT_BYTES = RESULT_INTS * 4
RESULT_BEATS = RESULT_BYTES // STREAM_BYTES        # 8 output beats per word
# result layout (int32 index): scores 0..11, then:
RESULT_CLASS = 12                   # argmax, ties to the lowest index
RESULT_SEQ = 13                     # sequence number of the word in the core (mod 2^32)
RESULT_MODEL_ID = 14                # model_id of the weights that computed it
RESULT_FLAGS = 15                   # bit 0: the input word ended a transfer (had TLAST)
# TLAST on input: may be set on the last beat of any word; it marks the end of a
# transfer (batch). TLAST on any other beat is a framing error (ERR_TLAST): the
# partial word is dropped. The result of a word that carried TLAST carries TLAST.

# --- AXI4-Lite register map (byte offsets) ----------------------------------
class REG:
    """Register offsets of the core's AXI4-Lite slave (32-bit registers)."""

    CTRL = 0x00          # W: bit0 SOFT_RESET (self-clearing), bit1 ENABLE, bit2 CLEAR_COUNTERS (self-clearing)
    STATUS = 0x04        # R: bit0 IDLE, bit1 MODEL_LOADED, bit2 ERROR (any ERR bit set), bit3 LOADING
    ERROR = 0x08         # R/W1C: error flags below
    MODEL_ID = 0x0C      # R: model_id of the loaded weights (0 when none)
    N_COPIES = 0x10      # R: core copies behind the map-reduce
    VERSION = 0x14       # R: CORE_VERSION
    WORDS_IN = 0x20      # R: words accepted (all copies)
    WORDS_OUT = 0x24     # R: results emitted
    BUSY_CYCLES = 0x28   # R: cycles with any copy busy (low 32 bits)
    STALL_CYCLES = 0x2C  # R: cycles the output was valid but not ready (low 32 bits)
    CYCLES = 0x30        # R: free-running cycle counter since reset (low 32 bits)
    WLOAD_CTRL = 0x40    # W: bit0 BEGIN (clears the loader), bit1 COMMIT (check CRC, activate)
    WLOAD_DATA = 0x44    # W: next 32-bit word of the weight image
    WLOAD_COUNT = 0x48   # R: words received since BEGIN
    COPY_BASE = 0x100    # per copy i at COPY_BASE + i*COPY_STRIDE:
    COPY_STRIDE = 0x10
    COPY_WORDS = 0x0     #   words computed by copy i
    COPY_BUSY = 0x4      #   busy cycles of copy i
    COPY_STALL = 0x8     #   cycles copy i held a result its output FIFO could not take
    ADDR_RANGE = 0x1000  # size of the register window


CTRL_SOFT_RESET, CTRL_ENABLE, CTRL_CLEAR_COUNTERS = 1 << 0, 1 << 1, 1 << 2
STATUS_IDLE, STATUS_MODEL_LOADED, STATUS_ERROR, STATUS_LOADING = 1 << 0, 1 << 1, 1 << 2, 1 << 3
WLOAD_BEGIN, WLOAD_COMMIT = 1 << 0, 1 << 1
ERR_TLAST = 1 << 0          # TLAST inside a word
ERR_WEIGHT_CRC = 1 << 1     # weight image CRC mismatch at COMMIT (model stays unloaded)
ERR_WEIGHT_SHAPE = 1 << 2   # weight image shapes do not match this bitstream
ERR_NO_MODEL = 1 << 3       # a word arrived while no model is loaded (it is dropped)
ERR_WEIGHT_PARITY = 1 << 4  # a weight memory read returned a word whose parity is wrong
ERROR_NAMES = {ERR_TLAST: "TLAST inside a word", ERR_WEIGHT_CRC: "weight image CRC mismatch",
               ERR_WEIGHT_SHAPE: "weight image does not fit this bitstream",
               ERR_NO_MODEL: "word received with no model loaded",
               ERR_WEIGHT_PARITY: "weight memory parity error"}

# --- weight image -----------------------------------------------------------
IMAGE_MAGIC = 0x5053_4B57   # 'PSKW'
LAYER_HEADER_WORDS = 8       # kind|pool<<8|n_pack<<16, in_c, in_h, in_w, out_channels, kernel_size, k, fan_in


@dataclass
class ImageLayer:
    """Per-layer content of a weight image (what a core's memories hold)."""

    kind: str
    pool: int
    n_pack: int
    in_shape: tuple[int, ...]
    out_channels: int
    kernel_size: int
    k: int
    fan_in: int
    packed_weights: np.ndarray   # int8 [G, F]
    owner: np.ndarray            # uint8 [G, F]
    bias: np.ndarray             # int32 [C_out]
    requant_mult: np.ndarray     # int32 [C_out]
    requant_shift: np.ndarray    # uint8 [C_out]


def _words(data: np.ndarray) -> np.ndarray:
    raw = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
    raw = np.concatenate([raw, np.zeros((-raw.size) % 4, np.uint8)])
    return raw.view("<u4")


def weight_image(model: SparseModel) -> np.ndarray:
    """Serialise `model` to the uint32 words a core loads through WLOAD_DATA.

    Layout: magic, model_id, n_layers; per layer an 8-word header, then the
    packed entries (16 bits each: weight byte | owner << 8, two per word,
    group-major), bias (int32 each), mult (int32 each), shift (one byte each,
    four per word); last, the CRC-32 (zlib) of all previous words' bytes.
    """
    parts = [np.array([IMAGE_MAGIC, model.model_id, len(model.layers)], dtype="<u4")]
    for layer in model.layers:
        kind = 0 if layer.kind == "conv" else 1
        shape = list(layer.in_shape) + [1] * (3 - len(layer.in_shape))
        parts.append(np.array([kind | layer.pool << 8 | layer.n_pack << 16, *shape, layer.out_channels,
                               layer.kernel_size, layer.k, layer.fan_in], dtype="<u4"))
        entries = (layer.packed_weights.astype(np.uint8).astype(np.uint16)
                   | (layer.owner.astype(np.uint16) << 8))
        parts += [_words(entries.astype("<u2")), _words(layer.bias.astype("<i4")),
                  _words(layer.requant_mult.astype("<i4")), _words(layer.requant_shift.astype(np.uint8))]
    body = np.concatenate(parts).astype("<u4")
    crc = zlib.crc32(body.tobytes()) & 0xFFFF_FFFF
    return np.append(body, np.uint32(crc)).astype("<u4")


def image_crc_ok(image: np.ndarray) -> bool:
    """True when the last word of `image` is the CRC-32 of the words before it."""
    image = np.asarray(image, dtype="<u4")
    return image.size > 1 and (zlib.crc32(image[:-1].tobytes()) & 0xFFFF_FFFF) == int(image[-1])


def parse_weight_image(image: np.ndarray) -> tuple[int, list[ImageLayer]]:
    """Inverse of `weight_image`: (model_id, layers). Raises InvalidModelError on a bad image."""
    image = np.asarray(image, dtype="<u4")
    if not image_crc_ok(image):
        raise InvalidModelError("weight image CRC mismatch")
    if image[0] != IMAGE_MAGIC:
        raise InvalidModelError("weight image has no PSKW magic")
    model_id, n_layers = int(image[1]), int(image[2])
    pos, layers = 3, []

    def take(nbytes: int, dtype: str) -> np.ndarray:
        nonlocal pos
        nwords = (nbytes + 3) // 4
        if pos + nwords > image.size - 1:
            raise InvalidModelError("weight image is shorter than its layer headers say")
        raw = image[pos:pos + nwords].tobytes()[:nbytes]
        pos += nwords
        return np.frombuffer(raw, dtype=dtype).copy()

    for _ in range(n_layers):
        h = [int(v) for v in take(4 * LAYER_HEADER_WORDS, "<u4")]
        kind = "conv" if h[0] & 0xFF == 0 else "fc"
        pool, n_pack = (h[0] >> 8) & 0xFF, (h[0] >> 16) & 0xFF
        in_shape = tuple(h[1:4]) if kind == "conv" else (h[1],)
        out_channels, kernel_size, k, fan_in = h[4], h[5], h[6], h[7]
        if n_pack == 0 or out_channels % n_pack:
            raise InvalidModelError("weight image layer header is inconsistent")
        g = out_channels // n_pack
        entries = take(2 * g * fan_in, "<u2").reshape(g, fan_in)
        layers.append(ImageLayer(
            kind=kind, pool=pool, n_pack=n_pack, in_shape=in_shape, out_channels=out_channels,
            kernel_size=kernel_size, k=k, fan_in=fan_in,
            packed_weights=(entries & 0xFF).astype(np.uint8).view(np.int8),
            owner=(entries >> 8).astype(np.uint8),
            bias=take(4 * out_channels, "<i4").astype(np.int32),
            requant_mult=take(4 * out_channels, "<i4").astype(np.int32),
            requant_shift=take(out_channels, "u1").astype(np.uint8)))
    if pos != image.size - 1:
        raise InvalidModelError("weight image has trailing words")
    return model_id, layers


def image_to_model(image: np.ndarray, template: SparseModel) -> SparseModel:
    """A SparseModel holding the weights of `image` and the labels/scales of `template`."""
    model_id, layers = parse_weight_image(image)
    out = [Layer(name=t.name, kind=il.kind, in_shape=il.in_shape, out_channels=il.out_channels,
                 kernel_size=il.kernel_size, pool=il.pool, n_pack=il.n_pack, k=il.k,
                 packed_weights=il.packed_weights, owner=il.owner, bias=il.bias,
                 requant_mult=il.requant_mult, requant_shift=il.requant_shift, acc_bits=t.acc_bits)
           for il, t in zip(layers, template.layers)]
    return SparseModel(layers=out, labels=template.labels, frontend=template.frontend,
                       input_scale=template.input_scale, score_scale=template.score_scale,
                       info=template.info, model_id=model_id)
