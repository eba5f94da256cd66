"""``RivyaGenerateOperator``: upload references, submit one generation, wait, hand on a manifest."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any, ClassVar

from airflow.providers.common.compat.sdk import BaseOperator, conf
from pydantic import ValidationError

from rivya_provider import checks, tasklog
from rivya_provider.assets import annotate_outlet_events
from rivya_provider.budget import budget_value, model_credits
from rivya_provider.client import (
    CATALOG,
    DEFAULT_MAX_DOWNLOAD_BYTES,
    REFERENCE_ITEMS_PARAM,
    GenerationFailedError,
    GenerationRequest,
    GenerationTask,
    GenerationTimeoutError,
    ModelSpec,
    PollSchedule,
    RequestValidationError,
    TaskStatus,
    Wait,
    learn,
    look_before_deferring,
    pydantic_problems,
    schedule_for,
    validate_generation,
    wait_sync,
)
from rivya_provider.exceptions import failing_fast
from rivya_provider.hooks.rivya import RivyaHook
from rivya_provider.idempotency import KeyChain, input_fingerprint
from rivya_provider.links import RivyaResultLink
from rivya_provider.manifest import GenerationManifest
from rivya_provider.operators._inputs import item_list, param_dict
from rivya_provider.operators._lineage import GenerationLineage
from rivya_provider.operators._period import (
    PeriodBudget,
    RunRegister,
    checked_arguments,
    generation_problem,
    period_spend,
    resolve_period_budget,
)
from rivya_provider.operators._references import (
    FileSource,
    ReferenceFile,
    as_source_list,
    inspect_files,
    upload_files,
)
from rivya_provider.operators._spend import SpendsCredits, budget_task_ids
from rivya_provider.operators.budget import check_generation_budget
from rivya_provider.outputs import copy_results, run_folder
from rivya_provider.resume import Submission, TaskMemory, submit_or_resume
from rivya_provider.triggers.events import read_event
from rivya_provider.triggers.generation import RivyaGenerationTrigger, fire_guard

#: How long a create waits out a conflict when the body may differ from an earlier try's.
UNSURE_CONFLICT_WAIT_SECONDS = 60.0


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class RivyaGenerateOperator(GenerationLineage, SpendsCredits, BaseOperator):
    """Generate media with a Rivya model and return a small JSON manifest of the result.

    Inputs are rendered, then checked locally (prompt, params, reference counts, file types and
    sizes) before any upload or credit. Reference files are uploaded for you. Waiting happens in
    the triggerer when ``deferrable`` (the default follows ``[operators] default_deferrable``), or
    by polling in the worker otherwise.

    **One paid generation per task instance.** The Idempotency-Key comes from the dag id, task
    id, run id, map index and a fingerprint of the inputs as given (reference files by content
    hash), never from the try number. On a retry or a cleared task, the generation an earlier try
    submitted is found again (through ``task_state_store`` on Airflow 3.3+, or Rivya replaying the
    key): still running, it is waited for; succeeded, it is reused at no charge; failed (which
    costs nothing), a new one is submitted under the next key of a deterministic chain. A new DAG
    run, or changed inputs, make a new generation. ``fresh_generation_on_retry=True`` makes
    every try submit (and pay for) its own generation.

    :param model: Rivya model id, e.g. ``flux-2-flex``; unknown ids are sent as-is.
    :param prompt: the prompt.
    :param model_params: the model's ``params`` (e.g. ``{"aspectRatio": "16:9"}``), or a
        JSON string of them as templates render it.
    :param reference_files: local paths or ObjectStoragePath URIs (``s3://``, ``file://``...)
        to upload and pass as reference media (one, a list, or a JSON list).
    :param reference_items: reference media items already uploaded (a list of mappings, or a
        JSON string), e.g. the XCom of ``RivyaUploadFileOperator``.
    :param client_request_id: your trace id sent with the request (at most 128 characters).
    :param rivya_conn_id: the Airflow Connection of type ``rivya``.
    :param wait_for_completion: wait for the generation to end; when ``False`` the manifest
        is returned right after submitting (wait later with ``RivyaGenerationSensor``).
    :param deferrable: wait in the triggerer instead of holding a worker slot.
    :param generation_timeout: seconds (or timedelta) from the generation's submission (local
        clock) after which waiting fails with ``GenerationTimeoutError``; retries do not
        extend it.
    :param poll_interval: seconds between status polls; by default (``None``) they follow the
        model's expected generation time (a hint in Rivya's ``/models``, else the durations
        seen so far in this process): dense around the expected end, sparser the longer the
        wait, at most 30 s apart.
    :param first_poll_delay: seconds between submitting and the first poll; by default
        (``None``) 80 % of the expected generation time, or 2.5 s when nothing is known yet,
        counted from Rivya's answer to the create. A deferrable task makes the polls due within
        10 s of submitting in the worker (5 s when nothing is known of the model), so a quick
        generation finishes without deferring; a trigger that could fire within
        ``[workers] min_heartbeat_interval`` of deferring holds a result back for the rest of
        that window, to stay clear of an Airflow 3.3 race.
    :param output_path: folder (ObjectStoragePath URI or local path) to copy results to, as
        ``<generation id>-<n>.<ext>``; the manifest then lists the copies.
    :param output_dir: folder (ObjectStoragePath URI or local path) under which each DAG run
        gets its own: results go to ``<output_dir>/<run date>/<run id>/`` (the date of the
        run's ``run_after``, ``YYYY-MM-DD``; the run id made a safe folder name by
        ``rivya_provider.outputs.folder_name``). Give ``output_path`` or ``output_dir``, not both.
    :param max_download_bytes: size cap of each copied result.
    :param fresh_generation_on_retry: opt in to a new (paid) generation on every try.
    :param validate: check inputs against Rivya's live model catalogue (``/models``, or the
        built-in one when it cannot be read) before anything is spent; turn off to leave every
        check to Rivya.
    :param credit_budget: credits the whole DAG run may spend (templated; ``None`` falls back
        to the Connection's ``credit_budget`` extra). Before submitting a new generation, the
        credits in the XCom manifests of the run's generate tasks plus this generation's price
        must fit in it, or the task fails at once (``RivyaBudgetExceededError``). A generation
        this task instance finds again (after deferring, or on a retry through
        ``task_state_store`` on Airflow 3.3+) is never refused. See the credit budgets docs
        for what concurrent tasks can overspend.
    :param period_budget: credits all runs of this DAG may spend in one calendar period (UTC;
        templated; ``None`` falls back to the Connection's ``period_budget`` extra). Before
        submitting a new generation, the credits in the XCom manifests of the generate tasks of
        the DAG's runs in the period (this run's included) plus this generation's price must
        fit in it, or the task fails at once (``RivyaBudgetExceededError``); generations found
        again are never refused. The run is registered for the period in an Airflow Variable,
        ``rivya_spend:<dag_id>:<period>``. See the credit budgets docs.
    :param budget_period: the period of ``period_budget``: ``"day"``, ``"week"`` (Monday to
        Sunday) or ``"month"`` (templated; ``None`` falls back to the Connection's
        ``budget_period`` extra, else a month). A run belongs to the period of its
        ``run_after``.
    :param budget_task_ids: the tasks whose manifests count against ``credit_budget`` and
        ``period_budget`` (default: every ``RivyaGenerateOperator`` task of the DAG, mapped or
        not).

    With Asset ``outlets``, each Asset's event gets ``generation_id``, ``model``, ``files`` and
    ``credits`` in its ``extra``. With the ``openlineage`` extra installed, the task emits
    OpenLineage events: reference files and items in, copied results out, and a
    ``rivyaGeneration`` run facet.
    """

    template_fields: Sequence[str] = (
        "model",
        "prompt",
        "model_params",
        "reference_files",
        "reference_items",
        "client_request_id",
        "output_path",
        "output_dir",
        "credit_budget",
        "period_budget",
        "budget_period",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {
        "model_params": "json",
        "reference_items": "json",
    }
    operator_extra_links = (RivyaResultLink(),)
    ui_color = "#f4e9ff"

    def __init__(
        self,
        *,
        model: str,
        prompt: str | None = None,
        model_params: Mapping[str, Any] | str | None = None,
        reference_files: FileSource | Sequence[FileSource] | None = None,
        reference_items: Any = None,
        client_request_id: str | None = None,
        rivya_conn_id: str = RivyaHook.default_conn_name,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        generation_timeout: float | timedelta = 1800.0,
        poll_interval: float | None = None,
        first_poll_delay: float | None = None,
        output_path: str | None = None,
        output_dir: str | None = None,
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
        fresh_generation_on_retry: bool = False,
        validate: bool = True,
        credit_budget: float | str | None = None,
        period_budget: float | str | None = None,
        budget_period: str | None = None,
        budget_task_ids: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.prompt = prompt
        self.model_params = model_params
        self.reference_files = reference_files
        self.reference_items = reference_items
        self.client_request_id = client_request_id
        self.rivya_conn_id = rivya_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.generation_timeout = generation_timeout
        self.poll_interval = poll_interval
        self.first_poll_delay = first_poll_delay
        self.output_path = output_path
        self.output_dir = output_dir
        self.max_download_bytes = max_download_bytes
        self.fresh_generation_on_retry = fresh_generation_on_retry
        self.validate = validate
        self.credit_budget = credit_budget
        self.period_budget = period_budget
        self.budget_period = budget_period
        self.budget_task_ids = budget_task_ids
        checks.generate_arguments(self)
        checked_arguments(
            period_budget=period_budget, budget_period=budget_period, task_id=self.task_id
        )

    @cached_property
    def hook(self) -> RivyaHook:
        return RivyaHook(rivya_conn_id=self.rivya_conn_id)

    def execute(self, context: Any) -> dict[str, Any]:
        with failing_fast(self.rivya_conn_id):
            try:
                return self._execute(context)
            except (GenerationFailedError, GenerationTimeoutError) as exc:
                self._remember_error(exc)
                raise
            finally:
                self.hook.close()

    def _execute(self, context: Any) -> dict[str, Any]:
        RivyaResultLink.persist(context, "")
        given_items, files = self._checked_inputs()
        budget = self._budget()
        period = self._period_budget(context)
        chain = self._key_chain(context, given_items, files)
        memory = TaskMemory(context.get("task_state_store"))
        client = self.hook.client
        uploaded = upload_files(client, files, model=self.model, memory=memory)
        catalog = client.model_catalog() if self.validate else None
        request = self._request(given_items + uploaded, catalog)
        submission = submit_or_resume(
            client,
            request,
            chain=chain,
            memory=memory,
            conflict_wait=self._conflict_wait(memory, files),
            before_new=(
                None
                if budget is None and period is None
                else lambda: self._check_budget(context, budget, period)
            ),
            wait_up_to=_seconds(self.generation_timeout) if self.wait_for_completion else None,
        )
        task = submission.task
        self._remember(task, submission.origin)
        wire = request.to_wire()
        if not self.wait_for_completion or task.status.is_terminal:
            return self._finish(
                context,
                task,
                wire,
                submission.origin,
                submission.idempotency_key,
                reused=submission.reused,
            )
        deadline = submission.started_at + _seconds(self.generation_timeout)
        spec = catalog.get(self.model) if catalog is not None else None
        schedule = schedule_for(
            base_url=client.config.base_url,
            model=self.model,
            hint=spec.expected_seconds if spec is not None else None,
            interval=self.poll_interval,
            first_delay=self.first_poll_delay,
        )
        wait = Wait(
            task_id=task.id,
            schedule=schedule,
            deadline=deadline,
            retry=client.config.retry,
            since=submission.answered_at,
            clock=time.time,
        )
        # A generation found again is polled at once; a new one when its schedule says.
        first = 0.0
        if submission.is_new:
            first = max(0.0, submission.answered_at + schedule.first() - time.time())

        def poll(within: float) -> GenerationTask:
            return client.poll_generation(task.id, turn_within=within)

        if self.deferrable:
            if submission.is_new:
                # A quick generation is finished here, without a trip through the triggerer.
                look = look_before_deferring(poll, wait, task, first=first, sleep=time.sleep)
                task, first = look.task, look.next_poll
                if task.status.is_terminal:
                    self._learn(task, submission)
                    return self._finish(
                        context, task, wire, submission.origin, submission.idempotency_key
                    )
            self._defer(
                submission,
                wire,
                deadline,
                first,
                schedule,
                status=task.status_as_reported,
                try_number=context["ti"].try_number,
            )
        tasklog.waiting(
            self.log,
            generation_id=task.id,
            where="in the worker",
            status=task.status_as_reported,
            elapsed=time.time() - submission.started_at,
            left=deadline - time.time(),
        )
        task = wait_sync(poll, wait, first=first, sleep=time.sleep)
        self._learn(task, submission)
        return self._finish(context, task, wire, submission.origin, submission.idempotency_key)

    def _learn(self, task: GenerationTask, submission: Submission) -> None:
        """Fold a new generation's duration into its model's estimate on this machine."""
        if submission.is_new:
            learn(
                task,
                base_url=self.hook.client.config.base_url,
                submitted_at=submission.answered_at,
                now=time.time(),
            )

    def _budget(self) -> int | float | None:
        """The run's credit budget: the rendered argument, else the Connection's extra."""
        budget = budget_value(self.credit_budget)
        return self.hook.credit_budget if budget is None else budget

    def _period_budget(self, context: Any) -> PeriodBudget | None:
        """The DAG's period budget: the rendered arguments, else the Connection's extras."""
        return resolve_period_budget(
            budget=self.period_budget,
            period=self.budget_period,
            hook=self.hook,
            dag_run=context.get("dag_run"),
        )

    def _check_budget(
        self, context: Any, budget: float | None, period: PeriodBudget | None
    ) -> None:
        """Refuse a new generation when the run's, or the period's, budget has too little left."""
        needed = model_credits(self.model, self.hook.client.model_catalog(), field_name="model")
        ti = context["ti"]
        task_ids = self.budget_task_ids or budget_task_ids(
            context.get("dag") or self.dag, kind=RivyaGenerateOperator, own_task_id=ti.task_id
        )
        if budget is not None:
            spent = check_generation_budget(ti=ti, task_ids=task_ids, budget=budget, needed=needed)
            self.log.info(
                "Credit budget: %g of %g spent by this run, this generation needs %g",
                spent,
                budget,
                needed,
            )
        if period is not None:
            # Registered before it spends: from now on the other runs' checks count this one.
            runs = RunRegister(ti.dag_id, period.period).enter(ti.run_id)
            spent = period_spend(ti, task_ids, runs)
            problem = generation_problem(needed=needed, budget=period, spent=spent)
            if problem is not None:
                raise problem
            self.log.info(
                "Period budget for %s: %g of %g spent by this DAG's %d run(s), this generation "
                "needs %g",
                period.period.label,
                spent,
                period.credits,
                len(set(runs)),
                needed,
            )

    def _stay_registered(self, context: Any) -> None:
        """Enter the run for its period again once its generation is known.

        The guard registered the run before submitting, but a Variable has no compare-and-set:
        another run entering at the same moment may have replaced that write. Entering again
        here puts it back, so what this task spent is not lost to the period's later checks.
        """
        period = self._period_budget(context)
        if period is None:
            return
        ti = context["ti"]
        try:
            RunRegister(ti.dag_id, period.period).enter(ti.run_id)
        except Exception:  # the generation is paid for: failing now would only hide its result
            self.log.warning(
                "Could not register run %s for the period budget of %s",
                ti.run_id,
                period.period.label,
                exc_info=True,
            )

    def _conflict_wait(self, memory: TaskMemory, files: list[ReferenceFile]) -> float:
        """Seconds a create waits out ``idempotency_conflict`` answers.

        The same body under the same key means a create of an earlier try (or attempt) may still
        be running on Rivya's side: wait for as long as a create can take (the Connection's
        retry budget plus its read timeout), never past ``generation_timeout``. Below Airflow
        3.3 the files this operator uploads get new URLs on every try, so a conflict there most
        likely means other data under the key: waiting long would only hold the worker.
        """
        settings = self.hook.settings
        create_can_take = settings.retry.time_budget + settings.timeouts.read
        wait = min(_seconds(self.generation_timeout), create_can_take)
        if memory.durable or not files:
            return wait
        return min(wait, UNSURE_CONFLICT_WAIT_SECONDS)

    def _defer(
        self,
        submission: Submission,
        wire: dict[str, Any],
        deadline: float,
        first_delay: float,
        schedule: PollSchedule,
        *,
        status: str,
        try_number: int,
    ) -> None:
        self.log.info(
            "Deferring: generation %s is %s; the triggerer polls it in %.1fs, then %s",
            submission.task.id,
            status,
            first_delay,
            "adaptively" if schedule.adaptive else f"every {schedule.interval:.1f}s",
        )
        self.defer(
            trigger=RivyaGenerationTrigger(
                generation_id=submission.task.id,
                deadline=deadline,
                rivya_conn_id=self.rivya_conn_id,
                poll_interval=self.poll_interval,
                first_delay=first_delay,
                fire_not_before=fire_guard(first_delay=first_delay),
                model=self.model,
                expected_seconds=schedule.expected,
                submitted_at=submission.answered_at if submission.is_new else None,
                carry={
                    "request": wire,
                    "origin": submission.origin,
                    "idempotency_key": submission.idempotency_key,
                    # A later try resumed with this event (Airflow 3.0 does so after a failed
                    # execute_complete) pays nothing new: the log must not say it did.
                    "try_number": try_number,
                },
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: check its event, copy outputs, return the manifest."""
        with failing_fast(self.rivya_conn_id):
            try:
                checked = read_event(event)
                self._remember_event(checked)
                task = checked.result()
                carry = checked.carry
                return self._finish(
                    context,
                    task,
                    carry.get("request") or {"model": task.model},
                    carry.get("origin", "submitted"),
                    carry.get("idempotency_key"),
                    reused=carry.get("try_number", context["ti"].try_number)
                    != context["ti"].try_number,
                )
            except (GenerationFailedError, GenerationTimeoutError) as exc:
                self._remember_error(exc)
                raise
            finally:
                self.hook.close()

    def _finish(
        self,
        context: Any,
        task: GenerationTask,
        wire: dict[str, Any],
        origin: str,
        idempotency_key: str | None,
        *,
        reused: bool = False,
    ) -> dict[str, Any]:
        self._remember(task, origin)
        task.raise_for_failure()
        files = None
        folder = self._output_folder(context)
        if task.status is TaskStatus.SUCCEEDED:
            RivyaResultLink.persist(context, RivyaResultLink.url_for(task))
            if folder:
                files = copy_results(
                    self.hook.client, task, folder, max_bytes=self.max_download_bytes
                )
        manifest = GenerationManifest.describe(
            task, request=wire, origin=origin, idempotency_key=idempotency_key, files=files
        )
        tasklog.finished(
            self.log,
            task,
            reused=reused,
            files=None if files is None else [file.path for file in files],
            output_path=folder,
        )
        annotate_outlet_events(context, self.outlets, manifest)
        self._stay_registered(context)
        self._lineage_returned = manifest.model_dump(mode="json")
        return self._lineage_returned

    def _output_folder(self, context: Any) -> str | None:
        """The folder results are copied to: ``output_path``, or this run's under ``output_dir``."""
        if self.output_dir:
            dag_run = context["dag_run"]
            return run_folder(self.output_dir, dag_run.run_after, context["run_id"])
        return self.output_path or None

    def _checked_inputs(self) -> tuple[list[dict[str, Any]], list[ReferenceFile]]:
        """Check the rendered inputs and reference files; nothing is sent yet."""
        checks.rendered_generate_inputs(self)
        params = param_dict(self.model_params)
        given_items = item_list(params.pop(REFERENCE_ITEMS_PARAM, None), "model_params")
        given_items += item_list(self.reference_items, "reference_items")
        checks.raise_problems(
            checks.reference_items("reference_items", given_items), subject="inputs"
        )
        catalog = self.hook.client.model_catalog() if self.validate else None
        files = inspect_files(
            as_source_list(self.reference_files), model=self.model, catalog=catalog or CATALOG
        )
        self._request(given_items + [file.placeholder() for file in files], catalog)
        return given_items, files

    def _plain_params(self) -> dict[str, Any]:
        """The rendered ``model_params`` without reference media items (handled separately)."""
        params = param_dict(self.model_params)
        params.pop(REFERENCE_ITEMS_PARAM, None)
        return params

    def _request(
        self, items: list[dict[str, Any]], catalog: Mapping[str, ModelSpec] | None
    ) -> GenerationRequest:
        """Build the request; with a ``catalog``, check it against it (nothing is sent)."""
        params = self._plain_params()
        if items:
            params[REFERENCE_ITEMS_PARAM] = items
        try:
            request = GenerationRequest(
                model=self.model,
                prompt=self.prompt,
                params=params,
                client_request_id=self.client_request_id,
            )
        except ValidationError as exc:
            raise RequestValidationError(pydantic_problems("request", exc)) from None
        return validate_generation(request, catalog=catalog) if catalog is not None else request

    def _key_chain(
        self, context: Any, given_items: list[dict[str, Any]], files: list[ReferenceFile]
    ) -> KeyChain:
        ti = context["ti"]
        fingerprint = input_fingerprint(
            model=self.model,
            prompt=self.prompt,
            params=self._plain_params(),
            reference_items=given_items,
            reference_file_hashes=[file.sha256 for file in files],
            client_request_id=self.client_request_id,
        )
        return KeyChain.for_task_instance(
            dag_id=ti.dag_id,
            task_id=ti.task_id,
            run_id=context["run_id"],
            map_index=ti.map_index if ti.map_index is not None else -1,
            fingerprint=fingerprint,
            fresh_on_try=ti.try_number if self.fresh_generation_on_retry else None,
        )
