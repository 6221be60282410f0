"""The worker layer's shape, checked: no import cycles, one broker chooser, one job-kind registry.

python -m tests.support.imports     # lists every cycle and counts them (0 expected)
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.imports import cycles, import_graph

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [
    *ROOT.glob("coachup/**/*.py"),
    *ROOT.glob("workers/**/*.py"),
    *ROOT.glob("web/**/*.py"),
    ROOT / "celeryconfig.py",
]


def test_no_import_cycles_even_through_function_local_imports():
    found = cycles(import_graph(ROOT))
    assert found == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_cycle_finder_finds_a_cycle(tmp_path):
    pkg = tmp_path / "workers"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .a import x\n")  # hidden in a function: still a cycle
    assert cycles(import_graph(tmp_path)) == [["workers.a", "workers.b"]]


def test_only_the_seam_asks_which_broker_it_is():
    # the chooser in workers/brokers/__init__.py is the one place that looks at the broker URL's scheme
    asking = re.compile(
        r"broker_kind|embedded_broker|broker_url\b.*(startswith|scheme)|\.name\s*==\s*[\"'](sqs|redis|embedded)"
    )
    offenders = [
        str(path.relative_to(ROOT))
        for path in SOURCES
        if asking.search(path.read_text()) and path != ROOT / "workers" / "brokers" / "__init__.py"
    ]
    assert offenders == []


def test_no_filesystem_transport_is_left():
    leftovers = [
        str(p.relative_to(ROOT)) for p in SOURCES if re.search(r"filesystem://|FileCounter|broker_dir", p.read_text())
    ]
    assert leftovers == []
