"""Golden output for sample_forms/: what `process` reads there changes only on purpose.

If a change is meant to alter the readings, run `python scripts/update_golden.py`, review the
diff of tests/golden/sample_forms.csv and commit it with the change.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from update_golden import GOLDEN, golden_rows  # noqa: E402

from pipeline.score import load_truth, score_pages  # noqa: E402


@pytest.mark.slow
def test_sample_forms_match_golden_output():
    want = pd.read_csv(GOLDEN, dtype={"value": str}, keep_default_na=False)
    got = golden_rows()
    got["value"] = got["value"].astype(str)
    assert len(got) == len(want), "number of fields read changed"
    diff = got.reset_index(drop=True).compare(want.astype(got.dtypes.to_dict()).reset_index(drop=True))
    assert diff.empty, f"readings changed:\n{diff}"


def test_sample_forms_truth_file_matches_the_images():
    truth = load_truth(ROOT / "sample_forms" / "truth.json")
    assert truth, "sample_forms/truth.json lists no pages"
    for page in truth:
        assert Path(page["source"]).is_file(), page["source"]
    # the truth scored against itself is perfect: the scorer and the file agree
    perfect = score_pages(truth, truth)
    assert perfect["cell_recall"] == 1.0 and perfect["digit_accuracy"] == 1.0
