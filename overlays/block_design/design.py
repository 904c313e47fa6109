"""The sparse-kws block design of every board, as plain data: one source for the .hwh and the Vivado Tcl.

Each board is a dict built by `load_design(board)`. Nothing here is computed from
the environment: the same board always gives the same dict, so the generated
`.hwh` files (`overlays/<board>/sparse_kws.hwh`) and the Tcl the RTL flow writes
from this description cannot disagree.

Usage::

    from pynq_sparse.overlays.block_design import load_design, BOARDS
    design = load_design("ultra96v2")
    design["dmas"][0]["base_address"]          # 0xA0000000
    design["cores"][0]["n_copies"]            # 2
    python -m pynq_sparse.overlays.block_design.hwh --all     # rewrite every .hwh

Shape of the dict (every key is always present)::

    board            str    board name as PYNQ's BOARD variable spells it
    part             str    Xilinx part number
    family           str    "zynquplus" (Zynq UltraScale+ MPSoC) or "virtexuplus" (Alveo)
    system_name      str    block-design name (the .hwh SYSTEMINFO NAME)
    fclk_mhz         float  achieved PL clock of every DMA and core, MHz
    ps               dict   the processing system (or, on Alveo, the PCIe host stand-in):
        instance, vlnv, modtype, arch ("aarch64" | "x86_64"),
        pl_clocks    {index: {"enable": 0|1, "divisor0", "divisor1", "srcsel"}}, IOPLL = 1500 MHz
        master       name of the AXI master that reaches the register windows
        slave        name of the AXI slave the DMA engines write and read memory through
        memory       {"name", "base_address", "range"}: the window DMA engines may address
    dmas             list of AXI DMA engines (xilinx.com:ip:axi_dma:7.1, simple mode):
        name, vlnv, base_address, range, core (the sparse_kws instance it streams to), slr,
        parameters   the IP configuration (C_INCLUDE_SG 0, C_SG_LENGTH_WIDTH 26, 64-bit data)
    cores            list of sparse_kws instances (VLNV from pynq_sparse.core_interface):
        name, vlnv (core_interface.VLNV), base_address, range (core_interface.REG.ADDR_RANGE), n_copies, slr,
        config       name of the engine configuration of every copy (CORE_CONFIGS), and
        parameters   its sk_core parameters (the RTL generics the Vivado flow sets)
    interconnects    list of {"name", "vlnv", "slaves": [...], "masters": [...]} (AXI interface
                     names "<instance>/<interface>" upstream and downstream)
    connections      list of (initiator, target) interface pairs "<instance>/<interface>"
    resets           {"instance", "vlnv"}: the proc_sys_reset driving every aresetn
    modeled          {"words_per_s_per_copy", "words_per_s"}: the throughput model of this
                     board (a model, not a measurement; used by the emulator's cycle counters
                     and by `pynq-sparse bench host`)

Interface names of the sparse_kws core (the RTL must use them): clock `aclk`, reset
`aresetn`, AXI4-Lite slave `s_axi_control`, input stream `s_axis`, output stream `m_axis`.
"""
from __future__ import annotations

import copy

from pynq_sparse.core_interface import REG, STREAM_BYTES, VLNV

# --- IP identities used by every board --------------------------------------
DMA_VLNV = "xilinx.com:ip:axi_dma:7.1"
RESET_VLNV = "xilinx.com:ip:proc_sys_reset:5.0"
INTERCONNECT_VLNV = "xilinx.com:ip:axi_interconnect:2.1"
ZYNQ_US_PS_VLNV = "xilinx.com:ip:zynq_ultra_ps_e:3.3"
ALVEO_HOST_VLNV = "xilinx.com:ip:xdma:4.1"

IOPLL_MHZ = 33.333 * 90 / 2     # PS reference 33.333 MHz x FBDIV 90 / 2, as PYNQ's Clocks computes it
DMA_WINDOW = 0x1_0000           # register window of one AXI DMA (64 KB, as Vivado assigns)
SG_LENGTH_WIDTH = 26            # transfer length bits: up to 64 MB - 1 per transfer (PYNQ's maximum)

# Engine configurations of one network copy: sk_core parameters over its defaults. "fast" is
# sk_core as written (~1,600 cycles/word); "small" halves the multipliers of both conv engines,
# narrows fc1's readout, gives fc1 one accumulator buffer and keeps conv2's weights and readout
# copies in block RAM (~3,100 cycles/word, fewer LUTs, more BRAM: the LUT-bound ZU3EG);
# "small_lowbram" is "small" with conv2's readout copies in LUT RAM (2.5k LUT more, 40 BRAM36
# less: the BRAM-bound ZCU104).
# The RTL testbenches and overlays/scripts/reports.py read them from here.
CORE_CONFIGS = {
    "fast": {},
    "small": {"CONV1_PHASES": 4, "CONV2_PHASES": 2, "FC1_LANES": 2, "FC1_PINGPONG": 0, "CONV2_WBRAM": 1,
              "CONV2_RBRAM": 1},
    "small_lowbram": {"CONV1_PHASES": 4, "CONV2_PHASES": 2, "FC1_LANES": 2, "FC1_PINGPONG": 0, "CONV2_WBRAM": 1},
}


def _dma_parameters(addr_width: int) -> dict[str, str]:
    """AXI DMA configuration: simple (direct register) mode, 64-bit memory and stream data."""
    bits = str(8 * STREAM_BYTES)
    return {
        "C_INCLUDE_SG": "0",                 # simple mode: PYNQ's _SDMAChannel
        "C_SG_LENGTH_WIDTH": str(SG_LENGTH_WIDTH),
        "C_MICRO_DMA": "0",
        "C_INCLUDE_MM2S": "1",
        "C_INCLUDE_S2MM": "1",
        "C_M_AXI_MM2S_DATA_WIDTH": bits,
        "C_M_AXIS_MM2S_TDATA_WIDTH": bits,
        "C_M_AXI_S2MM_DATA_WIDTH": bits,
        "C_S_AXIS_S2MM_TDATA_WIDTH": bits,
        "C_MM2S_BURST_SIZE": "64",
        "C_S2MM_BURST_SIZE": "64",
        "C_INCLUDE_MM2S_DRE": "0",           # buffers must be 8-byte aligned (pynq.allocate gives 4 KB)
        "C_INCLUDE_S2MM_DRE": "0",
        "C_INCLUDE_MM2S_SF": "1",
        "C_INCLUDE_S2MM_SF": "1",
        "C_ADDR_WIDTH": str(addr_width),
        "C_M_AXI_MM2S_ADDR_WIDTH": str(addr_width),
        "C_M_AXI_S2MM_ADDR_WIDTH": str(addr_width),
        "C_S_AXI_LITE_ADDR_WIDTH": "10",
        "C_S_AXI_LITE_DATA_WIDTH": "32",
        "C_ENABLE_MULTI_CHANNEL": "0",
        "C_NUM_MM2S_CHANNELS": "1",
        "C_NUM_S2MM_CHANNELS": "1",
        "C_PRMRY_IS_ACLK_ASYNC": "0",
        "C_INCREASE_THROUGHPUT": "0",
    }


def _zynq_us_board(board: str, part: str, fclk_div0: int, n_copies: int, words_per_s_per_copy: int,
                   config: str = "small") -> dict:
    """A Zynq UltraScale+ board: one DMA on HP0, one sparse_kws instance with `n_copies` copies."""
    fclk = round(IOPLL_MHZ / fclk_div0, 6)
    return {
        "board": board,
        "part": part,
        "family": "zynquplus",
        "system_name": "sparse_kws",
        "fclk_mhz": fclk,
        "ps": {
            "instance": "zynq_ultra_ps_e_0",
            "vlnv": ZYNQ_US_PS_VLNV,
            "modtype": "zynq_ultra_ps_e",
            "arch": "aarch64",
            "pl_clocks": {0: {"enable": 1, "divisor0": fclk_div0, "divisor1": 1, "srcsel": "IOPLL"},
                          1: {"enable": 0, "divisor0": 4, "divisor1": 1, "srcsel": "IOPLL"},
                          2: {"enable": 0, "divisor0": 4, "divisor1": 1, "srcsel": "IOPLL"},
                          3: {"enable": 0, "divisor0": 4, "divisor1": 1, "srcsel": "IOPLL"}},
            "master": "M_AXI_HPM0_FPD",
            "slave": "S_AXI_HP0_FPD",
            "memory": {"name": "HP0_DDR_LOW", "base_address": 0x0000_0000, "range": 0x8000_0000},
        },
        "dmas": [{"name": "axi_dma_0", "vlnv": DMA_VLNV, "base_address": 0xA000_0000, "range": DMA_WINDOW,
                  "core": "sparse_kws_0", "slr": 0, "parameters": _dma_parameters(32)}],
        "cores": [{"name": "sparse_kws_0", "vlnv": VLNV, "base_address": 0xA001_0000, "range": REG.ADDR_RANGE,
                   "n_copies": n_copies, "slr": 0, "config": config,
                   "parameters": dict(CORE_CONFIGS[config])}],
        "modeled": {"words_per_s_per_copy": words_per_s_per_copy,
                    "words_per_s": words_per_s_per_copy * n_copies},
    }


def _u250() -> dict:
    """Alveo U250: 4 SLRs, one DMA and one 5-copy sparse_kws instance per SLR (20 copies)."""
    n_slr, copies_per_slr = 4, 5
    dmas, cores = [], []
    for slr in range(n_slr):
        dmas.append({"name": f"axi_dma_{slr}", "vlnv": DMA_VLNV, "base_address": 0x0010_0000 + 0x2_0000 * slr, "range": DMA_WINDOW,
                     "core": f"sparse_kws_{slr}", "slr": slr, "parameters": _dma_parameters(64)})
        cores.append({"name": f"sparse_kws_{slr}", "vlnv": VLNV, "base_address": 0x0011_0000 + 0x2_0000 * slr,
                      "range": REG.ADDR_RANGE, "n_copies": copies_per_slr, "slr": slr, "config": "fast",
                      "parameters": dict(CORE_CONFIGS["fast"])})
    return {
        "board": "u250",
        "part": "xcu250-figd2104-2L-e",
        "family": "virtexuplus",
        "system_name": "sparse_kws",
        "fclk_mhz": round(IOPLL_MHZ / 5, 6),
        # PYNQ 4 cannot drive Alveo cards; this description exists for the emulated device and
        # for the Vitis/XDMA flow. The PCIe host bridge stands in as the processing system so
        # that pynqmetadata resolves the address map (it requires a PS); its clock 0 describes
        # the shell's kernel clock (300 MHz), which the emulated device models.
        "ps": {
            "instance": "pcie_host",
            "vlnv": ALVEO_HOST_VLNV,
            "modtype": "zynq_ultra_ps_e",
            "arch": "x86_64",
            "pl_clocks": {0: {"enable": 1, "divisor0": 5, "divisor1": 1, "srcsel": "IOPLL"},
                          **{i: {"enable": 0, "divisor0": 4, "divisor1": 1, "srcsel": "IOPLL"} for i in (1, 2, 3)}},
            "master": "M_AXI_B",
            "slave": "S_AXI_DDR",
            # 4 DDR4 banks of 16 GB, one per SLR; the shell's memory subsystem joins them
            "memory": {"name": "DDR4_BANKS", "base_address": 0x0_0000_0000, "range": 0x10_0000_0000},
        },
        "dmas": dmas,
        "cores": cores,
        "modeled": {"words_per_s_per_copy": 200_000, "words_per_s": 200_000 * n_slr * copies_per_slr},
    }


def _finish(design: dict) -> dict:
    """Add the parts every board shares: reset, interconnects and the connection list."""
    ps = design["ps"]
    design["resets"] = {"instance": "rst_pl_0", "vlnv": RESET_VLNV}
    ctrl_targets = []
    for dma in design["dmas"]:
        ctrl_targets += [f"{dma['name']}/S_AXI_LITE", f"{dma['core']}/s_axi_control"]
    mem_initiators = []
    for dma in design["dmas"]:
        mem_initiators += [f"{dma['name']}/M_AXI_MM2S", f"{dma['name']}/M_AXI_S2MM"]
    design["interconnects"] = [
        {"name": "ctrl_ic", "vlnv": INTERCONNECT_VLNV,
         "slaves": [f"{ps['instance']}/{ps['master']}"], "masters": ctrl_targets},
        {"name": "mem_ic", "vlnv": INTERCONNECT_VLNV,
         "slaves": mem_initiators, "masters": [f"{ps['instance']}/{ps['slave']}"]},
    ]
    conns = [(f"{ps['instance']}/{ps['master']}", "ctrl_ic/S00_AXI")]
    conns += [(f"ctrl_ic/M{i:02d}_AXI", target) for i, target in enumerate(ctrl_targets)]
    conns += [(initiator, f"mem_ic/S{i:02d}_AXI") for i, initiator in enumerate(mem_initiators)]
    conns += [("mem_ic/M00_AXI", f"{ps['instance']}/{ps['slave']}")]
    for dma in design["dmas"]:
        conns += [(f"{dma['name']}/M_AXIS_MM2S", f"{dma['core']}/s_axis"),
                  (f"{dma['core']}/m_axis", f"{dma['name']}/S_AXIS_S2MM")]
    design["connections"] = conns
    return design


BOARDS = {
    # Ultra96-V2, ZU3EG: 1 copy of the small configuration (the report: one fits 80 % of the LUTs, two
    # do not; the brief's model: ~50k words/s per copy)
    "ultra96v2": lambda: _zynq_us_board("ultra96v2", "xczu3eg-sbva484-1-i", 8, 1, 50_000),
    # ZCU104, XCZU7EV: 3.3x the LUTs and 4.8x the DSPs of the ZU3EG, but only 1.4x its block RAM:
    # 2 copies of small_lowbram (BRAM-bound: the configuration and count the report gives it)
    "zcu104": lambda: _zynq_us_board("zcu104", "xczu7ev-ffvc1156-2-e", 8, 2, 50_000, config="small_lowbram"),
    # KV260, K26 SOM (XCK26): 1.7x the LUTs of the ZU3EG; 1 copy of the fast engines (one fast copy
    # models more words/s than small ones, overlays/reports/report.md)
    "kv260": lambda: _zynq_us_board("kv260", "xck26-sfvc784-2LV-c", 8, 1, 50_000, config="fast"),
    # Alveo U250: 20 copies, 5 per SLR, one DMA engine per SLR (the configuration; the
    # report's yosys estimate fits 14 at 80 %: Vivado's own utilisation decides on a real build)
    "u250": _u250,
}
DEFAULT_BOARD = "ultra96v2"


def load_design(board: str = DEFAULT_BOARD) -> dict:
    """The block design of `board` (a fresh copy: callers may modify it).

    Raises ValueError naming the known boards when `board` is not one of them.
    """
    key = board.lower().replace("-", "").replace("_", "")
    aliases = {"ultra96": "ultra96v2", "ultra96v2": "ultra96v2", "zcu104": "zcu104", "kv260": "kv260",
               "u250": "u250", "alveou250": "u250"}
    if key not in aliases:
        raise ValueError(f"unknown board {board!r}; the block design exists for {', '.join(BOARDS)}")
    return copy.deepcopy(_finish(BOARDS[aliases[key]]()))


def total_copies(design: dict) -> int:
    """Copies of the network in the whole design (sum over sparse_kws instances)."""
    return sum(core["n_copies"] for core in design["cores"])
