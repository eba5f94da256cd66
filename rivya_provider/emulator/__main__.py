"""``rivya-emulator``: serve the Rivya emulator until Ctrl-C.

Example::

    rivya-emulator --port 8765 --credits 500 --failure-rate 0.1
    rivya-emulator --profile docs-minimal --model-file my-models.json
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import TypeAdapter, ValidationError

from rivya_provider.emulator.admin import ADMIN_PREFIX
from rivya_provider.emulator.app import create_app
from rivya_provider.emulator.config import EmulatorConfig
from rivya_provider.emulator.faults import Faults
from rivya_provider.emulator.models import DOCUMENTED_MODELS, ModelDef
from rivya_provider.emulator.profiles import PROFILES
from rivya_provider.emulator.server import base_url_of, bind_socket

#: Per-field profile flags: option, Profile field, argparse settings.
_PROFILE_FLAGS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("--create-status", "create_status", {"type": int, "choices": [200, 201]}),
    ("--create-shape", "create_shape", {"choices": ["full", "short"]}),
    ("--replay-header", "replay_header", {"action": argparse.BooleanOptionalAction}),
    ("--repeat", "repeat", {"choices": ["replay", "conflict"]}),
    (
        "--in-flight-retry-after",
        "in_flight_retry_after",
        {"action": argparse.BooleanOptionalAction},
    ),
    ("--insufficient-credits-status", "insufficient_credits_status", {"type": int}),
    ("--unknown-status", "unknown_status", {"metavar": "STATUS"}),
    ("--file-fields", "file_fields", {"choices": ["snake", "camel", "minimal"]}),
    ("--param-options", "param_options", {"choices": ["strings", "objects"]}),
    ("--upload-status", "upload_status", {"type": int, "choices": [200, 201]}),
)


def build_parser() -> argparse.ArgumentParser:
    """Describe the command line."""
    parser = argparse.ArgumentParser(
        prog="rivya-emulator",
        description="Serve a local, in-memory Rivya Public API v1 for tests and offline DAG runs.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8765, help="port; 0 picks a free one (default: %(default)s)"
    )
    parser.add_argument("--api-key", help="the API key to accept (default: a new rvya_sk_ key)")
    parser.add_argument(
        "--credits", type=int, default=1000, help="start balance (default: %(default)s)"
    )
    parser.add_argument(
        "--queued-seconds",
        type=float,
        default=0.5,
        help="how long a task stays queued (default: %(default)s)",
    )
    parser.add_argument(
        "--processing-seconds",
        type=float,
        default=2.0,
        help="how long a task stays processing (default: %(default)s)",
    )
    parser.add_argument(
        "--failure-rate",
        type=float,
        default=0.0,
        help="chance that a task ends in failed, 0 to 1 (default: %(default)s)",
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds added to every API request"
    )
    parser.add_argument("--seed", type=int, help="seed for the random faults (reproducible runs)")
    parser.add_argument(
        "--model-file",
        type=Path,
        help="JSON list of extra model definitions to serve (same id replaces a model)",
    )
    profiles = parser.add_argument_group(
        "profile", "how to answer where Rivya's docs are silent (default: the project's choice)"
    )
    profiles.add_argument(
        "--profile", default="default", choices=list(PROFILES), help="named profile to start from"
    )
    for option, field, settings in _PROFILE_FLAGS:
        profiles.add_argument(
            option, dest=field, default=None, help=f"profile field {field}", **settings
        )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
        help="uvicorn log level (default: %(default)s)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the emulator from the command line; return the exit code.

    :param argv: arguments without the program name (default: ``sys.argv[1:]``).
    """
    args = build_parser().parse_args(argv)
    settings: dict[str, Any] = {
        "credits": args.credits,
        "queued_seconds": args.queued_seconds,
        "processing_seconds": args.processing_seconds,
        "seed": args.seed,
    }
    if args.api_key:
        settings["api_key"] = args.api_key
    try:
        faults = Faults(task_failure_rate=args.failure_rate, latency_seconds=args.latency)
        changes = {
            f: getattr(args, f) for _, f, _ in _PROFILE_FLAGS if getattr(args, f) is not None
        }
        profile = PROFILES[args.profile].changed(**changes)
        models = _read_models(args.model_file) if args.model_file else ()
        config = EmulatorConfig(**settings, faults=faults, profile=profile, models=models)
        sock = bind_socket(host=args.host, port=args.port)
    except (ValueError, OSError, OverflowError) as exc:
        print(f"rivya-emulator: {exc}", file=sys.stderr)
        return 2
    base_url = base_url_of(sock)
    print(
        "Rivya emulator\n"
        f"  base URL : {base_url}\n"
        f"  API key  : {config.api_key}\n"
        f"  admin    : {base_url}{ADMIN_PREFIX}/state  (faults, credits, keys, reset)\n"
        f"  profile  : {args.profile}{_changed(changes)}\n"
        f"  models   : {', '.join(_model_ids(config))}\n"
        "Press Ctrl-C to stop.",
        flush=True,
    )
    if not ipaddress.ip_address(sock.getsockname()[0]).is_loopback:
        # The admin routes have no key: anyone who reaches the port can change the emulator.
        print(
            f"Warning: listening on {args.host}; the admin routes are open to the network.",
            flush=True,
        )
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), log_level=args.log_level, lifespan="off")
    )
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        # uvicorn shuts down on the first Ctrl-C, then re-raises it for the caller.
        pass
    finally:
        sock.close()
    print("Rivya emulator stopped.", flush=True)
    return 0


def _read_models(path: Path) -> tuple[ModelDef, ...]:
    """Read a JSON list of model definitions.

    :param path: the file.
    :raises ValueError: when it is not readable JSON or a definition is invalid.
    """
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"--model-file {path}: not valid JSON ({exc})") from None
    try:
        return TypeAdapter(tuple[ModelDef, ...]).validate_python(raw)
    except ValidationError as exc:
        raise ValueError(f"--model-file {path}: {exc}") from None


def _changed(changes: dict[str, Any]) -> str:
    return f" (changed: {', '.join(changes)})" if changes else ""


def _model_ids(config: EmulatorConfig) -> list[str]:
    ids = [m.id for m in DOCUMENTED_MODELS]
    return ids + [m.id for m in config.models if m.id not in ids]


if __name__ == "__main__":
    sys.exit(main())
