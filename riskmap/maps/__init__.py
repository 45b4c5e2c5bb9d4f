"""Maps of the warnings: the offline interactive warning map (folium/Leaflet, everything inlined).

Use :func:`warning_map` to build the map and :func:`write_map` to write it as one self-contained HTML file.
"""

from riskmap.maps.offline import offline_violations, write_map
from riskmap.maps.warning_map import warning_map

__all__ = ["offline_violations", "warning_map", "write_map"]
