"""An opt-in for triggerers running thousands of waits: keep Python's full collections short.

A full (oldest-generation) pass of Python's cyclic garbage collector walks every object of the
process, and a triggerer holds all of Airflow: in ``make bench`` each pass stopped the event loop
for 100 to 200 ms, and they made most of the loop lag of 1,000 waits (docs/performance.md).
``gc.freeze()`` moves what the process has built so far out of the collector's sight; only what
comes later (the triggers themselves) is walked again. Objects that are frozen are still freed
when nothing refers to them; only reference cycles among them are never collected.

Thousands of sleeping triggers still hold some 150,000 objects that each wait moves into the
oldest generation again, so full passes came every second or two, 100 ms each; the option also
raises that generation's threshold from 10 to 100 younger collections, which makes them about
ten times rarer. What is garbage in cycles is then freed up to that much later (the provider's
polls leave next to none).

Set ``[rivya] freeze_triggerer_heap = True`` (``AIRFLOW__RIVYA__FREEZE_TRIGGERER_HEAP=True``) to
freeze once, when the first Rivya trigger of the process runs. It changes the whole process, not
only Rivya's triggers, which is why it is off by default.
"""

from __future__ import annotations

import gc
import logging

from airflow.providers.common.compat.sdk import conf

log = logging.getLogger(__name__)

_done = False
#: The oldest generation's threshold once frozen (Python's default: 10).
OLDEST_THRESHOLD = 100


def freeze_once() -> bool:
    """Freeze the process's objects if the setting is on; decided once, at the first call.

    Every trigger calls this as it starts, thousands at once after a triggerer restart: only
    the first one reads the setting.

    :returns: whether this call froze them.
    """
    global _done
    if _done:
        return False
    _done = True
    if not conf.getboolean("rivya", "freeze_triggerer_heap", fallback=False):
        return False
    gc.collect()  # what is garbage now is freed, not frozen for ever
    gc.freeze()
    youngest, middle, oldest = gc.get_threshold()
    gc.set_threshold(youngest, middle, max(oldest, OLDEST_THRESHOLD))
    log.info(
        "Froze %d objects out of Python's garbage collector and made its full passes rarer "
        "(thresholds %s; [rivya] freeze_triggerer_heap)",
        gc.get_freeze_count(),
        gc.get_threshold(),
    )
    return True
