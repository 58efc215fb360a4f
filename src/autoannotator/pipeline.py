"""The run loop that wires the layers: specialists vote, consensus routes, reviewers answer, the store keeps it."""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from autoannotator.audit import DEFAULT_SHARE, audit_draw, audit_figures, guard, guard_message
from autoannotator.budget import budget_route
from autoannotator.consensus import RULES, Rule, decide
from autoannotator.errors import AnnotatorError, InputWarning
from autoannotator.estimate import Estimate, accuracy_curve, predict, reviewer_costs
from autoannotator.executors import Executor, create_executor
from autoannotator.io import free_input_names, read_table, rename_columns, write_table
from autoannotator.items import InputItems, items_from_frame, labeled_seed, seed_rationales
from autoannotator.progress import progress_bar
from autoannotator.reasons import count_reasons, unresolved_reason
from autoannotator.randomness import use_deterministic_kernels
from autoannotator.run_lock import run_lock
from autoannotator.probe import DEFAULT_PROBE, PROBE_BASELINE_KEY, PROBE_KEY, ProbeAnswers, guard_line, probe_baseline, probe_indices, usage_totals
from autoannotator.refine import RESCORE_KEY, Labeled, RefineSettings, Refiner
from autoannotator.scoring import DRIVER_ROUTES, ConsensusSettings, Scored
from autoannotator.reviewer_skill import NO_ANSWER, combine
from autoannotator.reviewers import Reviewer, ReviewItem, create_reviewer
from autoannotator.reviewers.gold import GoldReviewer
from autoannotator.specialists import Specialist, create_specialist, load_specialist
from autoannotator.specialists.base import check_remote_code, options_model, specialist_class
from autoannotator.stacking import AGGREGATOR_DIR, Aggregator, fit_aggregator
from autoannotator.stacking import out_of_fold_probs as cross_fitted_probs
from autoannotator.store import COMBINED_SOURCE, ItemRecord, RunStore
from autoannotator.target_accuracy import ASSUMPTION, DEFAULT_CONFIDENCE, accepted, certify
from autoannotator.task import Example, SpecialistSpec, Task

OUTPUT_COLUMNS = ["label", "label_source", "uncertainty", "votes", "reviewed_label", "consensus_label", "reason", "audited"]
TARGET_KEY = "target_accuracy"  # store meta: the certified threshold, the one in force and the audit guard's events
DEFAULT_SPECIALISTS = ("tfidf", "embedding", "lexicon")
Mode = Literal["specialists", "llm-only"]
ReviewMode = Literal["combine", "override"]
REVIEW_MODE_KEY = "review_mode"  # store meta: the review mode the run's reviewed labels were concluded under


@dataclass
class RunSummary:
    """What a run did: items per route, how many were resumed, and where the time went.

    `n_labeled_now`: items that have a label now and had none when this session started (by consensus or
    a reviewer; items that stayed unresolved are not counted). `n_resumed`: items labeled in earlier
    sessions (they had a label when this session started). `n_unlabeled`: items without a label at the end
    (unresolved, waiting for review, never sent), so n_labeled_now + n_resumed + n_unlabeled = n_items.
    `n_never_sent`: items never sent to the specialists or a reviewer (empty text, unusable input).
    """

    n_items: int
    n_labeled_now: int
    n_resumed: int
    n_unlabeled: int
    counts: dict[str, int]
    n_never_sent: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    llm: dict[str, dict[str, float]] = field(default_factory=dict)
    rounds: list[dict] = field(default_factory=list)
    not_refined: list[str] = field(default_factory=list)  # with refinement on: specialists it leaves as they are (llm, lexicon)
    run_dir: str = ""
    output: str | None = None
    random_seed: int = 0
    rule: str = "vote"  # the consensus rule used (the vote rule when --rule learned had no seed)
    consensus: dict[str, Any] = field(default_factory=dict)  # rule 'learned': its cross-validated ECE, folds, weights; or why it fell back
    budget_target: float | None = None  # --budget: the share of all items meant for review (realised: review_fraction)
    reviewer: dict[str, Any] = field(default_factory=dict)  # the review mode and the reviewer probe's figures (probe.ProbeAnswers.figures)
    target_accuracy: dict[str, Any] = field(default_factory=dict)  # --target-accuracy: certificate, threshold in force, guard events
    audit: dict[str, Any] = field(default_factory=dict)  # --audit: audited items and the estimated accuracy (audit.audit_figures)

    @property
    def review_fraction(self) -> float:
        """Share of all items routed to review (reviewed, or still unresolved after being sent);
        items never sent (`n_never_sent`) are not counted as reviewed."""
        reviewed = sum(v for k, v in self.counts.items() if k != "consensus") - self.n_never_sent
        return reviewed / self.n_items if self.n_items else 0.0

    @property
    def reviewed_fraction(self) -> float:
        """Share of all items routed to review that the reviewer answered (audited items not counted): what
        `review_fraction` realised once items left unresolved (a --max-llm-calls cap, failed answers) are set apart."""
        answered = sum(v for k, v in self.counts.items() if k not in ("consensus", "unresolved")) - self.audit.get("n_answered", 0)
        return answered / self.n_items if self.n_items else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"review_fraction": self.review_fraction, "reviewed_fraction": self.reviewed_fraction}


@dataclass
class AnnotationResult:
    """The labeled table (every input column plus the output columns) and the run summary."""

    frame: pd.DataFrame
    summary: RunSummary


SpecialistLike = str | SpecialistSpec | dict | Specialist


def as_spec(specialist: SpecialistLike) -> SpecialistSpec:
    """A spec for a kind name, a spec, a dict, or a ready Specialist instance (named by its kind)."""
    if isinstance(specialist, SpecialistSpec):
        return specialist
    if isinstance(specialist, str):
        return SpecialistSpec(kind=specialist)
    if isinstance(specialist, Specialist):
        return SpecialistSpec(kind=specialist.kind, options=specialist.options)
    return SpecialistSpec(**specialist)


def as_specs(specialists: Sequence[SpecialistLike]) -> list[SpecialistSpec]:
    """Normalize to specs with unique names."""
    specs = [as_spec(s) for s in specialists]
    if not specs:
        raise AnnotatorError("no specialists given")
    names = [s.display_name for s in specs]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise AnnotatorError(f"specialist names must be unique, repeated: {duplicated} (give each a 'name')")
    for spec in specs:
        specialist_class(spec.kind)
    return specs


def declared(choice: SpecialistLike, task: Task) -> SpecialistLike:
    """A kind or name given by itself (`--specialists tfidf,lexicon`) takes the task file's entry of that name, or
    its only entry of that kind, with its options (a lexicon's label_map, say); else it stands for the bare kind."""
    if not isinstance(choice, str):
        return choice
    same_name = [s for s in task.specialists if s.display_name == choice]
    same_kind = [s for s in task.specialists if s.kind == choice]
    if same_name:
        return same_name[0]
    return same_kind[0] if len(same_kind) == 1 else choice


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
        self.allow_remote_code = allow_remote_code
        self.run_dir = Path(run_dir)
        self.random_seed = random_seed if random_seed is not None else task.random_seed
        if deterministic:
            use_deterministic_kernels()
        if mode not in ("specialists", "llm-only"):
            raise AnnotatorError(f"unknown mode '{mode}' (use specialists or llm-only)")
        self.mode = mode
        if isinstance(specialists, Mapping):  # {name: kind, spec, dict or ready Specialist}
            named = [(name, s) for name, s in specialists.items()]
            chosen = [s for _, s in named]
            self.specs = [as_spec(s).model_copy(update={"name": name}) for name, s in named]
            as_specs(self.specs)  # uniqueness and kinds
        else:
            chosen = [] if mode == "llm-only" else [declared(s, task) for s in specialists or task.specialists or DEFAULT_SPECIALISTS]
            self.specs = as_specs(chosen) if chosen else []
        if mode == "llm-only":
            chosen, self.specs = [], []
        self.ready = {spec.display_name: s for spec, s in zip(self.specs, chosen) if isinstance(s, Specialist)}
        for spec in self.specs:  # options and remote-code permission are checked before any store is made
            name = spec.display_name
            if name in self.ready:
                self.ready[name].allow_remote_code = self.ready[name].allow_remote_code or allow_remote_code
                check_remote_code(self.ready[name], name)
            else:
                try:
                    create_specialist(spec.kind, task, allow_remote_code=allow_remote_code, **spec.options)
                except AnnotatorError as exc:
                    raise AnnotatorError(f"specialist '{name}' ({spec.kind}): {exc}") from None
        if isinstance(reviewer, Reviewer) or reviewer is None:
            self.reviewer = reviewer
        else:
            self.reviewer = create_reviewer(reviewer, task, reviewer_options)
        model = (reviewer_options or {}).get("model") if self.reviewer is not None and self.reviewer.source == "llm" else None
        self.reviewer_name = (reviewer if isinstance(reviewer, str) else reviewer.source if reviewer else "none") + (f" ({model})" if model else "")
        self._set_review_mode(reviewer_probe, review_mode, require_better_reviewer)
        if rule not in RULES:
            raise AnnotatorError(f"unknown rule '{rule}' (use {', '.join(RULES)})")
        if epsilon is not None and not 0.0 <= epsilon <= 1.0:
            raise AnnotatorError(f"epsilon must be in [0, 1], got {epsilon}")
        if budget is not None and not 0.0 <= budget <= 1.0:
            raise AnnotatorError(f"the review budget is a fraction in [0, 1], got {budget}")
        self._check_target(rule, epsilon, target_accuracy, confidence, audit, mode)
        if rule != "vote" and epsilon is None and budget is None and target_accuracy is None:
            raise AnnotatorError(f"the '{rule}' rule needs --epsilon or --budget" + (" (or --target-accuracy)" if rule == "learned" else ""))
        if mode == "llm-only" and self.reviewer is None:
            raise AnnotatorError("--mode llm-only needs a reviewer that labels every item, e.g. --reviewer llm")
        if chunk_size < 1:
            raise AnnotatorError("chunk size must be at least 1")
        self.rule, self.epsilon, self.budget, self.chunk_size = rule, epsilon, budget, chunk_size
        self.target_accuracy, self.confidence = target_accuracy, DEFAULT_CONFIDENCE if confidence is None else confidence
        self.audit = DEFAULT_SHARE if audit is None and target_accuracy is not None else audit
        if target_accuracy is not None and audit is None and self.reviewer is None:
            raise AnnotatorError(f"--target-accuracy sends the items above its certified threshold (and an audit of {DEFAULT_SHARE:.0%} of the "
                                 "accepted ones) to a reviewer: give one (--reviewer gold:COLUMN, llm or human)")
        if self.audit and self.reviewer is None:
            raise AnnotatorError("--audit sends items to the reviewer: give one (--reviewer gold:COLUMN, llm or human), or --audit 0")
        self.threshold: float | None = None  # --target-accuracy: accept items with U <= threshold (None: review all)
        self.seed_label_column = seed_label_column
        self.refine = RefineSettings.model_validate(refine) if isinstance(refine, dict) else refine
        if self.refine is not None and "seed" not in self.refine.model_fields_set:
            self.refine = self.refine.model_copy(update={"seed": self.random_seed})
        self.refiner = Refiner(self.refine, self.run_dir) if self.refine else None
        self.seed_reviewer_spec = seed_reviewer
        self.seed_reviewer = create_reviewer(seed_reviewer, task, reviewer_options) if seed_reviewer else None
        if seed_reviewer and (self.seed_reviewer is None or seed_size < 2):
            raise AnnotatorError("--seed-label needs a reviewer (gold:COLUMN, llm or human) and --seed-size of at least 2")
        self.seed_size = seed_size
        self.executor = create_executor(executor) if isinstance(executor, str) else executor
        if self.executor.name != "local" and any(spec.kind == "llm" for spec in self.specs):
            raise AnnotatorError("llm specialists run with the local executor: their cache and ledger are this process's run store")
        self.progress = progress
        self.specialists: dict[str, Specialist] = {}
        self._scored_u: list[np.ndarray] | None = None  # U of the items scored so far (whole-run budget)
        self.aggregator: Aggregator | None = None
        self.consensus_note: dict[str, Any] = {}
        self.seed_rationales: dict[str, str] = {}  # item text -> worked solution, from a multiple-choice seed file
        self._seed_oof: tuple[tuple[list[str], list[str]], np.ndarray, np.ndarray] | None = None  # seed, its out-of-fold probs, targets
        self._n_seed = 0  # seed items: the leading out-of-fold predictions of every aggregator the run fits (`_certify`)
        self._posteriors: dict[int, np.ndarray] = {}  # row -> the pool's posterior, kept from scoring until the item is reviewed

    def _set_review_mode(self, probe: int | None, mode: ReviewMode | None, require_better: bool) -> None:
        """The reviewer probe's size and the review mode, defaulting by reviewer: an LLM is probed on
        DEFAULT_PROBE seed items and combined with the pool; gold and human answers are not probed and override."""
        is_llm = self.reviewer is not None and self.reviewer.source == "llm"
        self.reviewer_probe = (DEFAULT_PROBE if is_llm else 0) if probe is None else probe
        self.review_mode: ReviewMode = mode or ("combine" if is_llm else "override")
        self.require_better_reviewer = require_better
        if self.review_mode not in ("combine", "override"):
            raise AnnotatorError(f"unknown review mode '{self.review_mode}' (use combine or override)")
        if self.reviewer_probe < 0:
            raise AnnotatorError(f"--reviewer-probe is a number of seed items, got {self.reviewer_probe}")
        if self.mode == "llm-only" and (probe or require_better):
            raise AnnotatorError("--reviewer-probe and --require-better-reviewer measure the reviewer against the specialists: --mode llm-only has none")
        if self.reviewer_probe and isinstance(self.reviewer, GoldReviewer):
            raise AnnotatorError("the gold reviewer reads the input's column, which seed items do not have: leave out --reviewer-probe")
        if self.reviewer_probe and self.reviewer is None:
            raise AnnotatorError("--reviewer-probe measures the reviewer: give one (--reviewer llm or human)")
        if require_better and not self.reviewer_probe:
            raise AnnotatorError("--require-better-reviewer judges the reviewer by its probe: give --reviewer-probe N (N > 0) and a seed")
        self.confusion: np.ndarray | None = None  # the reviewer's measured confusion (from the probe), for combine
        self.probe_answers: ProbeAnswers | None = None
        self.reviewer_note: dict[str, Any] = {}

    @staticmethod
    def _check_target(rule: Rule, epsilon: float | None, target: float | None, confidence: float | None, audit: float | None, mode: Mode) -> None:
        """Refuse, with one line, a target accuracy or audit the run could not honour."""
        if audit is not None and not 0.0 <= audit <= 1.0:
            raise AnnotatorError(f"the audit share is a fraction in [0, 1], got {audit}")
        if mode == "llm-only" and (target is not None or audit):
            raise AnnotatorError("--target-accuracy and --audit judge the consensus labels: --mode llm-only has none")
        if target is None:
            if confidence is not None:
                raise AnnotatorError("--confidence is the probability with which --target-accuracy holds: give --target-accuracy A, or leave out --confidence")
            return
        confidence = DEFAULT_CONFIDENCE if confidence is None else confidence
        if not 0.0 < target < 1.0 or not 0.0 < confidence < 1.0:
            raise AnnotatorError(f"--target-accuracy and --confidence are in (0, 1), got {target} and {confidence}")
        if rule != "learned":
            raise AnnotatorError("--target-accuracy needs --rule learned (its guarantee comes from the learned consensus's calibrated posteriors)")
        if epsilon is not None:
            raise AnnotatorError("--target-accuracy sets the review threshold itself: leave out --epsilon")

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
        self._scored_u = None  # read from this session's store on the first budgeted chunk
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
            seed_data = self._ready_pool(store, items, records, seed_data, seconds)
            self._review(store, store.pending_review(), items, records, seconds)
            self._refine_while_due(store, seed_data, items, records, seconds)
            done_before = store.processed_rows()
            todo = [row for row in range(len(items)) if row not in done_before]
            with progress_bar(len(items), done=len(done_before), enabled=self.progress, description="annotating") as advance:
                for start in range(0, len(todo), self.chunk_size):
                    chunk = todo[start : start + self.chunk_size]
                    self._label_chunk(store, chunk, items, seconds)
                    self._review(store, store.pending_review(chunk), items, records, seconds)
                    self._guard(store)
                    self._refine_while_due(store, seed_data, items, records, seconds)
                    advance(len(chunk))
            store.finish_session()
            labeled = self._output_frame(frame, store, items.unusable)
            if output is not None:
                t0 = time.perf_counter()
                write_table(labeled, output)
                with store.transaction():
                    store.set_meta("output", str(Path(output).resolve()))
                seconds["write"] = time.perf_counter() - t0
            seconds["total"] = time.perf_counter() - started
            store.record_seconds(seconds)
            labeled_after = store.count_labeled()
            summary = RunSummary(
                n_items=len(items), n_labeled_now=labeled_after - labeled_before, n_resumed=labeled_before,
                n_unlabeled=len(items) - labeled_after,
                counts=store.count_by_source(), n_never_sent=store.count_by_state().get("skipped", 0),
                seconds={k: round(v, 3) for k, v in seconds.items()}, reasons=count_reasons(labeled["reason"]), llm=store.llm_usage(),
                rounds=store.rounds(), run_dir=str(self.run_dir), output=None if output is None else str(output), random_seed=self.random_seed,
                not_refined=[name for name, s in self.specialists.items() if not s.trainable] if self.refiner else [],
                rule=self.used_rule, consensus=self.consensus_note, budget_target=self.budget,
                reviewer=self.reviewer_note | self._combined_counts(store),
                target_accuracy=self._target_summary(store), audit=(audit_figures(labeled, self.audit) or {"share": self.audit, "n_audited": 0}) if self.audit else {},
            )  # fmt: skip
            return AnnotationResult(frame=labeled, summary=summary)
        finally:
            store.close()

    def _keep_review_mode(self, store: RunStore) -> None:
        """A run's reviewed labels were concluded under one review mode (meta REVIEW_MODE_KEY): a resumed run with
        a reviewer under another mode is refused (a run without a reviewer, or none reviewed yet, may change it)."""
        if self.reviewer is None:
            return
        used = store.get_meta(REVIEW_MODE_KEY)
        if used not in (None, self.review_mode) and store.labeled_by_review():
            raise AnnotatorError(f"run directory {self.run_dir} holds a different run (changed: review_mode, {used} -> {self.review_mode}: "
                                 f"its reviewed labels were concluded under {used}); use another --run-dir, or --review-mode {used}")  # fmt: skip
        with store.transaction():
            store.set_meta(REVIEW_MODE_KEY, self.review_mode)

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
        nothing but the reviewer probe (`reviewer_probe` seed items, asked once: the run reuses the answers): the pool is trained (or loaded) and saved in run_dir, so the run that follows reuses it;
        a seeded random sample of `sample` items is scored; the reviewer's prompts for its hard items are
        counted (`estimate.reviewer_costs`). With a seed file, the curve of accuracy against review share is
        predicted by `curve_folds`-fold cross-fitting on the seed (0: no curve). The estimate is kept in the run
        store, where `evaluate` compares it with the run. Raises AnnotatorError for a seed that only a paid or
        human reviewer could label (--seed-label llm|human), RunBusyError while another process holds the run
        directory (see `run_lock`)."""
        with run_lock(self.run_dir, "estimate"):
            return self._estimate(data, seed=seed, sample=sample, curve_folds=curve_folds, seconds_per_review=seconds_per_review, split=split)

    def _estimate(
        self, data: pd.DataFrame | str | Path, *, seed: pd.DataFrame | str | Path | None, sample: int, curve_folds: int,
        seconds_per_review: float | None, split: str | None,
    ) -> Estimate:  # fmt: skip
        if self.seed_reviewer is not None and not isinstance(self.seed_reviewer, GoldReviewer):
            raise AnnotatorError("estimate cannot train on --seed-label llm or human without asking them: give --seed, or --seed-label gold:COLUMN")
        frame, items, seed_data, store = self._open_run(data, seed, split=split)
        try:
            seconds: dict[str, float] = {}
            seed_data = self._ready_pool(store, items, frame.to_dict("records"), seed_data, seconds)
            paid = [spec.display_name for spec in self.specs if spec.kind == "llm" and spec.options.get("base_url")]
            if paid:
                raise AnnotatorError(f"estimate would pay the LLM specialists {paid} to score its sample; estimate without them")
            done = store.processed_rows()
            population = [r for r in range(len(items)) if r not in done and items.texts[r].strip()]
            rng = np.random.default_rng(self.random_seed)
            rows = sorted(int(r) for r in rng.choice(population, size=min(sample, len(population)), replace=False)) if population else []
            hard_rows, per_item = self._score_sample(rows, items)
            states = store.count_by_state()
            waiting = states.get("pending_review", 0)
            reviewed = len(done) - waiting - states.get("skipped", 0) - store.count_by_source().get("consensus", 0)
            curve = None
            if seed_data is not None and curve_folds > 1 and self.mode != "llm-only":
                texts, labels = seed_data
                probs, gold = cross_fitted_probs(self.specialists, self._trained_on_seed(), texts, labels, seed=self.random_seed,
                                                 n_folds=curve_folds)
                curve = accuracy_curve(probs, gold, rule=self.rule, epsilon=self.epsilon, budget=self.budget, seed=self.random_seed)
            costs = reviewer_costs(self.reviewer, self.task, [items.texts[r] for r in hard_rows], store, seconds_per_review)
            copies = Counter(items.texts[r] for r in population)  # identical texts are asked once
            distinct = float(np.mean([1 / copies[items.texts[r]] for r in hard_rows])) if hard_rows else 1.0
            estimate = predict(
                n_items=len(items), population=len(population), n_sampled=len(rows), n_hard=len(hard_rows),
                already_reviewed=reviewed, already_waiting=waiting, seconds_per_item=per_item, costs=costs, distinct_share=distinct,
                seconds_training=sum(v for k, v in seconds.items() if k.startswith("fit:")), curve=curve,
            )  # fmt: skip
            estimate.reviewer = self.reviewer_note
            estimate.notes += self._estimate_notes()
            with store.transaction():
                store.set_meta("estimate", json.dumps(estimate.to_dict()))
            store.finish_session()
            return estimate
        finally:
            store.close()

    def _estimate_notes(self) -> list[str]:
        """Why the estimate reviews what it does: audits counted in, a target accuracy the seed cannot certify."""
        notes = [f"the review share, calls and $ include the audit (--audit {self.audit:g}: that share of the auto-accepted items)"] if self.audit else []
        if self.target_accuracy is not None and self.aggregator is not None and self.threshold is None:
            notes.append(self._uncertified() + ("; the review budget caps the review" if self.budget is not None else ", so every item goes to review"))
        return notes

    def _uncertified(self) -> str:
        """Why --target-accuracy accepts nothing by itself: the seed certifies no threshold."""
        return (f"no threshold is certified: {self._n_seed} seed items cannot show {self.target_accuracy:.1%} accuracy with probability "
                f"{self.confidence:.0%} at any threshold (a lower --target-accuracy or --confidence, or a larger seed would)")

    def _score_sample(self, rows: list[int], items: InputItems, batches: int = 5) -> tuple[list[int], list[float]]:
        """Score sampled rows in a few batches through the run's executor: (rows the reviewer will see: routed to
        review, or audited (--audit, the run's own draw); seconds per item of each batch). In llm-only mode every
        row goes to the reviewer."""
        if self.mode == "llm-only":
            return list(rows), [0.0]
        hard, per_item = [], []
        size = max(1, math.ceil(len(rows) / batches))
        for start in range(0, len(rows), size):
            batch = rows[start : start + size]
            t0 = time.perf_counter()
            outcomes = self.executor.score(
                batch, [items.texts[r] for r in batch], specialists=self.specialists, labels=self.task.label_names,
                settings=self._settings(), run_dir=self.run_dir, seconds={},
            )  # fmt: skip
            per_item.append((time.perf_counter() - t0) / len(batch))
            if self.budget is not None:  # the sample stands for the whole run: the budget's share of it
                outcomes = self._budgeted(outcomes, n_items=len(batch), done_before=0, routed_before=0)
            outcomes = self._targeted(outcomes)
            hard += [r for r, outcome, audit in zip(batch, outcomes, self._audited(batch, outcomes)) if outcome.hard or audit]
        return hard, per_item

    def _open_run(
        self, data: pd.DataFrame | str | Path, seed: pd.DataFrame | str | Path | None, *, split: str | None = None
    ) -> tuple[pd.DataFrame, InputItems, tuple[list[str], list[str]] | None, RunStore]:
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
        if self.target_accuracy is not None and seed_data is None and self.seed_reviewer is None:
            raise AnnotatorError("--target-accuracy is certified on a labeled seed: give --seed (or --seed-label)")
        store = RunStore.open(self.run_dir, self._fingerprint(items, seed_data))
        store.start_session()
        return frame, items, seed_data, store

    def _ready_pool(
        self, store: RunStore, items: InputItems, records: list[dict], seed_data: tuple[list[str], list[str]] | None,
        seconds: dict[str, float],
    ) -> tuple[list[str], list[str]] | None:  # fmt: skip
        """Label the cold-start seed if asked, load or train the pool, give the reviewer its examples; returns the seed."""
        if self.seed_reviewer is not None:
            seed_data = self._seed_by_reviewer(store, items, records, seconds)
        self.specialists = self._prepare_specialists(store, seed_data, seconds)
        examples = [Example(text=t, label=y, rationale=self.seed_rationales.get(t)) for t, y in zip(*(seed_data or ((), ())))]
        for name, specialist in self.specialists.items():
            specialist.attach(store, name)
            specialist.use_examples(examples)
        if self.rule == "learned" and self.mode == "specialists":
            self._prepare_aggregator(store, seed_data, seconds)
        if self.reviewer is not None and examples:
            self.reviewer.use_examples(examples)
        self._probe_reviewer(store, seed_data, seconds)
        return seed_data

    def _probe_reviewer(self, store: RunStore, seed_data: tuple[list[str], list[str]] | None, seconds: dict[str, float]) -> None:
        """The reviewer probe (`autoannotator.probe`): the reviewer answers `reviewer_probe` random seed items (never
        its own few-shot examples) before any paid review; their figures go to the summary, their confusion to
        combine, and the guard warns (or, with require_better_reviewer, stops) when the reviewer is not shown
        better than the pool on the items the pool finds uncertain. Kept in the store (meta PROBE_KEY): a resumed
        run reads it back, and the reviewer's own cache makes a probe cut short pay only what it had not asked."""
        self.reviewer_note = {"review_mode": self.review_mode} if self.reviewer is not None else {}
        if self.reviewer is None:
            return None
        if self.mode != "specialists":
            return self._without_probe("--mode llm-only: no pool to measure the reviewer against or combine with")
        if not self.reviewer_probe:
            return self._without_probe("no probe (--reviewer-probe 0)")
        if seed_data is None or (self.seed_reviewer is not None and not isinstance(self.seed_reviewer, GoldReviewer)):
            return self._without_probe("no probe: it needs a seed with known labels (--seed or --seed-label gold:COLUMN)")
        stored = json.loads(store.get_meta(PROBE_KEY) or "null")
        if stored is not None and stored["requested"] == self.reviewer_probe:
            answers = ProbeAnswers(**stored)
        else:
            answers = self._ask_probe(store, seed_data, seconds)
            with store.transaction():
                store.set_meta(PROBE_KEY, json.dumps(answers.to_dict()))
                store.delete_meta(PROBE_BASELINE_KEY)
        figures = answers.figures()
        self.reviewer_note |= figures
        if not figures["answered"]:
            return self._empty_probe(figures)
        if self.review_mode == "combine":
            self.confusion, self.probe_answers = answers.confusion(), answers
        if figures["weaker_than_pool"]:
            line = f"the reviewer is not shown better than the specialists: {guard_line(figures)}"
            if self.require_better_reviewer:
                raise AnnotatorError(f"--require-better-reviewer: {line}; stopped before the review (the probe is kept: a rerun pays nothing for it)")
            warnings.warn(f"{line}; its answers are {'combined with the pool by its measured confusion' if self.review_mode == 'combine' else 'taken as they are (--review-mode override)'}",
                          InputWarning, stacklevel=2)  # fmt: skip

    def _without_probe(self, why: str) -> None:
        """No probe (`why`): combine has no measured confusion, so the reviewer's answers override (and the summary says so)."""
        if self.review_mode == "combine":
            self.reviewer_note |= {"review_mode": "override", "note": f"{why}; combine needs the reviewer's measured confusion, so its answers override"}

    def _empty_probe(self, figures: dict) -> None:
        """A probe with no answered item (every seed item is one of the reviewer's few-shot examples, or no answer
        was usable) measured nothing: --require-better-reviewer stops, otherwise a warning and, as without a probe,
        the reviewer's answers override."""
        asked = figures["probe_items"]
        why = ("the reviewer probe measured nothing: "
               + (f"none of the {asked} probe items got a usable answer" if asked else "no seed item was left to ask (all are the reviewer's few-shot examples)"))  # fmt: skip
        if self.require_better_reviewer:
            raise AnnotatorError(f"--require-better-reviewer: {why}, so the reviewer is not shown better than the specialists; stopped before the review")
        self._without_probe(why)
        warnings.warn(f"{why}; the reviewer's answers are taken as they are", InputWarning, stacklevel=3)

    def _ask_probe(self, store: RunStore, seed_data: tuple[list[str], list[str]], seconds: dict[str, float]) -> ProbeAnswers:
        """Ask the reviewer about the probe's seed items and set its answers beside the pool's out-of-fold labels
        (cross-fitted on the seed as the learned rule is) and the run's routing of them."""
        self.reviewer.check_ready()
        started = time.perf_counter()
        texts, labels = seed_data
        shown = {example.text for example in self.reviewer.examples}
        picked = probe_indices(len(texts), self.reviewer_probe, self.random_seed, exclude=[i for i, t in enumerate(texts) if t in shown])
        probs, targets = self._seed_out_of_fold(seed_data)
        settings = self._settings()
        epsilon = None if settings.epsilon == DRIVER_ROUTES else settings.epsilon
        if epsilon is None and self.budget is None and self.used_rule != "vote":
            epsilon = 1.0  # --target-accuracy routes by its certified threshold below
        outcome = decide(probs[:, picked], rule=self.used_rule, epsilon=epsilon, budget=self.budget, aggregator=self.aggregator)
        uncertain = outcome.hard
        if self.target_accuracy is not None:  # as `_targeted` routes: above the threshold in force, within the budget if any
            uncertain = ~accepted(outcome.uncertainty, self.threshold) & (outcome.hard if self.budget is not None else True)
        names = self.task.label_names
        baseline = probe_baseline(store)
        queue = [ReviewItem(row=-1 - i, item_id=f"probe-{i}", text=texts[i], votes={}, consensus_label=names[int(outcome.labels[j])])
                 for j, i in enumerate(picked)]  # fmt: skip
        self.reviewer.attach(store)
        given = self.reviewer.review(queue)
        after = usage_totals(store.llm_usage())
        spent = {key: int(after[key] - baseline[key]) for key in ("calls", "prompt_tokens", "completion_tokens")}
        cost = None if after["cost_usd"] is None else after["cost_usd"] - (baseline["cost_usd"] or 0.0)
        seconds["probe"] = seconds.get("probe", 0.0) + time.perf_counter() - started
        return ProbeAnswers(
            requested=self.reviewer_probe, seed_index=picked, true=[int(targets[i]) for i in picked],
            answer=[names.index(a.label) if a.label in names else NO_ANSWER for a in given], pool=[int(v) for v in outcome.labels],
            uncertain=[bool(h) for h in uncertain], labels=list(names), cost_usd=cost, **spent,
            seconds=time.perf_counter() - started, label_counts=np.bincount(targets, minlength=len(names)).tolist(),
        )  # fmt: skip

    def _seed_out_of_fold(self, seed_data: tuple[list[str], list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """(k, n_seed, n_labels) out-of-fold pool probabilities on the seed and (n_seed,) targets (those the learned
        rule's fit computed, when it ran in this session on this seed)."""
        if self._seed_oof is None or self._seed_oof[0] != seed_data:
            probs, targets = cross_fitted_probs(self.specialists, self._trained_on_seed(), *seed_data, seed=self.random_seed)
            self._seed_oof = (seed_data, probs, targets)
        return self._seed_oof[1], self._seed_oof[2]

    @property
    def used_rule(self) -> Rule:
        """The rule in force: 'learned' falls back to the vote rule when no aggregator could be fitted."""
        return "vote" if self.rule == "learned" and self.aggregator is None else self.rule

    def _settings(self) -> ConsensusSettings:
        """What the executors decide a batch with; under a review budget or a target accuracy the driver routes (`_route`)."""
        driver = self.budget is not None or self.target_accuracy is not None
        return ConsensusSettings(self.used_rule, DRIVER_ROUTES if driver else self.epsilon, self.aggregator)

    def _prepare_aggregator(self, store: RunStore, seed_data: tuple[list[str], list[str]] | None, seconds: dict[str, float]) -> None:
        """Rule 'learned': load the run's active aggregator, or fit it on cross-fitted seed predictions and save it
        in RUN/consensus/. Without a seed there is nothing to fit it on: the run uses the vote rule and says so."""
        self._n_seed = len(seed_data[0]) if seed_data is not None else 0
        folder = self.run_dir / (store.get_meta("aggregator") or AGGREGATOR_DIR)
        if (folder / "aggregator.json").is_file():
            self.aggregator = Aggregator.load(folder)
            self.consensus_note = self.aggregator.summary()
        elif seed_data is None:
            self.consensus_note = {"fallback": "--rule learned needs a labeled seed (--seed or --seed-label): used the vote rule"}
        else:
            self._fit_aggregator(store, seed_data, AGGREGATOR_DIR, seconds)
        self._certify(store)

    def _certify(self, store: RunStore) -> None:
        """--target-accuracy: certify the threshold on the active aggregator's out-of-fold (U, correct) of the seed
        items and keep it in the store (meta TARGET_KEY). A refit (refinement) is fitted on the seed followed by
        the reviewed items; those were chosen for being hard, not drawn like the input, so only its first
        `_n_seed` (the seed's) out-of-fold predictions are certified on. A resumed run reads the threshold in force
        from the store (a guard may have lowered it); after a refit the new certificate applies, never above a
        guard-lowered threshold."""
        if self.target_accuracy is None or self.aggregator is None:
            return
        if self.aggregator.seed_correct is None:
            raise AnnotatorError(f"the aggregator in {self.aggregator.folder} predates --target-accuracy: use another --run-dir")
        state = json.loads(store.get_meta(TARGET_KEY) or "{}")
        folder = str(self.aggregator.folder)
        if state.get("aggregator") != folder:
            seed = slice(0, self._n_seed)
            certificate = certify(self.aggregator.seed_uncertainty[seed], self.aggregator.seed_correct[seed], target=self.target_accuracy,
                                  confidence=self.confidence).to_dict()  # fmt: skip
            threshold = certificate["threshold"]
            lowered = [e["threshold_after"] for e in state.get("guard", [])]
            if lowered:
                threshold = None if threshold is None or lowered[-1] is None else min(threshold, lowered[-1])
            state = {"aggregator": folder, "certificate": certificate, "threshold": threshold, "guard": state.get("guard", [])}
            with store.transaction():
                store.set_meta(TARGET_KEY, json.dumps(state))
        self.threshold = state["threshold"]

    def _guard(self, store: RunStore) -> None:
        """--target-accuracy with --audit: when the audit shows the accepted labels below the target, say so and
        lower the threshold (review more) for the rest of the run; the event is kept in the store."""
        if self.target_accuracy is None or not self.audit or self.threshold is None:
            return
        u, agree = store.audit_answers()
        breached, lowered = guard(u, agree, threshold=self.threshold, target=self.target_accuracy)
        if not breached:
            return
        inside = u <= self.threshold + 1e-12
        event = {"after_items": len(store.processed_rows()), "n_audited": int(inside.sum()), "audited_accuracy": round(float(agree[inside].mean()), 4),
                 "threshold_before": self.threshold, "threshold_after": lowered}  # fmt: skip
        state = json.loads(store.get_meta(TARGET_KEY) or "{}")
        state["guard"] = [*state.get("guard", []), event]
        state["threshold"] = lowered
        with store.transaction():
            store.set_meta(TARGET_KEY, json.dumps(state))
        self.threshold = lowered
        warnings.warn(guard_message(event, self.target_accuracy), InputWarning, stacklevel=2)

    def _target_summary(self, store: RunStore) -> dict[str, Any]:
        """What the summary says about --target-accuracy: the certificate, the threshold in force, the guard's
        events, items the budget accepted above the certified threshold, and the guarantee with its assumption."""
        if self.target_accuracy is None:
            return {}
        state = json.loads(store.get_meta(TARGET_KEY) or "{}")
        certificate = state.get("certificate", {})
        certified = certificate.get("threshold")
        rows = [r for r in store.items() if r.uncertainty is not None and r.consensus_label is not None and (r.label_source == "consensus" or r.audited)]
        above = sum(1 for r in rows if certified is None or r.uncertainty > certified + 1e-12)
        holds = not state.get("guard") and above == 0 and certified is not None
        guarantee = (f"the auto-accepted labels are at least {self.target_accuracy:.1%} accurate with probability {self.confidence:.0%}, "
                     f"assuming {ASSUMPTION}")  # fmt: skip
        if certified is None:
            accepted_anyway = f"; the review budget accepted {above} items" if above else ": every item went to review"
            guarantee = f"none, {self._uncertified()}{accepted_anyway}"
        elif above:
            guarantee = f"not kept: the review budget accepted {above} items above the certified threshold"
        elif state.get("guard"):
            guarantee = "broken by the audit: the audited accuracy fell below the target; the run lowered its threshold"
        return {"target": self.target_accuracy, "confidence": self.confidence, "certified_threshold": certified,
                "threshold": state.get("threshold"), "certificate": certificate, "guard": state.get("guard", []),
                "accepted_above_certified": above, "holds": holds, "guarantee": guarantee, "assumption": ASSUMPTION}  # fmt: skip

    def _trained_on_seed(self) -> set[str]:
        """Names of the pool's specialists that the seed trains (not ready-made instances, not untrainable kinds)."""
        return {spec.display_name for spec in self.specs if spec.display_name not in self.ready and self.specialists[spec.display_name].trainable}

    def _fit_aggregator(self, store: RunStore, data: tuple[list[str], list[str]], relative: str, seconds: dict[str, float]) -> None:
        """Cross-fit the pool on `data` (texts, labels), fit the aggregator, save it in RUN/`relative` and make it
        the run's active one (store meta 'aggregator', read by resumed runs; Ray actors get its folder)."""
        t0 = time.perf_counter()
        probs, targets = cross_fitted_probs(self.specialists, self._trained_on_seed(), *data, seed=self.random_seed)
        self._seed_oof = (data, probs, targets)
        fit_aggregator(probs, targets, list(self.specialists), seed=self.random_seed).save(self.run_dir / relative)
        with store.transaction():
            store.set_meta("aggregator", relative)
        self.aggregator = Aggregator.load(self.run_dir / relative)
        self.consensus_note = self.aggregator.summary()
        self._certify(store)
        seconds["fit:aggregator"] = seconds.get("fit:aggregator", 0.0) + time.perf_counter() - t0

    def _route(self, store: RunStore, outcomes: list[Scored], n_items: int) -> list[Scored]:
        """Route one chunk at the driver: under the whole-run budget (see `autoannotator.budget`, counts from the
        store; audited items are not routed items) and by the target accuracy's threshold."""
        if self.budget is not None:
            done = sum(store.count_by_source().values())
            outcomes = self._budgeted(outcomes, n_items=n_items, done_before=done, routed_before=store.count_routed(), store=store)
        return self._targeted(outcomes)

    def _targeted(self, outcomes: list[Scored]) -> list[Scored]:
        """--target-accuracy: items above the threshold in force go to review, those at or below it are accepted;
        with a budget, only the items the budget routed can go (the budget caps the review)."""
        if self.target_accuracy is None:
            return outcomes
        ok = accepted(np.array([o.uncertainty for o in outcomes], dtype=float), self.threshold)
        capped = self.budget is not None
        return [replace(o, hard=o.consensus_label is None or (not a and (o.hard or not capped))) for o, a in zip(outcomes, ok)]

    def _budgeted(self, outcomes: list[Scored], *, n_items: int, done_before: int, routed_before: int, store: RunStore | None = None) -> list[Scored]:
        """`outcomes` with `hard` set by `budget_route`; the reference U is the seed's out-of-fold U (rule 'learned')
        and every U in the store."""
        seed_u = self.aggregator.seed_uncertainty if self.aggregator is not None else np.zeros(0)
        reference = seed_u
        if store is not None:  # the store's U is read once a session, then each routed chunk's U is kept here
            if self._scored_u is None:
                self._scored_u = [store.uncertainties()]
            reference = np.concatenate([seed_u, *self._scored_u])
            self._scored_u.append(np.array([o.uncertainty for o in outcomes if o.uncertainty is not None], dtype=float))
        hard = budget_route(
            np.array([o.uncertainty for o in outcomes]), np.array([o.consensus_label is None for o in outcomes]), fraction=self.budget,
            n_items=n_items, done_before=done_before, routed_before=routed_before, reference=reference,
        )  # fmt: skip
        return [replace(o, hard=bool(h)) for o, h in zip(outcomes, hard)]

    def _read_seed(self, seed: pd.DataFrame | str | Path | None) -> tuple[list[str], list[str]] | None:
        if seed is None:
            return None
        frame = seed if isinstance(seed, pd.DataFrame) else read_table(seed)
        source = "seed" if isinstance(seed, pd.DataFrame) else str(seed)
        self.seed_rationales = seed_rationales(frame, self.task)
        return labeled_seed(frame, self.task, label_column=self.seed_label_column, source=source)

    def _fingerprint(self, items: InputItems, seed_data: tuple[list[str], list[str]] | None) -> dict[str, Any]:
        seed_hash = None
        if seed_data is not None:
            seed_hash = hashlib.sha256(json.dumps(seed_data).encode()).hexdigest()[:32]
        return {
            "task": self.task.model_dump(mode="json"),
            "specialists": [s.model_dump(mode="json") for s in self.specs],
            "consensus": {"rule": self.rule, "epsilon": self.epsilon, "budget": self.budget}
            | ({"target_accuracy": self.target_accuracy, "confidence": self.confidence} if self.target_accuracy is not None else {})
            | ({"audit": self.audit} if self.audit else {}),
            "mode": self.mode,
            "refine": self.refine.model_dump() if self.refine else None,
            "seed_label": [self.seed_reviewer_spec, self.seed_size] if self.seed_reviewer_spec else None,
            "input": items.content_hash,
            "seed": seed_hash,
            "random_seed": self.random_seed,
        }

    def _prepare_specialists(
        self, store: RunStore, seed_data: tuple[list[str], list[str]] | None, seconds: dict[str, float]
    ) -> dict[str, Specialist]:
        """Load each specialist's saved version from the run, or build it (training on the seed) and save it."""
        pool = {}
        for spec in self.specs:
            name = spec.display_name
            active = store.active_specialist(name)
            if active is not None:
                pool[name] = load_specialist(self.run_dir / active[1], self.task, allow_remote_code=self.allow_remote_code)
                continue
            specialist = self.ready.get(name) or self._build_specialist(spec, seed_data, seconds)
            relative = Path("specialists") / name / "v1"
            specialist.save(self.run_dir / relative)
            store.record_specialist(name, spec.kind, str(relative))
            pool[name] = specialist
        return pool

    def _seed_by_reviewer(
        self, store: RunStore, items: InputItems, records: list[dict], seconds: dict[str, float]
    ) -> tuple[list[str], list[str]]:
        """Cold start (paper Table 7): the seed reviewer labels `seed_size` random items first; they stay in the
        run, marked as seed items, and train the specialists (refinement replays them as the seed, never as
        reviewed hard items). On resume the same items are read back."""
        rows = store.seed_rows()
        if not rows:  # chosen and stored in one transaction: a run killed at any point finds them all or none
            with_text = [r for r in range(len(items)) if items.texts[r].strip()]
            rng = np.random.default_rng(self.random_seed)
            rows = sorted(int(r) for r in rng.choice(with_text, size=min(self.seed_size, len(with_text)), replace=False))
            store.save_items(
                ItemRecord(row=r, item_id=items.ids[r], text_hash=items.hashes[r], text=items.texts[r], state="pending_review",
                           label=None, label_source="unresolved", consensus_label=None, uncertainty=None, votes={}, seed=True)
                for r in rows
            )  # fmt: skip
        main_reviewer, self.reviewer = self.reviewer, self.seed_reviewer
        try:
            self._review(store, store.pending_review(rows), items, records, seconds)
        finally:
            self.reviewer = main_reviewer
        labeled = [r for r in store.by_rows(rows) if r.label is not None]
        if len({r.label for r in labeled}) < 2:
            raise AnnotatorError(f"the seed reviewer labeled {len(labeled)} of {len(rows)} seed items: too few to train on")
        return [r.text for r in labeled], [r.label for r in labeled]

    def _refine_while_due(
        self, store: RunStore, seed_data: tuple[list[str], list[str]] | None, items: InputItems, records: list[dict],
        seconds: dict[str, float],
    ) -> None:  # fmt: skip
        """Run refinement rounds while β reviewed items wait; re-score shaky consensus items after a promotion."""
        if self.refiner is None:
            return
        self._rescore(store, items, records, seconds)  # a re-scoring that a killed run left unfinished
        while self.refiner.due(store):
            t0 = time.perf_counter()
            report = self.refiner.run_round(store, self.specialists, Labeled(*seed_data) if seed_data else None)
            seconds["refine"] = seconds.get("refine", 0.0) + time.perf_counter() - t0
            if self.aggregator is not None:  # refit on seed + every reviewed item, with the refined pool
                reviewed = Labeled.of(store.labeled_by_review() + store.labeled_by_review(gate=True))
                known = Labeled(*seed_data) + reviewed if seed_data else reviewed
                self._fit_aggregator(store, (known.texts, known.labels), f"{AGGREGATOR_DIR}/round-{report.number}", seconds)
            self._rescore(store, items, records, seconds)

    def _rescore(self, store: RunStore, items: InputItems, records: list[dict], seconds: dict[str, float]) -> None:
        """After a promotion (the round left RESCORE_KEY in the store): consensus items whose voters were less
        sure than `rescore_below` are scored again by the refined pool through the executor, as any chunk is,
        one transaction per chunk; those whose label flips or that are now hard go back to review. The
        review budget was spent when the items were first routed, so under a budget only a flip or no majority
        sends an item back. The store keeps the last row done: a killed run resumes after it."""
        marker = store.get_meta(RESCORE_KEY)
        if marker is None:
            return
        after = int(marker)
        settings = self._settings()
        while chunk := store.consensus_below(self.refine.rescore_below, after_row=after, limit=self.chunk_size):
            outcomes = self._score(store, [r.row for r in chunk], [r.text for r in chunk], [r.item_id for r in chunk], settings, seconds)
            changes = [(r.row, o.votes, o.consensus_label, o.uncertainty, o.unanimous)
                       for r, o in zip(chunk, outcomes) if o.hard or o.consensus_label != r.label]  # fmt: skip
            after = chunk[-1].row
            store.reroute(changes, progress=(RESCORE_KEY, str(after)))
            if changes:
                self._review(store, store.pending_review([c[0] for c in changes]), items, records, seconds)
        store.delete_meta(RESCORE_KEY)

    def _build_specialist(
        self, spec: SpecialistSpec, seed_data: tuple[list[str], list[str]] | None, seconds: dict[str, float]
    ) -> Specialist:
        """A new specialist, trained on the seed when it can be; kinds that need training refuse to run without."""
        specialist = self._new_specialist(spec)
        if seed_data is not None and specialist.trainable:
            t0 = time.perf_counter()
            specialist.fit(*seed_data)
            seconds[f"fit:{spec.display_name}"] = time.perf_counter() - t0
        elif specialist.needs_training:
            raise AnnotatorError(f"the '{spec.display_name}' specialist must be trained first: give a labeled seed file (--seed)")
        return specialist

    def _new_specialist(self, spec: SpecialistSpec) -> Specialist:
        """An untrained specialist of `spec`, seeded with the run's random seed where its kind takes one."""
        options = dict(spec.options)
        if "seed" in options_model(specialist_class(spec.kind)).model_fields:
            options.setdefault("seed", self.random_seed)
        return create_specialist(spec.kind, self.task, allow_remote_code=self.allow_remote_code, **options)

    def _label_chunk(self, store: RunStore, rows: list[int], items: InputItems, seconds: dict[str, float]) -> None:
        """Run the pool on one chunk, decide by consensus and store the chunk in one transaction."""
        texts = [items.texts[r] for r in rows]
        scored = [i for i, t in enumerate(texts) if t.strip()]
        empty = sorted(set(range(len(rows))) - set(scored))
        records = [
            ItemRecord(row=rows[i], item_id=items.ids[rows[i]], text_hash=items.hashes[rows[i]], text=texts[i], state="skipped",
                       label=None, label_source="unresolved", consensus_label=None, uncertainty=None, votes={})
            for i in empty
        ]  # fmt: skip
        if scored and self.mode == "llm-only":
            records += [
                ItemRecord(row=rows[i], item_id=items.ids[rows[i]], text_hash=items.hashes[rows[i]], text=texts[i],
                           state="pending_review", label=None, label_source="unresolved", consensus_label=None,
                           uncertainty=None, votes={})
                for i in scored
            ]  # fmt: skip
        elif scored:
            outcomes = self._score(store, [rows[i] for i in scored], [texts[i] for i in scored],
                                   [items.ids[rows[i]] for i in scored], self._settings(), seconds)  # fmt: skip
            if self.budget is not None or self.target_accuracy is not None:
                outcomes = self._route(store, outcomes, len(items))
            audited = self._audited([rows[i] for i in scored], outcomes)
            for i, outcome, audit in zip(scored, outcomes, audited):
                records.append(self._record(rows[i], items, outcome, audited=audit))
                if outcome.hard and self.confusion is not None and self.used_rule == "learned" and outcome.posterior:
                    self._posteriors[rows[i]] = np.array(outcome.posterior)
        t0 = time.perf_counter()
        store.save_items(sorted(records, key=lambda r: r.row))
        seconds["store"] = seconds.get("store", 0.0) + time.perf_counter() - t0

    def _score(
        self, store: RunStore, rows: list[int], texts: list[str], item_ids: list[str], settings: ConsensusSettings,
        seconds: dict[str, float],
    ) -> list[Scored]:  # fmt: skip
        """The one scoring path: the executor runs the pool on `texts` (non-empty) and decides by consensus."""
        versions = {name: store.active_specialist(name)[0] for name in self.specialists}
        return self.executor.score(rows, texts, specialists=self.specialists, labels=self.task.label_names, settings=settings,
                                   run_dir=self.run_dir, seconds=seconds, item_ids=item_ids, versions=versions)  # fmt: skip

    def _audited(self, rows: list[int], outcomes: list[Scored]) -> list[bool]:
        """--audit: which auto-accepted items of a chunk also go to the reviewer (`audit.audit_draw`, by row)."""
        if not self.audit:
            return [False] * len(rows)
        drawn = audit_draw(rows, self.audit, self.random_seed)
        return [bool(d) and not o.hard for d, o in zip(drawn, outcomes)]

    def _record(self, row: int, items: InputItems, outcome: Scored, *, audited: bool = False) -> ItemRecord:
        """The stored form of a scored item: done with its consensus label, or waiting for review; an audited item
        keeps its consensus label while it waits for the reviewer, whose answer then settles it."""
        return ItemRecord(row=row, item_id=items.ids[row], text_hash=items.hashes[row], text=items.texts[row],
                          state="pending_review" if outcome.hard or audited else "done", label=None if outcome.hard else outcome.consensus_label,
                          label_source="unresolved" if outcome.hard else "consensus", consensus_label=outcome.consensus_label,
                          uncertainty=outcome.uncertainty, votes=outcome.votes, unanimous=outcome.unanimous, audited=audited)  # fmt: skip

    def _review(
        self, store: RunStore, pending: list[ItemRecord], items: InputItems, records: list[dict], seconds: dict[str, float]
    ) -> None:
        """Ask the reviewer about pending items, the hard ones before the audited ones (under --max-llm-calls or
        --max-cost the cap goes to the labels the run needs first); store its valid answers, leave the rest unresolved."""
        if self.reviewer is None or not pending:
            return
        t0 = time.perf_counter()
        queue = [
            ReviewItem(row=r.row, item_id=r.item_id, text=items.texts[r.row], votes=r.votes,
                       consensus_label=r.consensus_label, record=records[r.row])
            for r in sorted(pending, key=lambda r: r.audited)
        ]  # fmt: skip
        self.reviewer.attach(store)
        answers = self.reviewer.review(queue)
        if not self.reviewer.saves_own_answers:
            source = self.reviewer.source
            combined = self._combined(store, queue, answers, seconds)
            store.save_reviews(
                ((item.row, source, a.label, a.probs, a.detail | ({"reason": a.reason} if a.reason else {})
                  | ({"combined": combined[item.row][1]} if item.row in combined else {}))
                 for item, a in zip(queue, answers)),
                concluded={row: label for row, (label, _) in combined.items()},
            )  # fmt: skip
        seconds["review"] = seconds.get("review", 0.0) + time.perf_counter() - t0

    def _combined(
        self, store: RunStore, queue: list[ReviewItem], answers: list, seconds: dict[str, float]
    ) -> dict[int, tuple[str, dict[str, float]]]:  # fmt: skip
        """--review-mode combine: row -> (the label the run concludes, the combined posterior) for each answered item:
        the argmax of the pool's posterior times the reviewer's measured P(answer | label) (`reviewer_skill.combine`).
        The pool's posterior: rule 'learned', the aggregator's (kept from scoring, else the pool scores the item
        again: a resumed run); other rules, from the consensus label and the pool's skill measured by the probe
        (`ProbeAnswers.pool_posterior`). Empty in override mode, without a measured confusion, or for the
        cold-start seed reviewer."""
        if self.confusion is None or self.probe_answers is None or self.reviewer is self.seed_reviewer:
            return {}
        names = self.task.label_names
        answered = [(item, a) for item, a in zip(queue, answers) if a.label in names]
        if not answered:
            return {}
        if self.used_rule == "learned":
            pool = self._pool_posteriors(store, [item for item, _ in answered], seconds)
        else:
            pool = self.probe_answers.pool_posterior(np.array([names.index(i.consensus_label) if i.consensus_label in names else NO_ANSWER
                                                               for i, _ in answered], dtype=int))  # fmt: skip
        posterior = combine(pool, np.array([names.index(a.label) for _, a in answered], dtype=int), self.confusion)
        return {item.row: (names[int(p.argmax())], {n: round(float(v), 4) for n, v in zip(names, p)}) for (item, _), p in zip(answered, posterior)}

    def _pool_posteriors(self, store: RunStore, items: list[ReviewItem], seconds: dict[str, float]) -> np.ndarray:
        """(n, n_labels) the learned aggregator's posterior for `items`: kept from scoring, else scored again (a
        resumed run; a Ray block written before posteriors were kept has none: zeros, which combine reads as uniform)."""
        missing = [item for item in items if item.row not in self._posteriors]
        if missing:
            outcomes = self._score(store, [i.row for i in missing], [i.text for i in missing], [i.item_id for i in missing], self._settings(), seconds)
            n_labels = len(self.task.label_names)
            self._posteriors |= {item.row: np.array(o.posterior or [0.0] * n_labels) for item, o in zip(missing, outcomes)}
        return np.stack([self._posteriors.pop(item.row) for item in items])

    def _combined_counts(self, store: RunStore) -> dict[str, int]:
        """In combine mode: answered items whose label is the reviewer's answer, and those where the combination
        kept another label (label_source llm+consensus)."""
        if self.confusion is None:
            return {}
        counts = store.count_by_source()
        return {"answer_kept": counts.get(self.reviewer.source, 0), "answer_overruled": counts.get(COMBINED_SOURCE, 0)}

    def _reasons(self, store: RunStore) -> dict[int, str]:
        """Row -> why the item stayed unresolved (see `autoannotator.reasons`), for every item without a label."""
        has_reviewer = self.reviewer is not None
        return {row: unresolved_reason(state, logged, has_reviewer=has_reviewer) for row, (state, logged) in store.unresolved_states().items()}

    def _output_frame(self, frame: pd.DataFrame, store: RunStore, unusable: dict[int, str]) -> pd.DataFrame:
        """Every input column (a clashing one kept as input_<name>, see `free_input_names`) plus the output columns, in input order.
        `unusable`: rows the input itself leaves unlabelable, with their reason (e.g. options_unparsed)."""
        reasons = self._reasons(store) | unusable
        stored = pd.DataFrame(
            [
                {"row": r.row, "label": r.label, "label_source": r.label_source, "uncertainty": r.uncertainty,
                 "votes": json.dumps(r.votes, ensure_ascii=False), "reviewed_label": r.reviewed_label,
                 "consensus_label": r.consensus_label, "reason": reasons.get(r.row), "audited": r.audited}
                for r in store.items()
            ],
            columns=["row", *OUTPUT_COLUMNS],
        ).set_index("row")  # fmt: skip
        if len(stored) != len(frame):
            raise AnnotatorError(f"run store has {len(stored)} items for {len(frame)} input rows")
        renamed = rename_columns(frame, free_input_names(list(frame.columns), OUTPUT_COLUMNS))
        labeled = pd.concat([renamed.reset_index(drop=True), stored.sort_index().reset_index(drop=True)], axis=1)
        labeled.attrs = renamed.attrs  # a datasets input's features, for the output
        return labeled
