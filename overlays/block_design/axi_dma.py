"""Register map of the AXI DMA engine (xilinx.com:ip:axi_dma:7.1, PG021) in simple mode, defined once.

The .hwh generator writes it into each DMA's ADDRESSBLOCK, the emulated device
models it, and the host driver's timeout-guarded waits read DMASR through it.
Offsets are relative to the DMA's base address; MM2S (memory to stream) and
S2MM (stream to memory) channels have the same layout 0x30 bytes apart.

Usage::

    from pynq_sparse.overlays.block_design.axi_dma import DMA_REG, SR_IDLE, channel_offset
    status = dma.mmio.read(channel_offset("s2mm") + DMA_REG.DMASR)
"""
from __future__ import annotations


class DMA_REG:
    """Offsets within one channel; add `channel_offset(channel)`."""

    DMACR = 0x00        # control
    DMASR = 0x04        # status
    ADDR = 0x18         # MM2S_SA / S2MM_DA: buffer address, low 32 bits
    ADDR_MSB = 0x1C     # high 32 bits (used when the address width exceeds 32)
    LENGTH = 0x28       # bytes to transfer; writing it starts the transfer; S2MM reads back bytes received


MM2S_OFFSET = 0x00
S2MM_OFFSET = 0x30

# DMACR bits
CR_RS = 1 << 0              # run/stop
CR_RESET = 1 << 2           # soft reset of the whole engine (both channels); self-clearing
CR_IOC_IRQ_EN = 1 << 12
CR_ERR_IRQ_EN = 1 << 14
CR_RESET_VALUE = 0x0001_0002
# DMASR bits
SR_HALTED = 1 << 0          # channel stopped (RS = 0, or halted by an error)
SR_IDLE = 1 << 1            # simple mode: the last transfer finished
SR_SG_INCLUDED = 1 << 3
SR_INT_ERR = 1 << 4         # internal error: length 0, or (S2MM) a packet longer than the buffer
SR_SLV_ERR = 1 << 5         # slave error on the memory-mapped side
SR_DEC_ERR = 1 << 6         # decode error: the address maps to no memory
SR_ERRORS = SR_INT_ERR | SR_SLV_ERR | SR_DEC_ERR
SR_IOC_IRQ = 1 << 12        # transfer complete (write 1 to clear)
SR_ERR_IRQ = 1 << 14
SR_RESET_VALUE = SR_HALTED
SR_ERROR_NAMES = {SR_INT_ERR: "internal error (zero length, or a packet longer than the buffer)",
                  SR_SLV_ERR: "slave error (memory did not accept the access)",
                  SR_DEC_ERR: "decode error (the buffer address maps to no memory)"}


def channel_offset(channel: str) -> int:
    """Base offset of `channel` ("mm2s" or "s2mm") in the DMA's register window."""
    if channel == "mm2s":
        return MM2S_OFFSET
    if channel == "s2mm":
        return S2MM_OFFSET
    raise ValueError(f"channel must be 'mm2s' or 's2mm', got {channel!r}")


def describe_status(status: int) -> str:
    """Readable summary of a DMASR value, e.g. 'running, busy' or 'halted, decode error (...)'."""
    parts = ["halted" if status & SR_HALTED else "running", "idle" if status & SR_IDLE else "busy"]
    parts += [name for bit, name in SR_ERROR_NAMES.items() if status & bit]
    return ", ".join(parts)


_CR_FIELDS = [("RS", 0, 1, "Run / stop"), ("Reset", 2, 1, "Soft reset of the engine"),
              ("Keyhole", 3, 1, "Keyhole read/write"), ("Cyclic_BD_Enable", 4, 1, "Cyclic BD (SG only)"),
              ("IOC_IrqEn", 12, 1, "Interrupt on complete enable"), ("Dly_IrqEn", 13, 1, "Delay interrupt enable"),
              ("Err_IrqEn", 14, 1, "Error interrupt enable"), ("IRQThreshold", 16, 8, "Interrupt threshold"),
              ("IRQDelay", 24, 8, "Interrupt delay")]
_SR_FIELDS = [("Halted", 0, 1, "Channel halted"), ("Idle", 1, 1, "Transfer complete"),
              ("SGIncld", 3, 1, "Scatter-gather included"), ("DMAIntErr", 4, 1, "Internal error"),
              ("DMASlvErr", 5, 1, "Slave error"), ("DMADecErr", 6, 1, "Decode error"),
              ("SGIntErr", 8, 1, "SG internal error"), ("SGSlvErr", 9, 1, "SG slave error"),
              ("SGDecErr", 10, 1, "SG decode error"), ("IOC_Irq", 12, 1, "Interrupt on complete"),
              ("Dly_Irq", 13, 1, "Delay interrupt"), ("Err_Irq", 14, 1, "Error interrupt"),
              ("IRQThresholdSts", 16, 8, "Interrupt threshold status"),
              ("IRQDelaySts", 24, 8, "Interrupt delay status")]


def register_table() -> list[dict]:
    """Every register as {name, offset, access, reset, description, fields: [(name, lsb, width, text)]}."""
    table = []
    for prefix, base, addr_name in (("MM2S", MM2S_OFFSET, "SA"), ("S2MM", S2MM_OFFSET, "DA")):
        table += [
            {"name": f"{prefix}_DMACR", "offset": base + DMA_REG.DMACR, "access": "read-write",
             "reset": CR_RESET_VALUE, "description": f"{prefix} DMA Control Register", "fields": _CR_FIELDS},
            {"name": f"{prefix}_DMASR", "offset": base + DMA_REG.DMASR, "access": "read-write",
             "reset": SR_RESET_VALUE, "description": f"{prefix} DMA Status Register", "fields": _SR_FIELDS},
            {"name": f"{prefix}_{addr_name}", "offset": base + DMA_REG.ADDR, "access": "read-write", "reset": 0,
             "description": f"{prefix} buffer address (low 32 bits)",
             "fields": [(f"{'Source' if prefix == 'MM2S' else 'Destination'}_Address", 0, 32, "Buffer address")]},
            {"name": f"{prefix}_{addr_name}_MSB", "offset": base + DMA_REG.ADDR_MSB, "access": "read-write",
             "reset": 0, "description": f"{prefix} buffer address (high 32 bits)",
             "fields": [(f"{'Source' if prefix == 'MM2S' else 'Destination'}_Address", 0, 32, "Upper address bits")]},
            {"name": f"{prefix}_LENGTH", "offset": base + DMA_REG.LENGTH, "access": "read-write", "reset": 0,
             "description": f"{prefix} transfer length in bytes", "fields": [("Length", 0, 26, "Bytes to transfer")]},
        ]
    return table
