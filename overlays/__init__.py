"""Overlays: per-board bitstream folders and the .hwh metadata the emulated device loads (pynq_sparse.overlays)."""
