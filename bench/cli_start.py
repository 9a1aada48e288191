"""How long ``python -m graphs validate`` / ``run`` take to start, against Python's own start.

Target (issue 18, target 4): ``validate`` and ``run`` of a flow without model nodes finish
in under 0.4 s of wall time. Floors measured in the same run, interleaved with the cases
so that load on a shared machine hits them alike:

- ``python -c pass``: the interpreter alone;
- ``python -c "import networkx"``: the one library every flow needs (a flow *is* a
  networkx graph), so no command can start faster than this.

Cases: a model-free flow (input -> template -> router -> two outputs; the template renders
in the sandbox process, which is part of ``run``'s cost) and ``examples/chain.json`` (three
``llm`` nodes), each validated and run with ``ANTHROPIC_API_KEY`` unset (the offline model)
and set (the real SDK, pointed at the fake Messages API in this process). Each figure is the
median of ``--reps`` runs; CPU is user + system of the child. Every command must succeed and
print what it should (``valid``, or a succeeded result), and every case must take at least
the ``python -c pass`` floor, or the script stops: a figure from a broken run means nothing.

    .venv/bin/python bench/cli_start.py            # 7 repetitions (~1 min on 2 idle cores)
    .venv/bin/python bench/cli_start.py --reps 15
    .venv/bin/python bench/cli_start.py --importtime   # also the slowest imports per case

Exits 0 whatever the results: a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._live import table  # noqa: E402
from tests.fakes.anthropic_server import FakeAnthropic  # noqa: E402

PYTHON = sys.executable
TARGET_S = 0.4

FREE_FLOW = {
    "graph": {"name": "model-free"},
    "nodes": [
        {"id": "q", "type": "input", "config": {"name": "q", "default": "a bug in my code"}},
        {"id": "t", "type": "template", "config": {"template": "Question: {{ q }}"}},
        {
            "id": "r",
            "type": "router",
            "config": {
                "mode": "match",
                "routes": ["code", "other"],
                "rules": [{"route": "code", "pattern": "(?i)\\bcode\\b"}],
                "default": "other",
            },
        },
        {"id": "code", "type": "output", "config": {"name": "code"}},
        {"id": "other", "type": "output", "config": {"name": "other"}},
    ],
    "edges": [
        {"source": "q", "target": "t", "source_port": "value", "target_port": "q"},
        {"source": "t", "target": "r", "source_port": "text", "target_port": "input"},
        {"source": "r", "target": "code", "source_port": "code", "target_port": "value"},
        {"source": "r", "target": "other", "source_port": "other", "target_port": "value"},
    ],
}


def _env(key: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "SWITCHYARD_"))}
    if key is not None:
        env["ANTHROPIC_API_KEY"] = "test-key"
        env["ANTHROPIC_BASE_URL"] = key
    return env


def _timed(argv: list[str], env: dict[str, str], cwd: Path = ROOT) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return wall, cpu, done.stdout


def _check(name: str, out: str) -> None:
    name = name.removeprefix("baseline: ")
    if name.startswith("validate"):
        ok = out.strip() == "valid"
    elif name.startswith("python"):
        ok = out == ""
    else:
        ok = json.loads(out.strip().splitlines()[-1]).get("status") == "succeeded"
    if not ok:
        raise SystemExit(f"{name}: unexpected output {out!r}")


def _slowest_imports(argv: list[str], env: dict[str, str], top: int = 6) -> str:
    done = subprocess.run(
        [PYTHON, "-X", "importtime", *argv[1:]], env=env, cwd=ROOT, capture_output=True, text=True
    )
    rows = []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2].rstrip()
            if name.startswith("  ") and not name.startswith("    "):
                rows.append((int(parts[1]), name.strip()))  # top-level imports of the main module
            elif not name.startswith(" "):
                rows.append((int(parts[1]), name.strip()))
    rows.sort(reverse=True)
    return ", ".join(f"{n} {us / 1000:.0f}ms" for us, n in rows[:top])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--importtime", action="store_true")
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        type=Path,
        help="another checkout (e.g. a worktree of main): its model-free commands are timed "
        "too, in the same shuffled rounds, as 'baseline: ...' rows",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, FakeAnthropic() as fake:
        free = Path(tmp) / "free.json"
        free.write_text(json.dumps(FREE_FLOW))
        model = ROOT / "examples" / "chain.json"
        graphs = [PYTHON, "-m", "graphs"]
        cases: dict[str, tuple[list[str], dict[str, str], bool]] = {
            "python -c pass": ([PYTHON, "-c", "pass"], _env(None), False),
            "python -c 'import networkx'": ([PYTHON, "-c", "import networkx"], _env(None), False),
        }
        for command in ("validate", "run"):
            for label, path, targeted in (
                ("model-free", free, True),
                ("chain (3 llm)", model, False),
            ):
                for key_label, key in (("no key", None), ("key set", fake.url)):
                    argv = [*graphs, command, str(path)]
                    cases[f"{command} {label}, {key_label}"] = (argv, _env(key), targeted)
        where = dict.fromkeys(cases, ROOT)
        if args.baseline is not None:
            for name in [n for n, case in cases.items() if case[2]]:
                cases[f"baseline: {name}"] = (*cases[name][:2], False)
                where[f"baseline: {name}"] = args.baseline.resolve()
        walls: dict[str, list[float]] = {name: [] for name in cases}
        cpus: dict[str, list[float]] = {name: [] for name in cases}
        for name, (argv, env, _) in cases.items():  # warm-up: page cache, .pyc files
            _check(name, _timed(argv, env, where[name])[2])
        for _ in range(args.reps):
            order = list(cases)
            random.shuffle(order)
            for name in order:
                argv, env, _ = cases[name]
                wall, cpu, out = _timed(argv, env, where[name])
                _check(name, out)
                walls[name].append(wall)
                cpus[name].append(cpu)

        load = os.getloadavg()
        print(
            f"# cli_start: median of {args.reps} runs each; load average "
            f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} cores"
        )
        floor = statistics.median(walls["python -c pass"])
        nx_floor = statistics.median(walls["python -c 'import networkx'"])
        rows = []
        for name, (_, _, targeted) in cases.items():
            wall = statistics.median(walls[name])
            if wall < floor * 0.9:
                raise SystemExit(f"{name}: {wall:.3f}s is below the interpreter's own start")
            verdict = "info"
            if targeted:
                verdict = "PASS" if wall < TARGET_S else "FAIL"
            rows.append(
                [
                    name,
                    f"{wall * 1000:.0f}",
                    f"{statistics.median(cpus[name]) * 1000:.0f}",
                    f"{min(walls[name]) * 1000:.0f}..{max(walls[name]) * 1000:.0f}",
                    f"{wall / floor:.1f}",
                    f"{wall / nx_floor:.2f}",
                    verdict,
                ]
            )
        print(
            table(
                ["case", "wall ms", "cpu ms", "min..max", "x pass", "x networkx", "< 0.4 s"],
                rows,
            )
        )
        if args.importtime:
            print("\nslowest top-level imports (one -X importtime run each):")
            for name, (argv, env, _) in cases.items():
                if not name.startswith("python"):
                    print(f"  {name}: {_slowest_imports(argv, env)}")


if __name__ == "__main__":
    main()
