"""Flow control of API requests: pacing per machine, the 429 governor, the in-flight bound."""

from rivya_provider.client.flow.governor import forget_governors
from rivya_provider.client.flow.pacing import forget_pacers


def forget_shared_state() -> None:
    """Drop every shared pacer and governor (a fresh process's state; for tests)."""
    forget_pacers()
    forget_governors()


__all__ = ["forget_shared_state"]
