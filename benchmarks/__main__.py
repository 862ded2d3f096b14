"""``python -m benchmarks``: every benchmark, repeated, into ``benchmarks/RESULTS.md`` (see run_all)."""

from __future__ import annotations

import sys

from benchmarks.run_all import main

sys.exit(main())
