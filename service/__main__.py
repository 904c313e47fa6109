"""`python -m pynq_sparse.service [serve|listen] ...`: the same as `pynq-sparse serve` / `pynq-sparse listen`."""
import sys

from .cli import main

sys.exit(main())
