"""Load time of every shipped knowledge pack and the size of the package's data on disk.

    python benchmarks/bench_packs.py [--repeats 5]

Prints one row per pack: classes, file size, median load time (full validation) over the
repeats, each in a fresh interpreter-level cache state (``load_knowledge`` keeps no cache).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from coderclip.knowledge import load_knowledge, packs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    total = 0
    print(f"{'pack':<14} {'classes':>7} {'KiB':>7} {'load ms (median)':>17}")
    for name in packs.available_packs():
        path = packs.pack_path(name)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            k = load_knowledge(name)
            times.append(time.perf_counter() - t0)
        size = path.stat().st_size
        total += size
        print(f"{name:<14} {len(k):>7} {size / 1024:>7.0f} {1000 * statistics.median(times):>17.1f}")
    data = Path(packs.pack_path(packs.available_packs()[0])).parents[1]
    all_files = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
    print(f"packs: {total / 2**20:.2f} MiB; everything under {data.name}/: {all_files / 2**20:.2f} MiB")


if __name__ == "__main__":
    main()
