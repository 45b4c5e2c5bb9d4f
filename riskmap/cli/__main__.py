"""``python -m riskmap.cli``."""

from riskmap.cli import main

main()
