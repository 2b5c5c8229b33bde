"""Helpers for the tests of ``benchmarks/`` scripts: load a script as a module, and a truth-shaped page."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def load_script(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` imported as a module (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / f"benchmarks/{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def one_field_page(digits: list[dict]) -> dict:
    """A page of ``truth.json`` (or of ``process`` output) with one field of cells 50 px apart;
    each dict gives a cell's ``digit`` (None: blank) and any other keys."""
    cells = [{"box": [100.0 + 50 * k, 100.0, 40.0, 45.0], "blank": d.get("digit") is None, **d} for k, d in enumerate(digits)]
    return {"source": "f/a.png", "page": 1, "fields": [{"name": "field_1", "digits": cells}]}
