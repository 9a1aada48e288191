"""The engine never imports Django or Channels: it must run in a CLI or a worker alone."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_importing_every_engine_module_loads_no_django():
    modules = sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in (ROOT / "graphs").rglob("*.py")
        if path.name != "__main__.py"
    )
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "web = ('django', 'channels', 'daphne')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in web)\n"
        "print(len(sys.modules)); assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(modules) > 15


def test_no_engine_source_mentions_an_import_of_django():
    offenders = [
        str(path)
        for path in (ROOT / "graphs").rglob("*.py")
        if any(
            line.lstrip().startswith(
                ("import django", "from django", "import channels", "from channels")
            )
            for line in path.read_text().splitlines()
        )
    ]
    assert offenders == []
