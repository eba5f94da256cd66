"""Credit arithmetic of a DAG run: what its generations will cost and what they already spent.

Costs come from the model catalogue (``base_credits`` of each model; every documented model is
billed ``FIXED``), spend from the manifests the generate operators return through XCom. Nothing
here talks to Airflow or to Rivya: the operators fetch the catalogue, the balance and the XComs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rivya_provider.client import FieldProblem, ModelSpec, RequestValidationError
from rivya_provider.manifest import GenerationManifest

#: Manifest statuses whose ``charged_credits`` are final; the others still hold a reservation.


def _number(value: float) -> int | float:
    """Show whole credits as integers (``58``, not ``58.0``)."""
    return int(value) if float(value).is_integer() else value


@dataclass(frozen=True)
class ModelCost:
    """How many generations of one model a run makes, and what they cost together."""

    model: str
    count: int
    credits_each: int | float

    @property
    def credits(self) -> int | float:
        return _number(self.count * self.credits_each)


@dataclass(frozen=True)
class CostEstimate:
    """The credits a set of generations will cost, per model and in total."""

    models: tuple[ModelCost, ...] = field(default_factory=tuple)

    @property
    def credits(self) -> int | float:
        return _number(sum(cost.credits for cost in self.models))

    @property
    def generations(self) -> int:
        return sum(cost.count for cost in self.models)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form pushed to XCom."""
        return {
            "credits": self.credits,
            "generations": self.generations,
            "per_model": {
                cost.model: {
                    "count": cost.count,
                    "credits_each": cost.credits_each,
                    "credits": cost.credits,
                }
                for cost in self.models
            },
        }


def model_credits(model: str, catalog: Mapping[str, ModelSpec], *, field_name: str) -> int | float:
    """Return what one generation of ``model`` costs, from the catalogue.

    :param model: the model id.
    :param catalog: the model catalogue (live, or the built-in one).
    :param field_name: where the model was named, for the error.
    :raises RequestValidationError: when the catalogue states no price for the model.
    """
    spec = catalog.get(model)
    if spec is None or spec.base_credits is None:
        known = ", ".join(sorted(catalog))
        reason = "is not in the model catalogue" if spec is None else "has no base_credits"
        problem = FieldProblem(
            field_name, f"model {model!r} {reason}, so its cost is unknown (priced: {known})"
        )
        raise RequestValidationError([problem], subject="credit estimate")
    return spec.base_credits


def generation_list(value: Any, *, field_name: str = "generations") -> list[Mapping[str, Any]]:
    """Accept the generate kwargs a run expands over: a list of mappings (or its JSON).

    :param value: one mapping, a list of them, or a JSON string of either.
    :param field_name: the argument's name, for the error.
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            value = None
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        items = [value[index] for index in range(len(value))]
        if all(isinstance(item, Mapping) and item.get("model") for item in items):
            return items
    problem = FieldProblem(
        field_name, "must be a list of generate arguments, each a mapping with a 'model'"
    )
    raise RequestValidationError([problem], subject="credit estimate")


def estimate(
    generations: Sequence[Mapping[str, Any]], catalog: Mapping[str, ModelSpec]
) -> CostEstimate:
    """Price every generation of a run with the catalogue's credits per model.

    :param generations: generate arguments, one mapping per generation (``model`` is read).
    :param catalog: the model catalogue.
    """
    counts: dict[str, int] = {}
    for index, kwargs in enumerate(generations):
        model = str(kwargs["model"])
        model_credits(model, catalog, field_name=f"generations[{index}].model")
        counts[model] = counts.get(model, 0) + 1
    return CostEstimate(
        tuple(
            ModelCost(model, count, catalog[model].base_credits or 0)
            for model, count in counts.items()
        )
    )


def spent_by(manifests: Iterable[Any]) -> int | float:
    """Sum what the manifests of a run account for; each generation counts once.

    :param manifests: XCom values; anything that is not a generation manifest is ignored.
    """
    seen: dict[str, int | float] = {}
    for value in manifests:
        manifest = GenerationManifest.read(value)
        if manifest is not None:
            seen[manifest.generation_id] = manifest.spend
    return _number(sum(seen.values()))


def budget_value(value: Any, *, field_name: str = "credit_budget") -> int | float | None:
    """Read a budget as given or rendered (``40``, ``"40"``, ``""`` or ``None`` for none).

    :param value: the budget.
    :param field_name: the argument's name, for the error.
    """
    if value is None or (isinstance(value, str) and value.strip() in {"", "None", "null"}):
        return None
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or number < 0:
        problem = FieldProblem(field_name, f"must be a number of credits >= 0, got {value!r}")
        raise RequestValidationError([problem], subject="credit budget")
    return _number(number)
