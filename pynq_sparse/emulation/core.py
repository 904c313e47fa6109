"""Model of the sparse_kws core: register map, weight loader, N-copy map-reduce and stream framing.

It follows `pynq_sparse.core_interface` (docs/core_interface.md) to the bit:

* the AXI4-Lite registers of `REG` (CTRL, STATUS, ERROR W1C, counters, per-copy counters);
* the weight loader: WLOAD_CTRL BEGIN, image words through WLOAD_DATA, COMMIT checks the
  CRC (ERR_WEIGHT_CRC) and the layer shapes this "bitstream" was built for (ERR_WEIGHT_SHAPE);
  every copy gets its own weight memory with a parity bit per 32-bit word;
* the input stream: 128 beats (1,024 bytes) per word, TLAST allowed only on a word's last
  beat; TLAST elsewhere drops the partial word and sets ERR_TLAST; a word arriving with no
  model loaded is dropped (ERR_NO_MODEL);
* the map-reduce: word number s goes to copy s % n_copies; results leave in input order,
  64 bytes each (scores, class, sequence number, model_id, flags), the result of a word that
  carried TLAST carries TLAST;
* back-pressure: at most `fifo_words` results wait for the output stream; beyond that the
  input stream stalls (as the hardware FIFOs do).

Scores come from the weight memory of the copy that computed the word
(`compute.scorer_for_image`), so corrupting a copy's memory changes its results
and, unless the corruption keeps parity, raises ERR_WEIGHT_PARITY. With
`compute=False` the scores are zeros (the host-path benchmark). Cycle counters are
modelled: each word costs `cycles_per_word` cycles of its copy; CYCLES runs at
`fclk_mhz` in wall-clock time.

Usage::

    core = SparseKwsCoreModel("sparse_kws_0", n_copies=2, fclk_mhz=187.5, cycles_per_word=3750)
    core.write(REG.CTRL, CTRL_ENABLE)
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from .. import core_interface as ci
from ..architecture import ARCHITECTURE
from ..core_interface import REG
from ..errors import InvalidModelError
from .compute import model_from_image, scorer_for_image, with_fresh_crc

N_SCORES = 12           # result ints 0..11 (core_interface: "scores 0..11")
_U32 = 0xFFFF_FFFF


def _parity(words: np.ndarray) -> np.ndarray:
    """Even parity bit of each uint32 word."""
    w = np.asarray(words, dtype=np.uint32).copy()
    for shift in (16, 8, 4, 2, 1):
        w ^= w >> np.uint32(shift)
    return (w & np.uint32(1)).astype(np.uint8)


@dataclass
class _Copy:
    """One copy of the network: its weight memory, parity bits and counters."""

    image: np.ndarray | None = None          # uint32 words as loaded (possibly corrupted later)
    parity: np.ndarray | None = None         # parity bit stored with each word at load time
    parity_bad: bool = False
    scorer: object = None
    words: int = 0
    busy: int = 0
    stall: int = 0


@dataclass
class _Block:
    """Results waiting for m_axis: `count` consecutive words starting at sequence number `seq`."""

    seq: int
    count: int
    model_id: int
    scores: np.ndarray | None                # int32 [count, 12], None = zeros (compute off)
    tlast_last: bool
    done: int = 0                            # results already sent


def _layout(image: np.ndarray) -> list[dict[str, int]]:
    """Word offsets of each layer's fields in a weight image (see core_interface.weight_image)."""
    pos, out = 3, []
    for _ in range(int(image[2])):
        h = [int(v) for v in image[pos:pos + ci.LAYER_HEADER_WORDS]]
        n_pack, c_out, fan_in = (h[0] >> 16) & 0xFF, h[4], h[7]
        g = c_out // max(1, n_pack)
        entry = {"header": pos}
        pos += ci.LAYER_HEADER_WORDS
        entry["packed_weights"] = pos
        pos += (2 * g * fan_in + 3) // 4
        entry["bias"] = pos
        pos += c_out
        entry["requant_mult"] = pos
        pos += c_out
        entry["requant_shift"] = pos
        pos += (c_out + 3) // 4
        out.append(entry)
    return out


class SparseKwsCoreModel:
    """The sparse_kws IP with `n_copies` network copies behind a round-robin map-reduce."""

    unit_bytes = ci.RESULT_BYTES    # the output stream moves whole results

    def __init__(self, name: str, n_copies: int, fclk_mhz: float = 100.0, cycles_per_word: int = 2000,
                 compute: bool = True, backend: str = "auto", fifo_words_per_copy: int = 32) -> None:
        self.name = name
        self.n_copies = int(n_copies)
        self.fclk_mhz = float(fclk_mhz)
        self.cycles_per_word = int(cycles_per_word)
        self.compute = compute
        self.backend = backend
        self.fifo_words = fifo_words_per_copy * self.n_copies
        self.copies = [_Copy() for _ in range(self.n_copies)]
        self.model_id = 0
        self.model_loaded = False
        self._wload: list[int] = []
        self._loading = False
        self.enabled = False
        self.error = 0
        self._reset_pipeline()
        self._reset_counters()

    # --- state -------------------------------------------------------------------------
    def _reset_pipeline(self) -> None:
        self._partial = np.zeros(ci.WORD_BYTES, dtype=np.uint8)
        self._fill = 0
        self._out: deque[_Block] = deque()
        self._pending = 0          # results waiting in the output FIFO
        self._credit = 0

    def _reset_counters(self) -> None:
        self.words_in = 0
        self.words_out = 0
        self.stall_cycles = 0
        self._t0 = time.perf_counter()
        for c in self.copies:
            c.words = c.busy = c.stall = 0

    @property
    def compute_backend(self) -> str:
        """Name of the scoring backend of copy 0 ("cpu", "golden"), or "off"."""
        scorer = self.copies[0].scorer
        return getattr(scorer, "name", "off") if self.compute else "off"

    def set_compute(self, compute: bool) -> None:
        """Turn scoring on (scores from each copy's weight memory) or off (zero scores)."""
        self.compute = bool(compute)
        for c in self.copies:
            if not self.compute:
                c.scorer = None
            elif c.image is not None and c.scorer is None:
                try:
                    c.scorer = scorer_for_image(with_fresh_crc(c.image), self.backend)
                except (InvalidModelError, ValueError, IndexError):
                    c.scorer = None

    # --- registers ---------------------------------------------------------------------
    def read(self, offset: int) -> int:
        if offset == REG.STATUS:
            status = ci.STATUS_IDLE if (self._fill == 0 and self._pending == 0) else 0
            status |= ci.STATUS_MODEL_LOADED if self.model_loaded else 0
            status |= ci.STATUS_ERROR if self.error else 0
            status |= ci.STATUS_LOADING if self._loading else 0
            return status
        simple = {REG.ERROR: self.error, REG.MODEL_ID: self.model_id if self.model_loaded else 0,
                  REG.N_COPIES: self.n_copies, REG.VERSION: ci.CORE_VERSION, REG.WORDS_IN: self.words_in,
                  REG.WORDS_OUT: self.words_out, REG.STALL_CYCLES: self.stall_cycles,
                  REG.WLOAD_COUNT: len(self._wload)}
        if offset in simple:
            return simple[offset] & _U32
        if offset == REG.BUSY_CYCLES:
            return max(c.busy for c in self.copies) & _U32
        if offset == REG.CYCLES:
            return int((time.perf_counter() - self._t0) * self.fclk_mhz * 1e6) & _U32
        rel = offset - REG.COPY_BASE
        if 0 <= rel < self.n_copies * REG.COPY_STRIDE:
            c = self.copies[rel // REG.COPY_STRIDE]
            return {REG.COPY_WORDS: c.words, REG.COPY_BUSY: c.busy,
                    REG.COPY_STALL: c.stall}.get(rel % REG.COPY_STRIDE, 0) & _U32
        return 0

    def write(self, offset: int, value: int) -> None:
        if offset == REG.CTRL:
            if value & ci.CTRL_SOFT_RESET:
                self._reset_pipeline()
                self._reset_counters()
                self.error = 0
                self._wload, self._loading = [], False
            if value & ci.CTRL_CLEAR_COUNTERS:
                self._reset_counters()
            self.enabled = bool(value & ci.CTRL_ENABLE)
        elif offset == REG.ERROR:
            self.error &= ~value
        elif offset == REG.WLOAD_CTRL:
            if value & ci.WLOAD_BEGIN:
                self._wload, self._loading = [], True
            if value & ci.WLOAD_COMMIT:
                self._commit()
        elif offset == REG.WLOAD_DATA:
            if self._loading:
                self._wload.append(value & _U32)

    def write_block(self, offset: int, words: np.ndarray) -> None:
        """Several writes to one register (what the weight loader's data register receives)."""
        if offset == REG.WLOAD_DATA and self._loading:
            self._wload.extend(int(w) for w in np.asarray(words, dtype=np.uint32))
        else:
            for w in np.asarray(words, dtype=np.uint32):
                self.write(offset, int(w))

    # --- weight loader -----------------------------------------------------------------
    def _commit(self) -> None:
        image = np.array(self._wload, dtype="<u4")
        self._loading = False
        self.model_loaded, self.model_id = False, 0
        if not ci.image_crc_ok(image):
            self.error |= ci.ERR_WEIGHT_CRC
            return
        try:
            model = model_from_image(image)
        except (InvalidModelError, ValueError, IndexError):
            self.error |= ci.ERR_WEIGHT_SHAPE
            return
        if not self._fits(model):
            self.error |= ci.ERR_WEIGHT_SHAPE
            return
        scorer = scorer_for_image(image, self.backend) if self.compute else None
        parity = _parity(image)
        for c in self.copies:
            c.image, c.parity, c.parity_bad, c.scorer = image.copy(), parity.copy(), False, scorer
        self.model_id = int(image[1])
        self.model_loaded = True

    @staticmethod
    def _fits(model) -> bool:
        """The layer chain this bitstream's memories were sized for (pynq_sparse.architecture)."""
        if len(model.layers) != len(ARCHITECTURE):
            return False
        for layer, spec in zip(model.layers, ARCHITECTURE):
            if (layer.kind, tuple(layer.in_shape), layer.out_channels, layer.kernel_size, layer.pool,
                    layer.n_pack) != (spec.kind, spec.in_shape, spec.out_channels, spec.kernel_size, spec.pool,
                                      spec.n_pack):
                return False
        return True

    # --- input stream (s_axis) ---------------------------------------------------------
    def _space(self) -> int:
        return self.fifo_words - self._pending + self._credit

    def accept(self, data: np.ndarray, tlast: bool, credit: int = 0) -> int:
        """Take a prefix of the stream bytes `data` (`tlast` on its last beat); return the bytes taken.

        `credit`: results the output stream will take at once beyond those waiting (so a
        long transfer into an armed receiver is computed in one piece).
        """
        if not self.enabled:
            return 0
        self._credit = credit
        n, pos = data.size, 0
        if self._fill:
            if self._space() < 1:
                self.stall_cycles += 1
                return 0
            take = min(ci.WORD_BYTES - self._fill, n)
            self._partial[self._fill:self._fill + take] = data[:take]
            self._fill += take
            pos = take
            if self._fill == ci.WORD_BYTES:
                self._fill = 0
                self._words(self._partial.view(np.int8).reshape(1, 32, 32).copy(), tlast and pos == n)
            elif pos == n and tlast:
                self._framing_error()
            if pos == n:
                return n
        avail = (n - pos) // ci.WORD_BYTES
        k = min(avail, self._space())
        if k:
            end = pos + k * ci.WORD_BYTES
            self._words(data[pos:end].view(np.int8).reshape(k, 32, 32), tlast and end == n)
            pos = end
        if k < avail:
            self._stall(avail - k)
            return pos
        rest = n - pos
        if rest:
            if self._space() < 1:
                self._stall(1)
                return pos
            self._partial[:rest] = data[pos:]
            self._fill = rest
            pos = n
            if tlast:
                self._framing_error()
        return pos

    def _stall(self, words: int) -> None:
        self.stall_cycles += self.cycles_per_word

    def _framing_error(self) -> None:
        """TLAST inside a word: the partial word is dropped."""
        self._fill = 0
        self.error |= ci.ERR_TLAST

    def _words(self, words: np.ndarray, tlast_last: bool) -> None:
        """Compute `words` (int8 [k, 32, 32]) on their copies and queue the results in order."""
        k = len(words)
        if not self.model_loaded:
            self.error |= ci.ERR_NO_MODEL
            return
        seq0 = self.words_in
        copy_of = (seq0 + np.arange(k)) % self.n_copies
        scores = None
        if self.compute:
            scores = np.zeros((k, N_SCORES), dtype=np.int32)
            first = self.copies[0].scorer
            if all(c.scorer is first for c in self.copies):
                scores[:] = self._score(first, words)
            else:
                for ci_, c in enumerate(self.copies):
                    idx = np.flatnonzero(copy_of == ci_)
                    if idx.size:
                        scores[idx] = self._score(c.scorer, words[idx])
        counts = np.bincount(copy_of, minlength=self.n_copies)
        for c, cnt in zip(self.copies, counts):
            if cnt:
                c.words += int(cnt)
                c.busy += int(cnt) * self.cycles_per_word
                if c.parity_bad:
                    self.error |= ci.ERR_WEIGHT_PARITY
        self.words_in += k
        self._out.append(_Block(seq=seq0, count=k, model_id=self.model_id, scores=scores, tlast_last=tlast_last))
        self._pending += k

    @staticmethod
    def _score(scorer, words: np.ndarray) -> np.ndarray:
        if scorer is None:
            return np.zeros((len(words), N_SCORES), dtype=np.int32)
        try:
            return np.asarray(scorer.scores(np.ascontiguousarray(words)), dtype=np.int32)[:, :N_SCORES]
        except (OverflowError, ValueError, IndexError):     # a corrupted memory may break the arithmetic
            return np.zeros((len(words), N_SCORES), dtype=np.int32)

    # --- output stream (m_axis) --------------------------------------------------------
    def pending_bytes(self) -> int:
        return self._pending * ci.RESULT_BYTES

    def drain(self, dest: np.ndarray) -> tuple[int, bool]:
        """Write whole results into `dest` (uint8) up to its size or the first TLAST; (bytes, tlast)."""
        room = dest.size // ci.RESULT_BYTES
        written = 0
        out = dest[:room * ci.RESULT_BYTES].view(np.int32).reshape(room, ci.RESULT_INTS) if room else None
        while self._out and written < room:
            blk = self._out[0]
            n = min(blk.count - blk.done, room - written)
            ends_tlast = blk.tlast_last and blk.done + n == blk.count
            rows = out[written:written + n]
            lo = blk.done
            np.copyto(rows, self._template(n, blk.model_id))     # seq 0..n-1, model_id, zero scores
            rows[:, ci.RESULT_SEQ].view(np.uint32)[:] += np.uint32((blk.seq + lo) & _U32)   # mod 2^32
            if blk.scores is not None:
                rows[:, :N_SCORES] = blk.scores[lo:lo + n]
                rows[:, ci.RESULT_CLASS] = np.argmax(blk.scores[lo:lo + n], axis=1)
            if ends_tlast:
                rows[-1, ci.RESULT_FLAGS] = 1
            blk.done += n
            written += n
            self._pending -= n
            self.words_out += n
            if blk.done == blk.count:
                self._out.popleft()
            if ends_tlast:
                return written * ci.RESULT_BYTES, True
        return written * ci.RESULT_BYTES, False

    def _template(self, n: int, model_id: int) -> np.ndarray:
        """Result rows for sequence numbers 0..n-1 of `model_id` with zero scores and flags (cached)."""
        t = getattr(self, "_tmpl", None)
        if t is None or len(t) < n or self._tmpl_model != model_id:
            t = np.zeros((max(n, 1024), ci.RESULT_INTS), dtype=np.int32)
            t[:, ci.RESULT_SEQ] = np.arange(len(t), dtype=np.int32)
            t[:, ci.RESULT_MODEL_ID] = np.uint32(model_id).view(np.int32)
            self._tmpl, self._tmpl_model = t, model_id
        return t[:n]

    # --- faults ------------------------------------------------------------------------
    def corrupt_weights(self, copy: int = 0, layer: int = -1, field_name: str = "bias", index: int = 0,
                        bit: int = 16, parity: bool = True) -> int:
        """Flip one bit of copy `copy`'s weight memory; returns the image word index flipped.

        `field_name` is "packed_weights" (bit of the weight byte, 0..7), "bias", "requant_mult"
        (bit of the int32) or "requant_shift" (bit of the byte). With `parity=True` the stored
        parity no longer matches and the copy raises ERR_WEIGHT_PARITY when it computes; with
        `parity=False` the parity bit is flipped too (an undetectable double error).
        """
        c = self.copies[copy]
        if c.image is None:
            raise ValueError(f"{self.name}: no weights loaded, nothing to corrupt")
        offsets = _layout(c.image)[layer]
        if field_name == "packed_weights":
            byte = 2 * index
            word, bitpos = offsets[field_name] + byte // 4, (byte % 4) * 8 + bit
        elif field_name == "requant_shift":
            word, bitpos = offsets[field_name] + index // 4, (index % 4) * 8 + bit
        elif field_name in ("bias", "requant_mult"):
            word, bitpos = offsets[field_name] + index, bit
        else:
            raise ValueError(f"unknown field {field_name!r}")
        c.image[word] ^= np.uint32(1 << bitpos)
        if not parity:
            c.parity[word] ^= 1
        c.parity_bad = bool(np.any(_parity(c.image) != c.parity))
        if self.compute:
            try:
                c.scorer = scorer_for_image(with_fresh_crc(c.image), self.backend)
            except (InvalidModelError, ValueError, IndexError):
                c.scorer = None
        return word
