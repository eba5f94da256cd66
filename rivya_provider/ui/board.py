"""A run's review board: one card per generate task instance, with what a reviewer decided.

Pure: :mod:`rivya_provider.ui.data` reads the rows from Airflow's metadata database, this module
decides what each card says. A card comes from a generate task instance (a
``RivyaGenerateOperator``, or any task that returned a manifest): from its manifest once it has
one, else from its state (in progress, with the model's price reserved; failed, with why).

Review marks come from human-in-the-loop answers (the return values of Airflow's
``HITLOperator`` tasks, ``{"chosen_options": [...]}``): an answer belongs to the latest card
with the same asset name (rendered map index) whose task started before the answer's task did.
A later card of an asset whose earlier card was rejected is a retake.

A task marks generations as published by returning a mapping with :data:`PUBLISHED_KEY`: the
list of the generation ids it published (the approval example's ``publish`` step does).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import pairwise
from typing import Any

from rivya_provider.client import CATALOG
from rivya_provider.manifest import GenerationManifest

#: The operator class whose task instances are cards even before they return a manifest.
GENERATE_OPERATOR = "RivyaGenerateOperator"
#: Task instance states of a generation still under way (credits are reserved meanwhile).
IN_PROGRESS_STATES = frozenset(
    {
        "scheduled",
        "queued",
        "running",
        "deferred",
        "up_for_retry",
        "up_for_reschedule",
        "restarting",
    }
)
#: Task instance states of a generation that never returned a manifest and will not.
FAILED_STATES = frozenset({"failed", "upstream_failed"})
#: DAG run states after which nothing on the board changes any more.
FINISHED_RUN_STATES = frozenset({"success", "failed"})
#: Chosen options read as an approval or a rejection (case-insensitive, at the start).
APPROVING = re.compile(r"^\s*(approve|accept|publish|yes|ok)", re.IGNORECASE)
REJECTING = re.compile(r"^\s*(reject|decline|deny|no\b|discard)", re.IGNORECASE)
#: The key of a task's return value that lists the generation ids the task published.
PUBLISHED_KEY = "rivya_published"


@dataclass(frozen=True)
class TaskRow:
    """One task instance of the run, as the board needs it."""

    task_id: str
    map_index: int
    state: str | None
    operator: str | None = None
    rendered_map_index: str | None = None
    try_number: int = 0
    started: datetime | None = None
    #: The rendered ``model`` argument, once Airflow stored the rendered fields.
    model: str | None = None

    @property
    def asset(self) -> str | None:
        """The rendered map index when a template set one (Airflow's own fallback is the index)."""
        name = self.rendered_map_index
        return name if name and name != str(self.map_index) else None

    @property
    def label(self) -> str:
        """What Airflow's own pages call this task instance."""
        if self.asset:
            return self.asset
        return task_name(self.task_id, self.map_index)


def task_name(task_id: str, map_index: int) -> str:
    """A task instance as Airflow's pages write it: ``review [2]``, or the task id alone."""
    return f"{task_id} [{map_index}]" if map_index >= 0 else task_id


@dataclass(frozen=True)
class Generation:
    """One generation of a run: the manifest, its number in the run (what file URLs name) and
    the task instance that returned it."""

    index: int
    task_id: str
    map_index: int
    manifest: GenerationManifest


@dataclass(frozen=True)
class Review:
    """A person's answer about one card: the options chosen and the task that asked."""

    task_id: str
    map_index: int
    chosen: tuple[str, ...]

    @property
    def verdict(self) -> str:
        """``approved``, ``rejected`` or ``answered`` (an option that reads as neither)."""
        if any(APPROVING.match(option) for option in self.chosen):
            return "approved"
        if any(REJECTING.match(option) for option in self.chosen):
            return "rejected"
        return "answered"


@dataclass(frozen=True)
class Card:
    """One asset's generation on the board."""

    label: str
    task: TaskRow
    #: ``succeeded``/``failed``... (a manifest's status), ``in progress``, ``waiting``.
    status: str
    generation: Generation | None = None
    model: str | None = None
    #: Charged (with a manifest) or reserved (in progress; ``None`` when the price is unknown).
    credits: float | None = None
    reason: str = ""
    review: Review | None = None
    retake: bool = False
    #: The task instance that published this generation (see :data:`PUBLISHED_KEY`).
    published_by: TaskRow | None = None

    @property
    def in_progress(self) -> bool:
        return self.status in ("in progress", "waiting")


@dataclass(frozen=True)
class Board:
    """Everything the run's page shows."""

    run_state: str | None
    cards: list[Card]

    @property
    def charged(self) -> float:
        return sum(c.credits or 0.0 for c in self.cards if c.generation is not None)

    @property
    def reserved(self) -> float:
        return sum(c.credits or 0.0 for c in self.cards if c.in_progress)

    @property
    def live(self) -> bool:
        """Whether the page may still change: the run has not finished, or a card is under way."""
        unfinished = self.run_state is not None and self.run_state not in FINISHED_RUN_STATES
        return unfinished or any(card.in_progress for card in self.cards)


def reserved_credits(model: str | None) -> float | None:
    """What a generation of ``model`` reserves: the catalogue's price, or ``None`` if unknown."""
    spec = CATALOG.get(model) if model else None
    return float(spec.base_credits) if spec and spec.base_credits is not None else None


def as_review(value: Any, task: TaskRow) -> Review | None:
    """Read a human-in-the-loop task's return value; ``None`` when it is not one.

    :param value: a deserialised XCom return value.
    :param task: the task instance that returned it.
    """
    if not isinstance(value, Mapping):
        return None
    chosen = value.get("chosen_options")
    if not isinstance(chosen, list) or not all(isinstance(o, str) for o in chosen):
        return None
    return Review(task.task_id, task.map_index, tuple(chosen))


def published_ids(value: Any) -> list[str]:
    """The generation ids a task's return value says it published (see :data:`PUBLISHED_KEY`).

    :param value: a deserialised XCom return value.
    """
    if not isinstance(value, Mapping):
        return []
    ids = value.get(PUBLISHED_KEY)
    if not isinstance(ids, list):
        return []
    return [i for i in ids if isinstance(i, str)]


def _card(task: TaskRow, generation: Generation | None) -> Card | None:
    if generation is not None:
        m = generation.manifest
        return Card(task.label, task, m.status, generation, m.model, float(m.charged_credits))
    if task.operator != GENERATE_OPERATOR:
        return None
    state = task.state
    if state in IN_PROGRESS_STATES:
        return Card(
            task.label,
            task,
            "in progress",
            model=task.model,
            credits=reserved_credits(task.model),
            reason=state or "",
        )
    if state in FAILED_STATES:
        tries = f" after {task.try_number} tries" if task.try_number > 1 else ""
        reason = "an upstream task failed" if state == "upstream_failed" else f"failed{tries}"
        return Card(task.label, task, "failed", model=task.model, credits=0.0, reason=reason)
    if state is None:
        return Card(task.label, task, "waiting", model=task.model, reason="not started")
    return None  # succeeded without a manifest, skipped, removed: no generation to show


def _started(task: TaskRow) -> float:
    return task.started.timestamp() if task.started else float("inf")


def _order(card: Card) -> tuple[int, str, str, int, float]:
    """Named assets first, by name, then unnamed task instances by task and index; in time."""
    started = _started(card.task)
    if card.task.asset:
        return (0, card.label, "", 0, started)
    return (1, "", card.task.task_id, card.task.map_index, started)


def build_board(
    *,
    run_state: str | None,
    tasks: Iterable[TaskRow],
    generations: Iterable[Generation],
    returns: Mapping[tuple[str, int], Any],
) -> Board:
    """Make the board of one run.

    :param run_state: the DAG run's state.
    :param tasks: the run's task instances.
    :param generations: the run's numbered manifests.
    :param returns: every task instance's return value, by ``(task_id, map_index)``.
    """
    by_task = {(g.task_id, g.map_index): g for g in generations}
    rows = list(tasks)
    cards = [card for t in rows if (card := _card(t, by_task.get((t.task_id, t.map_index))))]
    # A manifest whose task instance is gone from the table still gets a card.
    seen = {(c.task.task_id, c.task.map_index) for c in cards}
    for key, generation in by_task.items():
        if key not in seen:
            orphan = TaskRow(key[0], key[1], None)
            cards.append(
                Card(
                    orphan.label,
                    orphan,
                    generation.manifest.status,
                    generation,
                    generation.manifest.model,
                    float(generation.manifest.charged_credits),
                )
            )
    cards.sort(key=_order)
    reviews = [
        (t, review)
        for t in rows
        if (review := as_review(returns.get((t.task_id, t.map_index)), t)) and t.asset
    ]
    publishers = {
        generation_id: t
        for t in rows
        for generation_id in published_ids(returns.get((t.task_id, t.map_index)))
    }
    cards = [
        replace(card, published_by=publishers.get(card.generation.manifest.generation_id))
        if card.generation is not None
        else card
        for card in cards
    ]
    return Board(run_state, _marked(cards, reviews))


def _marked(cards: list[Card], reviews: list[tuple[TaskRow, Review]]) -> list[Card]:
    """Tie each answer to its card, and mark retakes of rejected cards."""
    by_asset: dict[str, list[int]] = defaultdict(list)
    for position, card in enumerate(cards):
        if card.task.asset:
            by_asset[card.label].append(position)
    marked = list(cards)
    for task, review in sorted(reviews, key=lambda pair: _started(pair[0])):
        earlier = [p for p in by_asset.get(task.asset or "", []) if _before(cards[p].task, task)]
        if earlier:
            latest = max(earlier, key=lambda p: _started(cards[p].task))
            marked[latest] = replace(marked[latest], review=review)
    for positions in by_asset.values():
        ordered = sorted(positions, key=lambda p: _started(cards[p].task))
        for previous, current in pairwise(ordered):
            answer = marked[previous].review
            if answer is not None and answer.verdict == "rejected":
                marked[current] = replace(marked[current], retake=True)
    return marked


def _before(generate: TaskRow, review: TaskRow) -> bool:
    """Whether the generation's task started before the review's (unknown times: no)."""
    if generate.started is None or review.started is None:
        return False
    return generate.started <= review.started
