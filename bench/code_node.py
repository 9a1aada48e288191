"""The ``code`` node's sandbox: start-up latency and per-call overhead, against a floor.

    .venv/bin/python bench/code_node.py            # 20 calls of each
    .venv/bin/python bench/code_node.py --reps 50

Figures are medians, in milliseconds, all taken in this run on this machine:

- floor, bare: starting this interpreter with ``-I -S -c pass`` and waiting for it (no sandbox);
- start-up: one sandboxed worker, from ``bwrap`` to its ready line (what a spare hides);
- cold call: a job with no spare waiting (start-up + the job);
- warm call: a job taken by a pre-started spare (the pool's steady state, one job at a time).

The job is ``return {"out": n + 1}``: the figures are overhead, not work.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graphs import codebox

CODE = "def main(n):\n    return {'out': n + 1}\n"


async def bare_interpreter() -> float:
    began = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-I", "-S", "-c", "pass")
    await proc.wait()
    return time.perf_counter() - began


async def startup(pool: codebox.CodePool) -> float:
    began = time.perf_counter()
    worker = await pool._spawn()
    elapsed = time.perf_counter() - began
    pool._retire(worker)
    return elapsed


async def call(settings: codebox.CodeSettings) -> float:
    began = time.perf_counter()
    result = await codebox.run(CODE, {"n": 1}, ["out"], settings)
    assert result.outputs == {"out": 2}
    return time.perf_counter() - began


async def main(reps: int) -> None:
    cold = codebox.CodeSettings(spares=0)
    warm = codebox.CodeSettings(spares=1)
    pool = codebox.pool(warm)
    await pool.warm()
    rows: dict[str, list[float]] = {"floor, bare": [], "start-up": [], "cold call": []}
    rows["warm call"] = []
    for _ in range(reps):
        rows["floor, bare"].append(await bare_interpreter())
        rows["start-up"].append(await startup(pool))
        rows["cold call"].append(await call(cold))
        await pool.warm()  # a spare is ready, as between jobs on a server that is not saturated
        rows["warm call"].append(await call(warm))
    print(f"{reps} repetitions, medians in ms, and each as a multiple of the floor")
    floor = statistics.median(rows["floor, bare"])
    for name, times in rows.items():
        median = statistics.median(times)
        print(f"  {name:<12} {median * 1000:8.1f}  {median / floor:5.2f}x floor")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20)
    asyncio.run(main(parser.parse_args().reps))
