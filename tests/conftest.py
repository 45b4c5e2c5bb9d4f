"""Shared test configuration."""

import pyproj  # noqa: F401  - load PROJ before eccodes (the eccodes wheels crash at exit otherwise)
