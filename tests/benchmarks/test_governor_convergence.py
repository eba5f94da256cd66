"""How processes that share one account's rate limit settle, each with its own 429 governor and
no shared state: prints, for 2 to 8 processes that each want more than the limit, what they got
through together (as a share of the limit), the 429s per request that got through, and each
process's share. Simulated time against a token bucket, as Rivya's limit is modelled by the
emulator; nothing here talks to a server.

Run with ``make bench-all``.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import pytest

from rivya_provider.client.flow.governor import ThrottleGovernor

pytestmark = pytest.mark.benchmark
#: Seconds simulated, and the last seconds counted (after the processes have found the limit).
SIMULATED, COUNTED = 400.0, 150.0
#: Requests per second each process would send if nothing held it back.
DEMAND = 10.0
RETRY_AFTER = 1.0


@dataclass
class Bucket:
    """A token bucket: ``rate`` requests per second, ``burst`` at once."""

    rate: float
    burst: float
    tokens: float = 0.0
    at: float = 0.0

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def simulate(starts: list[float], limit: float) -> tuple[list[int], list[int]]:
    """Return, per process, the requests answered and the 429s met in the counted seconds.

    Each process takes its turn from its governor when a request is due, sends it when the turn
    comes, and makes its next request due ``1 / DEMAND`` after the answer; events run in time
    order, so the bucket sees the sends as the server would.
    """
    bucket = Bucket(rate=limit, burst=max(1.0, limit), tokens=limit)
    governors = [ThrottleGovernor() for _ in starts]
    events = [(start, which, "due") for which, start in enumerate(starts)]
    heapq.heapify(events)
    answered, limited = [0] * len(starts), [0] * len(starts)
    while events[0][0] <= SIMULATED:
        now, which, step = heapq.heappop(events)
        governor = governors[which]
        if step == "due":
            heapq.heappush(events, (now + governor.reserve(now=now), which, "send"))
            continue
        counted = now > SIMULATED - COUNTED
        if bucket.take(now):
            governor.answered(now=now)
            answered[which] += counted
        else:
            governor.throttled(now=now, retry_after=RETRY_AFTER)
            limited[which] += counted
        heapq.heappush(events, (now + 1.0 / DEMAND, which, "due"))
    return answered, limited


@pytest.mark.parametrize(("processes", "limit"), [(2, 4.0), (3, 4.0), (2, 8.0), (4, 2.0), (8, 2.0)])
def test_processes_sharing_a_limit(processes: int, limit: float) -> None:
    # Processes start 10 s apart: a late one must still get its share.
    answered, limited = simulate([10.0 * n for n in range(processes)], limit)
    through = sum(answered) / COUNTED
    shares = [count / max(1, sum(answered)) for count in answered]
    print(
        f"{processes} processes, limit {limit:g}/s: {through:.2f}/s through "
        f"({through / limit:.0%} of the limit), {sum(limited) / max(1, sum(answered)):.2f} 429s "
        f"per answered request, shares {' '.join(f'{share:.0%}' for share in shares)}"
    )
    assert through <= limit * 1.01  # the bucket holds: the simulation counts what it should
    assert min(answered) > 0, "a process got nothing through"
