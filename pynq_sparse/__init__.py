"""pynq-sparse: a sparse-sparse keyword-spotting network for PYNQ boards, with a bit-exact golden model.

Usage::

    from pynq_sparse import KeywordSpotter
    spotter = KeywordSpotter()            # FPGA overlay if the board has it, else the emulated one
    print(spotter.classify("yes.wav"))
"""
from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

# In a source checkout, `host/`, `service/` and `overlays/` sit beside this package and are
# installed as `pynq_sparse.host`, `pynq_sparse.service` and `pynq_sparse.overlays` by setup.py.
# Let the same imports work from the tree without installing.
_root = Path(__file__).resolve().parent.parent
if not (Path(__file__).parent / "host").is_dir() and (_root / "host" / "__init__.py").is_file():
    __path__.append(str(_root))  # type: ignore[name-defined]  # noqa: F821


def __getattr__(name: str):
    if name == "KeywordSpotter":
        from .spotter import KeywordSpotter
        return KeywordSpotter
    raise AttributeError(f"module 'pynq_sparse' has no attribute {name!r}")
