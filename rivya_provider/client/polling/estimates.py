"""How long a model's generations are expected to take: the catalogue's hint, or what was seen.

Where ``/models`` gives no hint, a running estimate of the durations seen for the model and base
URL stands in (an exponentially weighted mean, shared by every wait in the process, so the
triggers of a triggerer learn from each other, and with the machine's other processes through a
small file, so a worker's new task starts from what the triggerer learnt).
"""

from __future__ import annotations

import math
import threading
import time
from datetime import datetime

from rivya_provider.client.averages import moving_average
from rivya_provider.client.polling import shared_estimates
from rivya_provider.client.tasks import GenerationTask, TaskStatus

#: Weight of the newest observed duration in the running estimate.
ESTIMATE_WEIGHT = 0.3
#: Observed durations beyond this many seconds are left out of the estimate (an outlier, a
#: wait that was resumed after a restart).
LONGEST_OBSERVATION = 3600.0
#: A process shares what it learnt of a model with the machine's other processes, and looks for
#: what they learnt of a model it knows nothing about, at most this often (seconds).
SHARE_EVERY_SECONDS = 5.0


class DurationEstimates:
    """Running estimates of generation time per base URL and model, shared in a process.

    :param weight: weight of the newest observation (0-1).
    :param share: also share the estimates with the machine's other processes
        (:mod:`~rivya_provider.client.polling.shared_estimates`).
    """

    def __init__(self, *, weight: float = ESTIMATE_WEIGHT, share: bool = False) -> None:
        self._weight = weight
        self._share = share
        self._lock = threading.Lock()
        self._means: dict[tuple[str, str], float] = {}
        self._shared_at: dict[tuple[str, str], float] = {}
        self._read_at: dict[str, float] = {}

    def observe(self, *, base_url: str, model: str, seconds: float) -> None:
        """Fold one observed duration into the model's estimate.

        :param base_url: the API base URL the generation ran on.
        :param model: the model id.
        :param seconds: how long the generation took.
        """
        if not math.isfinite(seconds) or not 0 < seconds <= LONGEST_OBSERVATION:
            return
        key = (base_url, model)
        now = time.monotonic()
        with self._lock:
            mean = self._means.get(key)
            mean = moving_average(mean, seconds, self._weight)
            self._means[key] = mean
            # A triggerer sees many generations finish together: it folds its own estimate into
            # the machine's at most every SHARE_EVERY_SECONDS per model, not at every one.
            last_shared = self._shared_at.get(key, -math.inf)
            share = self._share and now - last_shared >= SHARE_EVERY_SECONDS
            if share:
                self._shared_at[key] = now
        if share:
            machine_wide = shared_estimates.fold(
                base_url, model=model, seconds=mean, weight=self._weight
            )
            if machine_wide is not None:
                with self._lock:
                    self._means[key] = machine_wide

    def get(self, *, base_url: str, model: str) -> float | None:
        """Return the model's estimate in seconds, or ``None`` before any observation.

        A process that has seen no generation of the model takes the machine's estimate.

        :param base_url: the API base URL.
        :param model: the model id.
        """
        key = (base_url, model)
        now = time.monotonic()
        with self._lock:
            mean = self._means.get(key)
            if mean is not None or not self._share:
                return mean
            if now - self._read_at.get(base_url, -math.inf) < SHARE_EVERY_SECONDS:
                return None
            self._read_at[base_url] = now
        shared = shared_estimates.read(base_url)
        with self._lock:
            for name, seconds in shared.items():
                self._means.setdefault((base_url, name), seconds)
            return self._means.get(key)

    def clear(self) -> None:
        """Forget every estimate this process holds."""
        with self._lock:
            self._means.clear()
            self._shared_at.clear()
            self._read_at.clear()


#: The estimates of this process.
ESTIMATES = DurationEstimates(share=True)


def expected_seconds(*, base_url: str, model: str | None, hint: float | None) -> float | None:
    """Return a model's expected generation time: the catalogue's hint, else the estimate.

    :param base_url: the API base URL.
    :param model: the model id (``None``: unknown).
    :param hint: seconds the catalogue gives for the model, if any.
    """
    if hint is not None and math.isfinite(hint) and hint > 0:
        return hint
    return None if model is None else ESTIMATES.get(base_url=base_url, model=model)


def observed_seconds(
    *, created_at: datetime | None, updated_at: datetime | None, local: float
) -> float:
    """Return how long a finished generation took.

    Rivya's own timestamps (both on its clock) are preferred; the local time from submitting to
    seeing it finished (late by up to one poll interval) stands in when they are missing.

    :param created_at: the task's ``created_at``.
    :param updated_at: the task's ``updated_at`` once it finished.
    :param local: seconds from submitting to seeing the task finished, on the local clock.
    """
    if created_at is not None and updated_at is not None:
        server = (updated_at - created_at).total_seconds()
        if 0 < server <= local + 1.0:
            return server
    return local


def learn(task: GenerationTask, *, base_url: str, submitted_at: float | None, now: float) -> None:
    """Fold a succeeded generation's duration into its model's running estimate.

    :param task: the generation as last polled.
    :param base_url: the API base URL it ran on.
    :param submitted_at: local Unix time it was submitted (``None``: unknown, e.g. picked up
        again by a retry; then only Rivya's timestamps count).
    :param now: local Unix time it was seen finished.
    """
    if task.status is not TaskStatus.SUCCEEDED or not task.model:
        return
    local = math.inf if submitted_at is None else now - submitted_at
    seconds = observed_seconds(created_at=task.created_at, updated_at=task.updated_at, local=local)
    ESTIMATES.observe(base_url=base_url, model=task.model, seconds=seconds)
