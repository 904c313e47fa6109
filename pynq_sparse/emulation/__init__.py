"""The emulated PYNQ device: the sparse-kws overlay as a Python model, so that PYNQ code runs with no board.

Importing this package registers `EmulatedDevice` with PYNQ's device probing.
With PYNQ_SPARSE_EMULATION unset or "auto" it becomes `pynq.Device.active_device`
when no board is present; "1"/"force" always, "0"/"off" never. The emulated board
is PYNQ_SPARSE_BOARD (else BOARD, else ultra96v2).

Usage::

    import pynq, pynq_sparse.emulation            # registers the device
    from pynq_sparse.overlay import SparseKwsOverlay
    ol = SparseKwsOverlay()                       # the real pynq.Overlay flow, on x86
    ol.device.inject_fault("dma_stall", engine=0) # make the next S2MM transfer hang

See docs/host_driver.md for the model's scope (what is and is not emulated).
"""
from .board import (ENV_BOARD, ENV_MODE, board_name, dma_core_pairs, emulation_mode, hwh_topology,
                    overlay_file, packaged_bitstream, real_board_present)
from .device import EmulatedDevice, reset_pynq_devices, use_emulated_device

__all__ = ["ENV_BOARD", "ENV_MODE", "EmulatedDevice", "board_name", "dma_core_pairs", "emulation_mode",
           "hwh_topology", "overlay_file", "packaged_bitstream", "real_board_present", "reset_pynq_devices",
           "use_emulated_device"]
