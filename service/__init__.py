"""Keyword-spotting web service (pynq_sparse.service)."""
