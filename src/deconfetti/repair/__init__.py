"""Repair: take confetti out of the model, re-restore the image, and test each removal
against the data (the dirty image).

`select` finds what to remove at a candidate, `consistency` says whether the data allow
it, `solve` repairs each channel, `write` writes the repaired products; `log` documents
the repair log's columns.
"""

from .consistency import verify
from .log import REPAIR_COLUMNS
from .solve import ChannelRepair, repair, repair_channel
from .write import write_repaired

__all__ = ["repair", "repair_channel", "ChannelRepair", "verify", "write_repaired",
           "REPAIR_COLUMNS"]
