"""Reading the office-editable YAML files of a rules folder (``routing.yaml``, ``templates.yaml``).

Examples
--------
>>> src, data = read_rule_file(None, "routing.yaml")
>>> src, isinstance(data, dict)
('riskmap/rules_default/routing.yaml', True)
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from riskmap.errors import RuleError


def read_rule_file(path: str | Path | None, name: str) -> tuple[str, Any]:
    """``(source, parsed YAML)`` of ``name`` in a rules folder, a file given directly, or the default.

    A missing file or invalid YAML is a :class:`~riskmap.errors.RuleError` naming the file.
    """
    if path is None:
        src = f"riskmap/rules_default/{name}"
        raw = resources.files("riskmap").joinpath(f"rules_default/{name}").read_text(encoding="utf-8")
    else:
        p = Path(path)
        if p.is_dir():
            p = p / name
        src = str(p)
        try:
            raw = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RuleError(f"{src}: {Path(name).stem} file not found") from None
    try:
        return src, yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise RuleError(f"{src}: not valid YAML: {exc}") from None
