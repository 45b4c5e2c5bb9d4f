"""Write ``OUT/levels.csv``: one row per village (UTF-8, no BOM), the columns frozen in issue #2.

Examples
--------
>>> import tempfile, pathlib
>>> villages = pd.DataFrame({"village_code": ["431129100201"], "village_name": ["石门村"], "level": [3],
...     "color": ["orange"], "grade": ["Ⅱ"], "hazards": ["rainstorm:3"], "score": [55],
...     "reasons": ["3小时…"]})
>>> class A:
...     pass
>>> a = A(); a.villages = villages
>>> with tempfile.TemporaryDirectory() as d:
...     p = to_levels_csv(a, pathlib.Path(d) / "levels.csv")
...     p.read_bytes()[:3] != b"\\xef\\xbb\\xbf", p.read_text(encoding="utf-8").splitlines()[1]
(True, '431129100201,石门村,3,orange,Ⅱ,rainstorm:3,55,3小时…')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from riskmap.errors import RiskmapIOError

LEVELS_CSV_COLUMNS = (
    "village_code",
    "village_name",
    "level",
    "color",
    "grade",
    "hazards",
    "score",
    "reasons",
)


def to_levels_csv(assessment: Any, path: str | Path) -> Path:
    """Write the assessment's villages to ``path`` (parent folders created); return the path."""
    p = Path(path)
    frame = assessment.villages.loc[:, list(LEVELS_CSV_COLUMNS)]
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(p, index=False, encoding="utf-8", lineterminator="\n")
    except OSError as exc:
        raise RiskmapIOError(f"{p}: cannot write levels.csv: {exc.strerror or exc}") from None
    return p


def read_levels_csv(path: str | Path) -> pd.DataFrame:
    """Read a levels.csv back (codes stay 12-character text)."""
    return pd.read_csv(
        path,
        dtype={"village_code": str, "grade": str, "hazards": str, "reasons": str},
        keep_default_na=False,
        encoding="utf-8",
    )
