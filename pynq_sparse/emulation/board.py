"""Which board, which overlay files, and what the .hwh says about streams and memory windows.

Shared by the emulated device and by `pynq_sparse.overlay`.

Environment:

* ``PYNQ_SPARSE_BOARD`` (else ``BOARD``, as PYNQ images set it): the board whose overlay
  is used; one of `pynq_sparse.overlays.block_design.BOARDS` (default ``ultra96v2``).
* ``PYNQ_SPARSE_EMULATION``: ``auto`` (default: emulate only when no board is present),
  ``1``/``force``/``on`` (always emulate, even on a board), ``0``/``off`` (never).

Usage::

    board = board_name()                       # "ultra96v2"
    hwh = overlay_file(board, ".hwh")           # .../overlays/ultra96v2/sparse_kws.hwh
    topo = hwh_topology(hwh)                    # {"streams": {"axi_dma_0": "sparse_kws_0"}, ...}
"""
from __future__ import annotations

import os
import warnings
from functools import lru_cache
from pathlib import Path
from xml.etree import ElementTree as ET

from ..errors import DeviceError
from ..overlays.block_design import BOARDS, DEFAULT_BOARD, load_design

ENV_MODE = "PYNQ_SPARSE_EMULATION"
ENV_BOARD = "PYNQ_SPARSE_BOARD"
OVERLAY_NAME = "sparse_kws"
_FORCE, _OFF = {"1", "force", "on", "true", "yes"}, {"0", "off", "false", "no"}


def emulation_mode() -> str:
    """"auto", "force" or "off", from PYNQ_SPARSE_EMULATION (unknown values count as "auto", with a warning)."""
    raw = os.environ.get(ENV_MODE, "auto").strip().lower()
    if raw in _FORCE:
        return "force"
    if raw in _OFF:
        return "off"
    if raw not in ("", "auto"):
        warnings.warn(f"{ENV_MODE}={raw!r} is not one of auto, 1/force, 0/off; using auto", stacklevel=2)
    return "auto"


def known_board(name: str | None) -> str | None:
    """The canonical board name for `name` ("Ultra96V2" -> "ultra96v2"), or None if unknown."""
    if not name:
        return None
    try:
        return load_design(name)["board"]
    except ValueError:
        return None


def board_name(board: str | None = None) -> str:
    """The board to use: `board`, else PYNQ_SPARSE_BOARD, else BOARD, else ultra96v2.

    An explicit `board` or PYNQ_SPARSE_BOARD that names no known board raises DeviceError;
    an unknown BOARD (set by the OS image for boards this project has no overlay for)
    falls back to the default with a warning.
    """
    for source, value in (("board", board), (ENV_BOARD, os.environ.get(ENV_BOARD))):
        if value:
            found = known_board(value)
            if found is None:
                raise DeviceError(f"{source}={value!r}: no sparse-kws overlay for this board; "
                                  f"choose one of {', '.join(BOARDS)}")
            return found
    env = os.environ.get("BOARD")
    if env:
        found = known_board(env)
        if found is not None:
            return found
        warnings.warn(f"BOARD={env!r} has no sparse-kws overlay; using {DEFAULT_BOARD} "
                      f"(set {ENV_BOARD} to one of {', '.join(BOARDS)})", stacklevel=2)
    return DEFAULT_BOARD


def overlays_root() -> Path:
    """The folder holding overlays/<board>/ (the source tree's overlays/ or the installed package's)."""
    from .. import overlays
    return Path(overlays.__file__).resolve().parent


def overlay_file(board: str, suffix: str) -> Path:
    """overlays/<board>/sparse_kws<suffix> (it may not exist: bitstreams are built elsewhere)."""
    return overlays_root() / board_name(board) / f"{OVERLAY_NAME}{suffix}"


BITSTREAM_SUFFIXES = (".bit", ".xclbin")    # Zynq boards: .bit (+ .hwh); Alveo: .xclbin


def packaged_bitstream(board: str | None = None) -> Path | None:
    """The built bitstream of `board` in overlays/<board>/ (.bit, or .xclbin for Alveo), None if not built."""
    for suffix in BITSTREAM_SUFFIXES:
        path = overlay_file(board_name(board), suffix)
        if path.is_file():
            return path
    return None


def real_board_present() -> bool:
    """True when a PYNQ device other than the emulation would probe (FPGA manager or remote devices)."""
    if os.environ.get("PYNQ_REMOTE_DEVICES"):
        return True
    return Path("/sys/class/fpga_manager/fpga0/firmware").exists()


@lru_cache(maxsize=16)
def _topology(path: str, mtime: float) -> dict:
    root = ET.parse(path).getroot()
    buses: dict[str, list[tuple[str, str, str]]] = {}
    windows: dict[str, list[tuple[int, int]]] = {}
    types: dict[str, str] = {}
    params: dict[str, dict[str, str]] = {}
    for mod in root.iter("MODULE"):
        inst = mod.get("INSTANCE")
        types[inst] = mod.get("VLNV")
        plist = mod.find("PARAMETERS")
        params[inst] = {p.get("NAME"): p.get("VALUE") for p in plist} if plist is not None else {}
        for bus in mod.iter("BUSINTERFACE"):
            if bus.get("VLNV", "").endswith(":axis:1.0") and bus.get("BUSNAME") not in (None, "__NOC__"):
                buses.setdefault(bus.get("BUSNAME"), []).append((inst, bus.get("NAME"), bus.get("TYPE")))
        mm = mod.find("MEMORYMAP")
        if mm is not None:
            for rng in mm.iter("MEMRANGE"):
                if rng.get("MEMTYPE") == "MEMORY":
                    base, high = int(rng.get("BASEVALUE"), 16), int(rng.get("HIGHVALUE"), 16)
                    windows.setdefault(inst, [])
                    if (base, high - base + 1) not in windows[inst]:
                        windows[inst].append((base, high - base + 1))
    streams_out: dict[str, tuple[str, str]] = {}
    for ends in buses.values():
        masters = [e for e in ends if e[2] in ("MASTER", "INITIATOR")]
        slaves = [e for e in ends if e[2] in ("SLAVE", "TARGET")]
        for m in masters:
            for s in slaves:
                streams_out[f"{m[0]}/{m[1]}"] = (s[0], s[1])
    sysinfo = root.find("SYSTEMINFO")
    return {"streams": streams_out, "windows": windows, "types": types, "parameters": params,
            "board": sysinfo.get("BOARD") if sysinfo is not None else None}


def hwh_topology(hwh: str | Path) -> dict:
    """What the emulator and the driver need from a .hwh beyond pynq's ip_dict.

    Returns {"streams": {"<inst>/<master intf>": (inst, slave intf)}, "windows": {inst: [(base, size)]}
    (memory a master can address), "types": {inst: vlnv}, "parameters": {inst: {name: value}},
    "board": SYSTEMINFO BOARD}.
    """
    path = Path(hwh)
    if not path.is_file():
        raise DeviceError(f"metadata file {path} not found")
    return _topology(str(path.resolve()), path.stat().st_mtime)


def dma_core_pairs(hwh: str | Path) -> dict[str, str]:
    """{dma instance: core instance} for every DMA whose M_AXIS_MM2S feeds a core whose m_axis returns to it."""
    topo = hwh_topology(hwh)
    pairs = {}
    for src, (dst, dst_intf) in topo["streams"].items():
        inst, intf = src.split("/")
        if intf == "M_AXIS_MM2S":
            back = topo["streams"].get(f"{dst}/m_axis")
            if back is not None and back[0] == inst:
                pairs[inst] = dst
    return dict(sorted(pairs.items()))
