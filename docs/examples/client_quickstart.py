"""Generate one image with the Rivya client, then download it.

Runs against the embedded Rivya emulator unless ``RIVYA_API_KEY`` is set, in which case it talks to
``RIVYA_BASE_URL`` (default https://rivya.ai) and spends real credits (14 for flux-2-flex).

    python docs/examples/client_quickstart.py [output-folder]
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from rivya_provider.client import GenerationRequest, PollPolicy, RivyaClient


def generate(client: RivyaClient, output: Path) -> Path:
    """Submit one flux-2-flex generation, wait for it and save the image under ``output``."""
    request = GenerationRequest(
        model="flux-2-flex",
        prompt="A lighthouse on a cliff at dawn, watercolour",
        params={"aspectRatio": "16:9", "resolution": "1K"},
    )
    started = time.monotonic()
    task = client.create_generation(request, idempotency_key="quickstart-lighthouse-1")
    print(f"submitted {task.id} ({task.model}, {task.reserved_credits} credits reserved)")
    done = client.wait_for_generation(task.id)
    saved = client.download(done.result_urls[0], output / f"{done.id}.png")
    seconds = time.monotonic() - started
    print(f"{done.status} in {seconds:.1f}s, charged {done.final_credits} credits")
    print(f"image: {saved.path} ({saved.size_bytes} bytes)")
    return Path(str(saved.path))


def main(argv: list[str]) -> int:
    output = Path(argv[1] if len(argv) > 1 else "demo-output")
    with ExitStack() as stack:
        api_key = os.environ.get("RIVYA_API_KEY")
        base_url = os.environ.get("RIVYA_BASE_URL", "https://rivya.ai")
        poll = PollPolicy()
        if not api_key:
            from rivya_provider.emulator import run_emulator

            emulator = stack.enter_context(run_emulator(queued_seconds=0.2, processing_seconds=1))
            api_key, base_url = emulator.api_key, emulator.base_url
            poll = PollPolicy(first_delay=0.5, interval=0.5)
            print(f"using the Rivya emulator at {base_url}")
        client = stack.enter_context(RivyaClient(api_key=api_key, base_url=base_url, poll=poll))
        print(f"balance: {client.get_credits().current_credits} credits")
        generate(client, output)
        print(f"balance: {client.get_credits().current_credits} credits")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
