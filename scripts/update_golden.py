"""Rewrite tests/golden/sample_forms.csv from the current pipeline and shipped model.

Run on purpose only, after a change that is meant to alter what ``process`` reads on
``sample_forms/`` (review the diff before committing it):

    python scripts/update_golden.py
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.config import RunSettings
from pipeline.run import process_batch

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "sample_forms.csv"


def golden_rows() -> pd.DataFrame:
    """One row per field read from sample_forms/: source (relative), page, field, value, flagged, status."""
    rows = []

    def emit(form) -> None:  # noqa: ANN001
        for f in form.fields:
            rows.append({"source": Path(form.source).name, "page": form.page, "field": f.name, "value": f.value,
                         "flagged": f.flagged, "status": form.status.value})

    process_batch([ROOT / "sample_forms"], RunSettings(device="cpu"), emit)
    return pd.DataFrame(rows, columns=["source", "page", "field", "value", "flagged", "status"])


if __name__ == "__main__":
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    golden_rows().to_csv(GOLDEN, index=False)
    print(f"wrote {GOLDEN}")
