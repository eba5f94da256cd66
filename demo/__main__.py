"""``python -m demo`` (``make demo``): the marketing refresh DAG end to end, then a gallery.

By default it runs against an emulator started on a free 127.0.0.1 port: no account needed.
With ``--real`` (or ``RIVYA_DEMO_REAL=1``) it uses the Rivya account of ``RIVYA_API_KEY`` at
``RIVYA_BASE_URL`` (default https://rivya.ai), which spends real credits.

With ``--approve`` it runs the approval DAG instead (a person approves each image before it is
published) and plays that person through Airflow's REST API: it rejects the first asset's image
once, so that asset is generated anew, and approves every other image.

With ``--ui`` it then serves the run in the Airflow UI (:mod:`demo.ui`) until Ctrl-C, with the
emulator still answering, so the run's "Rivya generations" tab and the "Rivya credits" page can
be looked at; a scheduler, a dag-processor and a triggerer run beside the api-server, so the rest
of the UI (health, task logs, the Connection's Test button, Trigger) works as it says.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from demo import ui
from demo.airflow_run import (
    DagTestResult,
    TaskState,
    airflow_env,
    dag_test,
    migrate,
    stop,
    store_connections,
)
from demo.gallery import asset_cards, table, write_gallery
from demo.review import PREFIX

ROOT = Path(__file__).resolve().parents[1]
DAGS_FOLDER = ROOT / "dags_examples"
DAG_ID = "rivya_marketing_refresh"
APPROVAL_DAG_ID = "rivya_marketing_approval"
ORDER = ("queued", "running", "waiting", "retrying", "done", "failed")


@dataclass(frozen=True)
class Target:
    """Where the demo's Rivya calls go."""

    base_url: str
    api_key: str = field(repr=False)
    label: str = ""
    #: Said under the gallery's heading.
    source: str = ""
    #: Connection extras (retry and timeout settings), e.g. from ``RIVYA_CONN_EXTRA``.
    extra: dict[str, Any] = field(default_factory=dict)


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
        "--approve",
        action="store_true",
        help="run the approval DAG; reject the first asset's image once, approve the rest",
    )
    parser.add_argument(
        "--ui",
        action="store_true",
        help="then serve the run in the Airflow UI (Rivya view included) until Ctrl-C",
    )
    parser.add_argument(
        "--ui-seconds",
        type=float,
        default=None,
        metavar="N",
        help="with --ui: stop serving after N seconds instead of at Ctrl-C",
    )
    parser.add_argument(
        "--timeout", type=float, default=900, help="seconds before the run is stopped"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the demo; return the exit code (1 when any task failed)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.ui_seconds is not None and not args.ui:
        parser.error("--ui-seconds needs --ui")
    if args.ui and not ui.supported():
        raise SystemExit("--ui needs Airflow 3.1+ (Airflow 3.0 has no plugin views)")
    campaign = json.loads(args.campaign.read_text())
    dag_id = APPROVAL_DAG_ID if args.approve else DAG_ID
    with target(real=args.real) as where:
        print(f"Rivya: {where.label}")
        with airflow_home(
            where, kept_in=args.output / ".airflow-db", store_connection=args.ui
        ) as env:
            code = run_and_report(args, campaign, env, dag_id=dag_id, source=where.source)
    return code


def run_and_report(
    args: argparse.Namespace,
    campaign: dict[str, Any],
    env: Mapping[str, str],
    *,
    dag_id: str,
    source: str,
) -> int:
    """Run the DAG, report on it and serve it in the UI when asked; return the exit code.

    :param args: the parsed command line.
    :param campaign: the campaign file's content.
    :param env: from :func:`airflow_home`.
    :param dag_id: the DAG to run.
    :param source: where the images come from, said in the gallery.
    """
    run_folder, logical_date = new_run_folder(args.output), run_start()
    result = run_dag(
        env,
        campaign=campaign,
        campaign_file=args.campaign,
        folder=run_folder,
        logical_date=logical_date,
        timeout=args.timeout,
        dag_id=dag_id,
    )
    images = run_images(run_folder / logical_date.date().isoformat())
    code = report(campaign, result, images, folder=run_folder, source=source)
    if args.approve:
        report_approvals(images / "summary.json")
    if args.ui:
        served = ui.serve_run(env, dag_id=dag_id, folder=run_folder, seconds=args.ui_seconds)
        code = max(code, served)
    return code


@contextmanager
def target(*, real: bool) -> Iterator[Target]:
    """Yield the real account's settings, or an emulator's for the duration of the block."""
    if real:
        api_key = os.environ.get("RIVYA_API_KEY")
        if not api_key:
            raise SystemExit("--real needs the API key in the RIVYA_API_KEY environment variable")
        base_url = os.environ.get("RIVYA_BASE_URL", "https://rivya.ai")
        yield Target(
            base_url,
            api_key,
            f"{base_url} (real account: this run spends credits)",
            source=f"generated by {base_url}",
            extra=json.loads(os.environ.get("RIVYA_CONN_EXTRA") or "{}"),
        )
        return
    with emulator_starting() as (base_url, api_key):
        yield Target(
            base_url,
            api_key,
            f"emulator at {base_url}",
            source="placeholder images from the Rivya emulator (no account used)",
        )
    print("Emulator stopped.")


@contextmanager
def emulator_starting() -> Iterator[tuple[str, str]]:
    """Yield an emulator's base URL and key at once; it starts in a thread meanwhile.

    Importing and starting it (FastAPI, uvicorn) takes this process about half a second, which
    then overlaps Airflow's start in its own process: Airflow's first call to Rivya comes seconds
    later, and one made sooner would wait in the listening socket's backlog.
    """
    sock = socket.create_server(("127.0.0.1", 0), backlog=2048)
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    api_key = "rvya_sk_" + secrets.token_urlsafe(24)
    done = threading.Event()
    failed: list[BaseException] = []

    def serve() -> None:
        try:
            from rivya_provider.emulator import run_emulator

            with run_emulator(sock=sock, api_key=api_key):
                done.wait()
        except BaseException as exc:  # raised again when the block ends
            failed.append(exc)
            sock.close()  # Airflow's calls are refused instead of waiting
            # Said at once: the run goes on until its tasks fail, and that takes a while.
            print(
                f"The Rivya emulator did not start ({type(exc).__name__}: {exc}); "
                "the run's calls to it are refused, and the demo fails when it ends",
                file=sys.stderr,
                flush=True,
            )

    server = threading.Thread(target=serve, name="rivya-emulator-start", daemon=True)
    server.start()
    try:
        yield base_url, api_key
    finally:
        done.set()
        server.join(timeout=15)
    if failed:
        raise RuntimeError("the Rivya emulator did not run") from failed[0]


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


@contextmanager
def airflow_home(
    where: Target, *, kept_in: Path | None = None, store_connection: bool = False
) -> Iterator[dict[str, str]]:
    """Yield the environment of a throw-away AIRFLOW_HOME with a fresh SQLite database.

    :param where: where the ``rivya_default`` Connection points.
    :param kept_in: where a migrated database is kept for the next runs (see :func:`migrate`).
    :param store_connection: keep the Connection in the database (so the UI lists it, and edits
        made there are the ones tasks use) instead of an ``AIRFLOW_CONN_*`` variable.
    """
    connection = {
        "conn_type": "rivya",
        "host": where.base_url,
        "password": where.api_key,
        "extra": where.extra,
    }
    with tempfile.TemporaryDirectory(prefix="rivya-demo-airflow-") as home:
        connections = {"rivya_default": json.dumps(connection)}
        env = airflow_env(
            Path(home), dags_folder=DAGS_FOLDER, connections={} if store_connection else connections
        )
        print("Creating a throw-away Airflow metadata database (SQLite)...", flush=True)
        migrate(env, kept_in=kept_in)
        if store_connection:
            store_connections(env, connections)
        yield env


def run_dag(
    env: Mapping[str, str],
    *,
    campaign: dict[str, Any],
    campaign_file: Path,
    folder: Path,
    logical_date: datetime,
    timeout: float,
    dag_id: str = DAG_ID,
) -> DagTestResult:
    """Run the marketing refresh with ``airflow dags test`` in the demo's AIRFLOW_HOME.

    :param env: from :func:`airflow_home`.
    :param logical_date: the run's logical date, from :func:`run_start`.
    :param dag_id: the DAG to run; the approval DAG gets a reviewer answering its requests.
    """
    names = [a["name"] for a in campaign["assets"]]
    print(f"Running {dag_id} with `airflow dags test`; Airflow's output: {folder}/airflow.log")
    approve = dag_id == APPROVAL_DAG_ID
    review = reviewer(env, reject=names[0], log_path=folder / "reviewer.log")
    with review if approve else nullcontext():
        return dag_test(
            dag_id,
            env=env,
            conf={"campaign": str(campaign_file.resolve()), "output_root": str(folder)},
            logical_date=logical_date.isoformat(),
            log_path=folder / "airflow.log",
            on_change=show_progress,
            timeout=timeout,
            labels={
                (task, i): name for task in ("generate", "review") for i, name in enumerate(names)
            },
        )


@contextmanager
def reviewer(env: Mapping[str, str], *, reject: str, log_path: Path) -> Iterator[None]:
    """Answer the approval DAG's requests in a child process (``demo.review``) while it runs.

    :param env: the Airflow environment of the run (the reviewer shares its database).
    :param reject: the asset whose first image is rejected.
    :param log_path: where the reviewer's own errors go.
    """
    print(
        f"Reviewer: rejects the first image of {reject} (it is generated anew), approves the rest"
    )
    command = [sys.executable, "-m", "demo.review", APPROVAL_DAG_ID, "--reject", reject]
    log = log_path.open("wb")
    child = subprocess.Popen(  # noqa: S603
        command, env=dict(env), cwd=ROOT, stdout=subprocess.PIPE, stderr=log
    )
    relay = threading.Thread(target=_relay, args=(child, log), daemon=True)
    relay.start()
    try:
        yield
    finally:
        stop(child, grace=30)
        relay.join(timeout=5)
        log.close()


def _relay(child: subprocess.Popen[bytes], log: BinaryIO) -> None:
    """Print the reviewer's decisions as they come, among the progress; log everything else."""
    assert child.stdout is not None
    for line in child.stdout:
        text = line.decode(errors="replace")
        if text.startswith(PREFIX):
            print(text.rstrip(), flush=True)
        else:
            log.write(line)


def run_images(day_folder: Path) -> Path:
    """Return the folder the DAG run wrote, ``<day>/<run id>`` (the day's when it wrote none)."""
    runs = sorted(p for p in day_folder.glob("*") if p.is_dir()) if day_folder.is_dir() else []
    return runs[-1] if runs else day_folder


def run_start() -> datetime:
    """Return now in UTC, the logical date of the demo's run.

    ``airflow dags test`` also makes it the run's start date: a day's midnight there would make
    the Airflow UI count the hours since midnight as the run's duration.
    """
    return datetime.now(timezone.utc)


def show_progress(seconds: float, task: TaskState, tasks: list[TaskState]) -> None:
    """Print one line per state change, with how many tasks are in each state."""
    counts = Counter(t.word for t in tasks)
    states = " · ".join(f"{counts[w]} {w}" for w in ORDER if counts[w])
    print(f"  [{seconds:5.1f}s] {task.name:<30} {task.word:<9} | {states}", flush=True)


def report(
    campaign: dict[str, Any], result: DagTestResult, images: Path, *, folder: Path, source: str
) -> int:
    """Write the gallery, print the table and where things are; return the exit code.

    :param images: the folder the DAG run wrote its images and ``summary.json`` to.
    :param folder: the demo run's folder (the gallery goes there).
    """
    summary_file = images / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else None
    cards = asset_cards(campaign, summary, result)
    title = f"Rivya demo: {campaign['campaign']} ({folder.name})"
    index = write_gallery(folder, cards, title=title, source=source)
    print()
    print(table(cards))
    print()
    if images.is_dir():
        print(f"Images:  {images}")
    print(f"Gallery: {index}")
    if result.returncode == 0 and not result.failed and not result.timed_out:
        return 0
    why = "stopped after --timeout" if result.timed_out else f"exit code {result.returncode}"
    print(f"\nThe run failed (airflow dags test {why}):", file=sys.stderr)
    blocked = [t.name for t in result.failed if t.state == "upstream_failed"]
    for task in result.failed:
        if task.state != "upstream_failed":
            print(f"  {task.name}: {result.error_of(task)}", file=sys.stderr)
    if blocked:
        print(f"  not run, as an upstream task failed: {', '.join(blocked)}", file=sys.stderr)
    print(f"Airflow's output: {result.log_path}", file=sys.stderr)
    return 1


def report_approvals(summary_file: Path) -> None:
    """Print what the approval DAG published, and its credits: the table's, then all of them.

    The table (and the gallery) shows one image per asset, the published one, so its total is
    what the published images cost; the rejected images were paid for too, and the credits line
    adds them to it: what the run spent.
    """
    if not summary_file.is_file():
        return
    summary = json.loads(summary_file.read_text())
    for line in approval_lines(summary):
        print(line)


def approval_lines(summary: Mapping[str, Any]) -> list[str]:
    """Return the approval report's lines for the DAG's ``summary.json`` content.

    :param summary: ``published`` and ``rejected`` (lists), ``failed`` (the assets dropped),
        ``assets`` (the published images' manifests) and ``credits`` (every generation's).
    """
    published, rejected = len(summary["published"]), len(summary["rejected"])
    dropped = ", ".join(summary["failed"]) or "none"
    in_table = sum(m.get("charged_credits") or 0 for m in summary["assets"])
    in_all = summary["credits"]
    if rejected:
        spent = (
            f"{_number(in_table)} for the {_count(published, 'published image')} (the table's "
            f"total) + {_number(in_all - in_table)} for {_count(rejected, 'rejected image')} = "
            f"{_number(in_all)} credits in all"
        )
    else:
        spent = f"{_number(in_all)} in all (the table's total; no image was rejected)"
    lines = [
        f"Approval: {_count(published, 'image')} published, {rejected} rejected; dropped after "
        f"a second rejection: {dropped}",
        f"Credits: {spent}",
    ]
    if summary["published"]:
        lines.append(f"Published: {Path(summary['published'][0]).parent}")
    return lines


def _count(number: int, noun: str) -> str:
    """``number`` and ``noun``, plural unless one: "1 image", "2 images"."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _number(value: float) -> str:
    """A credit count as the table prints it, without a trailing ".0"."""
    return f"{value:g}"


if __name__ == "__main__":
    sys.exit(main())
