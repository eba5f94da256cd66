"""``python -m demo`` (``make demo``): the marketing refresh DAG end to end, then a gallery.

By default it runs against an emulator started on a free 127.0.0.1 port: no account needed.
With ``--real`` (or ``RIVYA_DEMO_REAL=1``) it uses the Rivya account of ``RIVYA_API_KEY`` at
``RIVYA_BASE_URL`` (default https://rivya.ai), which spends real credits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from demo.airflow_run import DagTestResult, TaskState, airflow_env, dag_test, migrate
from demo.gallery import asset_cards, table, write_gallery

ROOT = Path(__file__).resolve().parents[1]
DAGS_FOLDER = ROOT / "dags_examples"
DAG_ID = "rivya_marketing_refresh"
ORDER = ("queued", "running", "waiting", "retrying", "done", "failed")


@dataclass(frozen=True)
class Target:
    """Where the demo's Rivya calls go."""

    base_url: str
    api_key: str
    label: str


def build_parser() -> argparse.ArgumentParser:
    """Describe the command line."""
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--output", type=Path, default=ROOT / "demo-output", help="folder for the runs' results"
    )
    parser.add_argument(
        "--campaign",
        type=Path,
        default=DAGS_FOLDER / "campaign.json",
        help="campaign file to generate (default: the example's)",
    )
    parser.add_argument(
        "--real",
        action="store_true",
        default=os.environ.get("RIVYA_DEMO_REAL", "") not in ("", "0"),
        help="use the real Rivya account of RIVYA_API_KEY (spends credits)",
    )
    parser.add_argument(
        "--timeout", type=float, default=900, help="seconds before the run is stopped"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the demo; return the exit code (1 when any task failed)."""
    args = build_parser().parse_args(argv)
    campaign = json.loads(args.campaign.read_text())
    run_folder, day = new_run_folder(args.output), run_date()
    with target(real=args.real) as where:
        print(f"Rivya: {where.label}")
        result = run_dag(
            where,
            campaign=campaign,
            campaign_file=args.campaign,
            folder=run_folder,
            day=day,
            timeout=args.timeout,
        )
    return report(campaign, result, run_folder / day)


@contextmanager
def target(*, real: bool) -> Iterator[Target]:
    """Yield the real account's settings, or an emulator's for the duration of the block."""
    if real:
        api_key = os.environ.get("RIVYA_API_KEY")
        if not api_key:
            raise SystemExit("--real needs the API key in the RIVYA_API_KEY environment variable")
        base_url = os.environ.get("RIVYA_BASE_URL", "https://rivya.ai")
        yield Target(base_url, api_key, f"{base_url} (real account: this run spends credits)")
        return
    from rivya_provider.emulator import run_emulator

    with run_emulator() as emulator:
        yield Target(emulator.base_url, emulator.api_key, f"emulator at {emulator.base_url}")
    print("Emulator stopped.")


def new_run_folder(output: Path) -> Path:
    """Create and return a fresh ``<output>/<timestamp>`` folder (earlier runs are kept)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for suffix in ["", *(f"-{n}" for n in range(2, 100))]:
        folder = output / f"{stamp}{suffix}"
        try:
            folder.mkdir(parents=True)
        except FileExistsError:
            continue
        return folder.resolve()
    raise SystemExit(f"cannot create a new run folder in {output}")


def run_dag(
    where: Target,
    *,
    campaign: dict[str, Any],
    campaign_file: Path,
    folder: Path,
    day: str,
    timeout: float,
) -> DagTestResult:
    """Run the marketing refresh with ``airflow dags test`` in a temporary AIRFLOW_HOME."""
    connection = {"conn_type": "rivya", "host": where.base_url, "password": where.api_key}
    with tempfile.TemporaryDirectory(prefix="rivya-demo-airflow-") as home:
        env = airflow_env(
            Path(home),
            dags_folder=DAGS_FOLDER,
            connections={"rivya_default": json.dumps(connection)},
        )
        print("Creating a throw-away Airflow metadata database (SQLite)...", flush=True)
        migrate(env)
        print(f"Running {DAG_ID} with `airflow dags test`; Airflow's output: {folder}/airflow.log")
        return dag_test(
            DAG_ID,
            env=env,
            conf={"campaign": str(campaign_file.resolve()), "output_root": str(folder)},
            logical_date=day,
            log_path=folder / "airflow.log",
            on_change=show_progress,
            timeout=timeout,
            labels={("generate", i): a["name"] for i, a in enumerate(campaign["assets"])},
        )


def run_date() -> str:
    """Return today's date in UTC, the logical date of the demo's run."""
    return datetime.now(UTC).date().isoformat()


def show_progress(seconds: float, task: TaskState, tasks: list[TaskState]) -> None:
    """Print one line per state change, with how many tasks are in each state."""
    counts = Counter(t.word for t in tasks)
    states = " · ".join(f"{counts[w]} {w}" for w in ORDER if counts[w])
    print(f"  [{seconds:5.1f}s] {task.name:<30} {task.word:<9} | {states}", flush=True)


def report(campaign: dict[str, Any], result: DagTestResult, images: Path) -> int:
    """Write the gallery, print the table and where things are; return the exit code."""
    folder = images.parent
    summary_file = images / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else None
    cards = asset_cards(campaign, summary, result)
    index = write_gallery(
        folder, cards, title=f"Rivya demo: {campaign['campaign']} ({folder.name})"
    )
    print()
    print(table(cards))
    print()
    if images.is_dir():
        print(f"Images:  {images}")
    print(f"Gallery: {index}")
    if result.returncode == 0 and not result.failed:
        return 0
    print(f"\nThe run failed (airflow dags test exit code {result.returncode}):", file=sys.stderr)
    blocked = [t.name for t in result.failed if t.state == "upstream_failed"]
    for task in result.failed:
        if task.state != "upstream_failed":
            print(f"  {task.name}: {result.error_of(task)}", file=sys.stderr)
    if blocked:
        print(f"  not run, as an upstream task failed: {', '.join(blocked)}", file=sys.stderr)
    print(f"Airflow's output: {result.log_path}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
