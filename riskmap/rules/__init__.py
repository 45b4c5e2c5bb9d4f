"""Warning rules: editable YAML rule files, the vectorised engine, explanations.

Public API: :func:`load_rules`, :func:`find_rules_dir`, :func:`build_features`, :func:`features_from_windows`,
:func:`evaluate`, :class:`Assessment`, :func:`explain_village`.

Examples
--------
>>> rs = load_rules(packaged_rules_dir())
>>> rs.hazards
('rainstorm', 'torrent', 'geohazard', 'reservoir', 'waterlogging', 'mine')
"""

from __future__ import annotations

from riskmap.rules.engine import Assessment, evaluate
from riskmap.rules.explain import explain_village
from riskmap.rules.features import Features, antecedent_rainfall, build_features, features_from_windows
from riskmap.rules.loader import build_ruleset, find_rules_dir, load_rules, packaged_rules_dir
from riskmap.rules.model import HazardRule, RuleSet

__all__ = [
    "Assessment",
    "antecedent_rainfall",
    "Features",
    "HazardRule",
    "RuleSet",
    "build_features",
    "build_ruleset",
    "evaluate",
    "explain_village",
    "features_from_windows",
    "find_rules_dir",
    "load_rules",
    "packaged_rules_dir",
]
