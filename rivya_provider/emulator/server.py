"""Run the emulator on a real loopback port in a background thread, for tests and scripts.

Usage::

    with run_emulator(credits=50) as emulator:
        httpx.get(f"{emulator.base_url}/api/v1/credits",
                  headers={"Authorization": f"Bearer {emulator.api_key}"})
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

from rivya_provider.emulator.app import backend_of, create_app
from rivya_provider.emulator.backend import Backend
from rivya_provider.emulator.config import EmulatorConfig
from rivya_provider.emulator.faults import Faults
from rivya_provider.emulator.models import ModelDef
from rivya_provider.emulator.profiles import Profile
from rivya_provider.emulator.records import KeyStatus
from rivya_provider.emulator.state import DEFAULT_ACCOUNT, EmulatorState

LOOPBACK = "127.0.0.1"


@dataclass
class RunningEmulator:
    """A started emulator: where it listens, its key, and in-process access to its state."""

    base_url: str
    api_key: str
    state: EmulatorState
    backend: Backend

    def counters(self) -> dict[str, Any]:
        """Return the request, response, task, credit and file counters."""
        return self.state.counters()

    def set_faults(self, **fields: Any) -> Faults:
        """Change some faults (see :class:`Faults` for the names); return all of them."""
        return self.backend.faults.update(**fields)

    def set_profile(self, name: str | None = None, **fields: Any) -> Profile:
        """Change how open points are answered; return the new profile.

        :param name: a name of :data:`PROFILES` to start from (default: the current profile).
        :param fields: :class:`Profile` field names and values to change.
        """
        return self.backend.set_profile(name, **fields)

    @property
    def profile(self) -> Profile:
        return self.backend.profile

    def add_model(self, definition: ModelDef | dict[str, Any]) -> dict[str, Any]:
        """Serve another model, or redefine one; return its ``/models`` entry.

        :param definition: a :class:`ModelDef` or its fields (``id``, ``base_credits``,
            ``params``, ``reference_media``, ...).
        """
        return self.backend.catalogue.add(definition).to_wire()

    def set_credits(self, credits: int, *, account: str = DEFAULT_ACCOUNT) -> None:
        """Set an account's balance.

        :param credits: the new balance.
        :param account: the account (default: the one of :attr:`api_key`).
        """
        self.state.set_credits(credits, account=account)

    def add_key(
        self,
        *,
        scopes: Iterable[str] | None = None,
        status: KeyStatus | str = KeyStatus.ACTIVE,
        account: str | None = None,
        credits: int | None = None,
    ) -> str:
        """Create another API key and return it.

        :param scopes: its scopes (default: all).
        :param status: ``active``, ``revoked`` or ``expired``.
        :param account: its account; a new id gets a separate wallet.
        :param credits: the account's balance.
        """
        key = self.state.add_key(scopes=scopes, status=status, account=account, credits=credits)
        return key.key

    def reset(self) -> None:
        """Forget tasks, files, keys' history, counters; restore credits, faults, profile."""
        self.backend.reset()


class _PromptServer(uvicorn.Server):
    """A uvicorn server that notices ``should_exit`` within 10 ms instead of 100 ms.

    Test suites start and stop one emulator per test; the shorter tick keeps teardown short.
    """

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            # on_tick refreshes the Date header every 10th tick: every 0.1 s here, which is cheap.
            counter = (counter + 1) % 864000
            await asyncio.sleep(0.01)


def bind_socket(*, host: str, port: int) -> socket.socket:
    """Bind a TCP socket (port 0 picks a free one) and listen on it.

    Listening before uvicorn starts means a client connecting early waits in the backlog instead
    of being refused.

    :param host: address to bind, IPv4 or IPv6.
    :param port: port number, or 0.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def base_url_of(sock: socket.socket) -> str:
    """Return ``http://host:port`` of a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextmanager
def run_emulator(
    *,
    config: EmulatorConfig | None = None,
    startup_timeout: float = 10.0,
    sock: socket.socket | None = None,
    **overrides: Any,
) -> Iterator[RunningEmulator]:
    """Serve an emulator on 127.0.0.1 (a free port) until the block ends.

    :param config: start settings (defaults: :class:`EmulatorConfig`).
    :param startup_timeout: seconds to wait for the server to accept connections.
    :param sock: a listening socket to serve on instead (closed when the block ends): its
        address can be handed out before the emulator has started, as early clients wait in its
        backlog.
    :param overrides: :class:`EmulatorConfig` fields that replace those of ``config``.
    :raises RuntimeError: when the server does not start in time.
    """
    if sock is None:
        sock = bind_socket(host=LOOPBACK, port=0)
    with closing(sock):
        settings = {**(dict(config) if config is not None else {}), **overrides}
        app = create_app(EmulatorConfig(**settings))
        backend = backend_of(app)
        server = _PromptServer(
            uvicorn.Config(
                app, log_level="warning", lifespan="off", log_config=None, access_log=False
            )
        )
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="rivya-emulator", daemon=True
        )
        try:
            thread.start()
            _wait_started(server, thread, timeout=startup_timeout)
            yield RunningEmulator(
                base_url=base_url_of(sock),
                api_key=backend.config.api_key,
                state=backend.state,
                backend=backend,
            )
        finally:
            server.should_exit = True
            if thread.is_alive():
                thread.join(timeout=10)


def _wait_started(server: uvicorn.Server, thread: threading.Thread, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the Rivya emulator stopped during startup; see the log above")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Rivya emulator did not start within {timeout:g} s")
        time.sleep(0.005)
