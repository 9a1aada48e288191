"""How long the ``parse`` node's readers take on the worst texts we know, at 2,000 and
20,000 characters and at the most the node reads at all (``MAX_CHARS``).

This is why the node reads on a thread rather than on the event loop: even at 20,000
characters some of them take milliseconds, at a megabyte tenths of a second. Each figure
is the median of ``--reps`` timed calls.

    .venv/bin/python bench/parse_worst.py
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from graphs import parsing


def texts(size: int) -> dict[str, tuple[str, Callable[[str], object]]]:
    """name -> (a text of about ``size`` characters, the reader it is worst for)."""

    def fit(unit: str, prefix: str = "") -> str:
        return (prefix + unit * (size // len(unit) + 1))[:size]

    def json_(t: str) -> object:
        return parsing.first_json(t)

    def xml(t: str) -> object:
        return parsing.xml_values(t, ["a"], every=True)

    def regex(t: str) -> object:
        return parsing.regex_values(r"(?P<k>\w+)=(?P<v>\d+)", t, every=True)

    return {
        "json: 200 starts, then an unterminated string": (
            fit("x", "[" * 200 + '"'),
            json_,
        ),
        "json: prose full of [links]": (fit("word [link] "), json_),
        "json: one object, all of it": (fit('"k": 1, ', "{").rstrip(", ") + "}", json_),
        "xml: unclosed tags, then stray closes": (
            fit("<a>")[: size // 2] + fit("</b>")[: size // 2],
            xml,
        ),
        "xml: many small elements": (fit("<a>x</a>"), xml),
        "regex: many matches": (fit("k=1 "), regex),
        "lines: many items": (fit("- item\n"), parsing.list_items),
    }


def measure(read: Callable[[str], object], text: str, reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        with contextlib.suppress(parsing.ParseProblem):  # nothing found is an answer too
            read(text)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__)
    options.add_argument("--reps", type=int, default=5)
    reps = options.parse_args().reps
    sizes = (2_000, 20_000, parsing.MAX_CHARS)
    print(f"median of {reps}; ms at " + ", ".join(f"{size:,}" for size in sizes) + " chars")
    by_size = [texts(size) for size in sizes]
    for name, (_, read) in by_size[0].items():
        cells = [measure(read, texts_[name][0], reps) * 1000 for texts_ in by_size]
        print(f"{name:48} " + " ".join(f"{ms:9.2f}" for ms in cells))


if __name__ == "__main__":
    main()
