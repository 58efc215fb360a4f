"""The public run API: `Annotator` labels a table through the run's stages (`autoannotator.run`): settings, pool,
router, guarantee, review and probe, loop, summary. This module only builds the stages from the caller's options
and opens the run; each decision lives in its stage."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from autoannotator.audit import audit_figures
from autoannotator.consensus import Rule
from autoannotator.errors import AnnotatorError
from autoannotator.estimate import Estimate
from autoannotator.executors import Executor, create_executor
from autoannotator.io import read_table, write_table
from autoannotator.items import InputItems, items_from_frame, labeled_seed, seed_rationales
from autoannotator.randomness import use_deterministic_kernels
from autoannotator.reasons import count_reasons
from autoannotator.refine import RefineSettings, Refiner
from autoannotator.reviewers import Reviewer, create_reviewer
from autoannotator.reviewers.gold import GoldReviewer
from autoannotator.run.estimating import estimate_run
from autoannotator.run.guarantee import Guarantee
from autoannotator.run.loop import Loop
from autoannotator.run.pool import Pool, Seed
from autoannotator.run.probing import Probe
from autoannotator.run.review import Review
from autoannotator.run.router import Router
from autoannotator.run.settings import Mode, ReviewerKind, ReviewMode, RunSettings
from autoannotator.run.summary import OUTPUT_COLUMNS, AnnotationResult, RunSummary, output_frame
from autoannotator.run_lock import run_lock
from autoannotator.run.specs import DEFAULT_SPECIALISTS, SpecialistLike, as_spec, as_specs, declared, pool_specs
from autoannotator.specialists import Specialist
from autoannotator.store import RunStore
from autoannotator.task import Task
REVIEW_MODE_KEY = "review_mode"  # store meta: the review mode the run's reviewed labels were concluded under
__all__ = ["DEFAULT_SPECIALISTS", "OUTPUT_COLUMNS", "AnnotationResult", "Annotator", "RunSummary", "as_spec", "as_specs", "declared"]

class Annotator:
    """Labels a table with a specialist pool, routes hard items to a reviewer and keeps it all in a run store.

    >>> annotator = Annotator(task, specialists=["tfidf", "lexicon"], reviewer="gold:label", run_dir="runs/x")
    >>> result = annotator.annotate("input.csv", seed="seed.csv", output="labeled.csv")

    `specialists` takes kind names, specs (kind, name, options) or ready, trained Specialist instances,
    which are used as they are (not retrained on a seed); a mapping {name: any of these} names them. `reviewer` is 'none', 'gold:COLUMN', 'llm',
    'human' or a Reviewer; `reviewer_options` configures it (for 'llm': base_url, model, prompt, ...).
    `allow_remote_code` is the one decision (the command line's `--trust-remote-code`) for every model the run
    loads: a specialist asking for `trust_remote_code` (in the task file, a pipeline, a saved folder's
    specialist.json) is refused with AnnotatorError unless it is True.

    `reviewer_probe` N (default 100 for an LLM reviewer, 0 for gold and human): with a seed, the reviewer first
    answers N seed items, measured against the pool (`autoannotator.probe`; figures in the summary's
    `reviewer`). `review_mode` 'combine' (default for an LLM) concludes each reviewed item's label from the
    pool's posterior and the reviewer's measured confusion (`autoannotator.reviewer_skill.combine`);
    'override' (default for gold and human) takes the answer. `require_better_reviewer`: raise AnnotatorError
    before any review when the probe does not show the reviewer better than the pool on uncertain items
    (otherwise an InputWarning says so).

    `target_accuracy` A (with `confidence` C, default 0.9; C without A is refused): review the fewest items such that the auto-accepted labels are at
    least A accurate with probability C (`autoannotator.target_accuracy`); it needs rule 'learned' (refused
    otherwise: its guarantee comes from the learned consensus's out-of-fold posteriors) and a seed; with
    `budget` too, the budget caps the review. `audit` F: a seeded random share F of the auto-accepted items also
    goes to the reviewer (`autoannotator.audit`); with `target_accuracy` it defaults to 0.05 and guards the promise.
    """

    def __init__(
        self,
        task: Task,
        *,
        run_dir: str | Path,
        specialists: Sequence[SpecialistLike] | Mapping[str, SpecialistLike] | None = None,
        reviewer: str | Reviewer | None = "none",
        reviewer_options: dict[str, Any] | None = None,
        rule: Rule = "vote",
        epsilon: float | None = None,
        budget: float | None = None,
        target_accuracy: float | None = None,
        confidence: float | None = None,
        audit: float | None = None,
        chunk_size: int = 512,
        seed_label_column: str = "label",
        mode: Mode = "specialists",
        refine: RefineSettings | dict | None = None,
        seed_reviewer: str | None = None,
        seed_size: int = 0,
        executor: Executor | str = "local",
        progress: bool = False,
        allow_remote_code: bool = False,
        random_seed: int | None = None,
        deterministic: bool = False,
        reviewer_probe: int | None = None,
        review_mode: ReviewMode | None = None,
        require_better_reviewer: bool = False,
    ) -> None:
        self.task = task
        self.run_dir = Path(run_dir)
        if deterministic:
            use_deterministic_kernels()
        if mode not in ("specialists", "llm-only"):
            raise AnnotatorError(f"unknown mode '{mode}' (use specialists or llm-only)")
        self.specs, ready = pool_specs(task, specialists, mode, allow_remote_code)
        self.reviewer = reviewer if isinstance(reviewer, Reviewer) or reviewer is None else create_reviewer(reviewer, task, reviewer_options)
        model = (reviewer_options or {}).get("model") if self.reviewer is not None and self.reviewer.source == "llm" else None
        self.reviewer_name = (reviewer if isinstance(reviewer, str) else reviewer.source if reviewer else "none") + (f" ({model})" if model else "")
        self.seed_reviewer = create_reviewer(seed_reviewer, task, reviewer_options) if seed_reviewer else None
        self.settings = RunSettings.create(
            reviewer_kind=_kind(self.reviewer), seed_reviewer_ok=self.seed_reviewer is not None, confidence=confidence,
            reviewer_probe=reviewer_probe, review_mode=review_mode, refine=refine, rule=rule, epsilon=epsilon, budget=budget,
            target_accuracy=target_accuracy, audit=audit, chunk_size=chunk_size, seed_label_column=seed_label_column, mode=mode,
            seed_reviewer=seed_reviewer, seed_size=seed_size, random_seed=task.random_seed if random_seed is None else random_seed,
            require_better_reviewer=require_better_reviewer, progress=progress, allow_remote_code=allow_remote_code,
        )  # fmt: skip
        self.executor = create_executor(executor) if isinstance(executor, str) else executor
        if self.executor.name != "local" and any(spec.kind == "llm" for spec in self.specs):
            raise AnnotatorError("llm specialists run with the local executor: their cache and ledger are this process's run store")
        self.pool = Pool(task, self.settings, self.specs, ready, self.executor, self.run_dir)
        self.guarantee = Guarantee(self.settings)
        self.router = Router(self.settings, self.guarantee)
        self.review = Review(self.reviewer, self.pool)
        self.probe = Probe(self.settings, self.pool, self.router, self.review)
        refiner = Refiner(self.settings.refine, self.run_dir) if self.settings.refine else None
        self.loop = Loop(self.settings, self.pool, self.router, self.guarantee, self.review, self.probe, refiner, self.seed_reviewer)

    @property
    def random_seed(self) -> int:
        return self.settings.random_seed

    @property
    def refine(self) -> RefineSettings | None:
        return self.settings.refine

    @property
    def review_mode(self) -> ReviewMode:
        return self.settings.review_mode

    @property
    def specialists(self) -> dict[str, Specialist]:
        """The pool's specialists by name (filled once a run or estimate has readied the pool)."""
        return self.pool.specialists

    def annotate(
        self,
        data: pd.DataFrame | str | Path,
        *,
        seed: pd.DataFrame | str | Path | None = None,
        output: str | Path | None = None,
        split: str | None = None,
    ) -> AnnotationResult:
        """Label every row of `data` (resuming a stopped run in the same run_dir) and optionally write `output`.
        `data` and `output` may be Hugging Face datasets folders (`split`: the split of a saved DatasetDict).
        Holds the run directory's lock while it runs; raises RunBusyError (an AnnotatorError) if another
        process holds it (see `run_lock`)."""
        self.router.new_session()
        self.guarantee.new_session()
        with run_lock(self.run_dir, "annotate"):
            return self._annotate(data, seed=seed, output=output, split=split)

    def _annotate(
        self, data: pd.DataFrame | str | Path, *, seed: pd.DataFrame | str | Path | None, output: str | Path | None, split: str | None
    ) -> AnnotationResult:
        started = time.perf_counter()
        for reviewer in (self.reviewer, self.seed_reviewer):
            if reviewer is not None:
                reviewer.check_ready()
        frame, items, seed_data, store = self._open_run(data, seed, split=split)
        try:
            self._keep_review_mode(store)
            with store.transaction():
                store.set_meta("reviewer", self.reviewer_name)
            labeled_before = store.count_labeled()
            seconds: dict[str, float] = {}
            records = frame.to_dict("records")
            seed_data = self.loop.ready(store, items, records, seed_data, seconds)
            self.loop.run(store, items, records, seed_data, seconds)
            store.finish_session()
            labeled = output_frame(frame, store, items.unusable, has_reviewer=self.reviewer is not None)
            if output is not None:
                t0 = time.perf_counter()
                write_table(labeled, output)
                with store.transaction():
                    store.set_meta("output", str(Path(output).resolve()))
                seconds["write"] = time.perf_counter() - t0
            seconds["total"] = time.perf_counter() - started
            store.record_seconds(seconds)
            return AnnotationResult(frame=labeled, summary=self._summary(store, labeled, items, labeled_before, seconds, output))
        finally:
            store.close()

    def _summary(self, store: RunStore, labeled: pd.DataFrame, items: InputItems, labeled_before: int, seconds: dict[str, float],
                 output: str | Path | None) -> RunSummary:  # fmt: skip
        """The run summary from the store and the output table."""
        labeled_after = store.count_labeled()
        audit = self.settings.audit
        return RunSummary(
            n_items=len(items), n_labeled_now=labeled_after - labeled_before, n_resumed=labeled_before, n_unlabeled=len(items) - labeled_after,
            counts=store.count_by_source(), n_never_sent=store.count_by_state().get("skipped", 0),
            seconds={k: round(v, 3) for k, v in seconds.items()}, reasons=count_reasons(labeled["reason"]), llm=store.llm_usage(),
            rounds=store.rounds(), run_dir=str(self.run_dir), output=None if output is None else str(output), random_seed=self.random_seed,
            not_refined=[name for name, s in self.specialists.items() if not s.trainable] if self.loop.refiner else [],
            rule=self.pool.used_rule, consensus=self.pool.consensus_note, budget_target=self.settings.budget,
            reviewer=self.probe.note | self.review.combined_counts(store) | self.probe.expected_after(store), target_accuracy=self.guarantee.summary(store, self.pool.n_seed),
            audit=(audit_figures(labeled, audit) or {"share": audit, "n_audited": 0}) if audit else {},
        )  # fmt: skip

    def _keep_review_mode(self, store: RunStore) -> None:
        """A run's reviewed labels were concluded under one review mode (meta REVIEW_MODE_KEY): a resumed run with
        a reviewer under another mode is refused (a run without a reviewer, or none reviewed yet, may change it)."""
        if self.reviewer is None:
            return
        used, mode = store.get_meta(REVIEW_MODE_KEY), self.settings.review_mode
        if used not in (None, mode) and store.labeled_by_review():
            raise AnnotatorError(f"run directory {self.run_dir} holds a different run (changed: review_mode, {used} -> {mode}: "
                                 f"its reviewed labels were concluded under {used}); use another --run-dir, or --review-mode {used}")  # fmt: skip
        with store.transaction():
            store.set_meta(REVIEW_MODE_KEY, mode)

    def estimate(
        self,
        data: pd.DataFrame | str | Path,
        *,
        seed: pd.DataFrame | str | Path | None = None,
        sample: int = 500,
        curve_folds: int = 3,
        seconds_per_review: float | None = None,
        split: str | None = None,
    ) -> Estimate:
        """Predict what `annotate(data, seed=seed)` would send to review, ask the LLM, pay and take, paying
        nothing but the reviewer probe (`reviewer_probe` seed items, asked once: the run reuses the answers)
        (`autoannotator.run.estimating.estimate_run`): the pool is trained (or loaded) and saved in run_dir, so
        the run that follows reuses it; a seeded random sample of `sample` items is scored. Raises AnnotatorError
        for a seed that only a paid or human reviewer could label (--seed-label llm|human) or LLM voters that
        scoring the sample would pay, RunBusyError while another process holds the run directory (see `run_lock`)."""
        with run_lock(self.run_dir, "estimate"):
            frame, items, seed_data, store = self._open_run(data, seed, split=split)
            try:
                estimate = estimate_run(self.loop, store, items, frame.to_dict("records"), seed_data, sample=sample, curve_folds=curve_folds,
                                        seconds_per_review=seconds_per_review)  # fmt: skip
                store.finish_session()
                return estimate
            finally:
                store.close()

    def _open_run(
        self, data: pd.DataFrame | str | Path, seed: pd.DataFrame | str | Path | None, *, split: str | None = None
    ) -> tuple[pd.DataFrame, InputItems, Seed | None, RunStore]:
        """Read the input (`split`: of a saved DatasetDict) and seed, open the run store (checking it holds this
        run) and start a session."""
        frame = data if isinstance(data, pd.DataFrame) else read_table(data, split=split)
        items = items_from_frame(frame, self.task, source="input" if isinstance(data, pd.DataFrame) else str(data))
        for reviewer in (self.reviewer, self.seed_reviewer):  # before any training: a missing gold column is a typo
            if isinstance(reviewer, GoldReviewer) and reviewer.column not in frame.columns:
                raise AnnotatorError(f"gold column '{reviewer.column}' is not in the input (columns: {list(frame.columns)}); "
                                     "name the input's own column (an output renames a clashing 'label' to 'input_label')")
        if seed is not None and self.seed_reviewer is not None:
            raise AnnotatorError("give either a seed file (--seed) or --seed-label, not both")
        seed_data = self._read_seed(seed)
        if self.settings.target_accuracy is not None and seed_data is None and self.seed_reviewer is None:
            raise AnnotatorError("--target-accuracy is certified on a labeled seed: give --seed (or --seed-label)")
        store = RunStore.open(self.run_dir, self.settings.fingerprint(self.task, self.specs, items.content_hash, seed_data))
        store.start_session()
        return frame, items, seed_data, store

    def _read_seed(self, seed: pd.DataFrame | str | Path | None) -> Seed | None:
        if seed is None:
            return None
        frame = seed if isinstance(seed, pd.DataFrame) else read_table(seed)
        source = "seed" if isinstance(seed, pd.DataFrame) else str(seed)
        self.loop.seed_rationales = seed_rationales(frame, self.task)
        return labeled_seed(frame, self.task, label_column=self.settings.seed_label_column, source=source)


def _kind(reviewer: Reviewer | None) -> ReviewerKind:
    """What the run's reviewer is, for the settings' refusals."""
    if reviewer is None:
        return "none"
    if isinstance(reviewer, GoldReviewer):
        return "gold"
    return reviewer.source if reviewer.source in ("llm", "human") else "other"
