"""Host driver: DMA streaming, batching and map-reduce dispatch into the sparse-kws overlay (pynq_sparse.host)."""
