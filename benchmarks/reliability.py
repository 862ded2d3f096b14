"""The reliability report: run the fault, crash, fuzz and load tests at scale.

    python -m benchmarks.reliability [--crash-rounds 50] [--load-ops 2000] [--fuzz 2000]

It runs the reliability test modules with larger parameters (through the
environment variables they read), collects the counters they record
(``tests/_report.py``) and prints: faults injected, crashes survived, fuzz
cases tried, operations verified, operations lost (must be 0), and the load
throughput reached.  Exit status: pytest's.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time

MODULES = ["tests/test_faults.py", "tests/test_plainbox_faults.py", "tests/test_crash_harness.py",
           "tests/test_plainbox_crash.py", "tests/test_hostile.py", "tests/test_fuzz_inputs.py",
           "tests/test_load.py"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--crash-rounds", type=int, default=50, help="SIGKILL rounds per store")
    parser.add_argument("--load-ops", type=int, default=2000, help="operations per load worker")
    parser.add_argument("--fuzz", type=int, default=2000, help="hypothesis examples per parser")
    args = parser.parse_args(argv)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    modules = [m for m in MODULES if os.path.exists(os.path.join(root, m))]
    with tempfile.NamedTemporaryFile(prefix="gc3session-report-", suffix=".jsonl") as report:
        env = dict(os.environ, GC3SESSION_REPORT=report.name,
                   GC3SESSION_CRASH_ROUNDS=str(args.crash_rounds),
                   GC3SESSION_LOAD_OPS=str(args.load_ops),
                   GC3SESSION_FUZZ_EXAMPLES=str(args.fuzz))
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                 "-o", "addopts=", *modules], cwd=root, env=env)
        elapsed = time.monotonic() - started
        totals: collections.Counter[str] = collections.Counter()
        rates: dict[str, float] = {}
        with open(report.name) as stream:
            for line in stream:
                for key, value in json.loads(line).items():
                    if key.endswith("_per_s"):
                        rates[key] = value
                    else:
                        totals[key] += value
    print(f"\nreliability report ({elapsed:.0f} s, tests {'passed' if result.returncode == 0 else 'FAILED'})")
    for key in ("faults_injected", "crashes_survived", "fuzz_cases", "operations_verified"):
        print(f"  {key.replace('_', ' '):<22} {totals[key]:>10,}")
    lost = totals["operations_lost"] if result.returncode == 0 else "unknown (a test failed)"
    print(f"  {'operations lost':<22} {lost:>10}")
    for key, value in sorted(rates.items()):
        print(f"  {key:<40} {value:>8,.0f}")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
