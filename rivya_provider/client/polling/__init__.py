"""The one owner of "when to poll next", for every path that waits for a generation.

- :mod:`.schedule`: fixed or adaptive schedules (:func:`schedule_for`), jitter, the worker's
  look window and the Airflow 3.3 guard window.
- :mod:`.estimates`: how long a model's generations take, learnt and shared on the machine.
- :mod:`.wait`: one wait's decisions: the deadline, the error backoff, the ``Retry-After`` cap.
- :mod:`.drivers`: the loops that poll and sleep, sync, async, and the look before deferring.
"""

from rivya_provider.client.polling.drivers import (
    WorkerLook,
    look_before_deferring,
    wait_async,
    wait_sync,
)
from rivya_provider.client.polling.estimates import ESTIMATES, learn
from rivya_provider.client.polling.schedule import (
    PollSchedule,
    fire_not_before,
    guard_window,
    schedule_for,
)
from rivya_provider.client.polling.wait import Wait, error_delay

__all__ = [
    "ESTIMATES",
    "PollSchedule",
    "Wait",
    "WorkerLook",
    "error_delay",
    "fire_not_before",
    "guard_window",
    "learn",
    "look_before_deferring",
    "schedule_for",
    "wait_async",
    "wait_sync",
]
