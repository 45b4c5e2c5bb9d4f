"""CAP 1.2 output: messages from lifecycle changes, validation, and an Atom feed of current alerts.

>>> from riskmap.cap import build_messages, validate
"""

from riskmap.cap.area import CapArea, village_areas
from riskmap.cap.build import (
    CapMessage,
    CapOptions,
    CapRef,
    build_message,
    build_messages,
    cap_filename,
    previous_refs,
)
from riskmap.cap.feed import atom_feed, current_alerts
from riskmap.cap.files import FEED_NAME, write_cap_dir
from riskmap.cap.validate import problems, validate

__all__ = ["FEED_NAME", "CapArea", "CapMessage", "CapOptions", "CapRef", "atom_feed", "build_message",
           "build_messages", "cap_filename", "current_alerts", "previous_refs", "problems", "validate",
           "village_areas", "write_cap_dir"]
