#!/usr/bin/env python3
"""Regenerate the JSON schemas of the settings files from the pydantic models.

    python scripts/gen_schemas.py          # rewrite configs/schema/*.schema.json
    python scripts/gen_schemas.py --check  # exit 1 if a committed schema is stale

The schemas are what editors (e.g. the YAML language server) and other tools validate
``configs/run.yaml`` and ``configs/train.yaml`` against; ``pipeline.config`` stays the source
of truth and ``tests/test_config.py`` fails when the committed files fall behind it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_DIR = ROOT / "configs" / "schema"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schemas() -> dict[Path, str]:
    """Target file -> its text (JSON, 2-space indent, trailing newline)."""
    sys.path.insert(0, str(ROOT))
    from pipeline.config import RunSettings, TrainConfig

    out = {}
    for name, model in (("run", RunSettings), ("train", TrainConfig)):
        schema = {"$schema": DIALECT, "$id": f"urn:digitform:config:{name}", **model.model_json_schema()}
        out[SCHEMA_DIR / f"{name}.schema.json"] = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the committed schemas are up to date")
    args = parser.parse_args(argv)
    stale = []
    for path, text in schemas().items():
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    if args.check and stale:
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)} (run: python scripts/gen_schemas.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
