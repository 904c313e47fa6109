"""Block design of the sparse-kws overlay: one plain-data description per board, and its .hwh generator.

Usage::

    from pynq_sparse.overlays.block_design import load_design, BOARDS
    design = load_design("u250")      # dict: ps, dmas, cores, interconnects, connections, fclk_mhz
    python -m pynq_sparse.overlays.block_design.hwh --all     # regenerate overlays/<board>/sparse_kws.hwh
"""
from .design import BOARDS, DEFAULT_BOARD, load_design, total_copies

__all__ = ["BOARDS", "DEFAULT_BOARD", "load_design", "total_copies"]
