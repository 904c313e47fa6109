"""Training, quantisation-aware fine-tuning and export (needs the `train` extra: torch, onnx)."""
