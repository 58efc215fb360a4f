"""Stage 1 of a run: its settings. One pydantic model holds every routing and review option of `Annotator`, and
`RunSettings.create` makes every refusal (a flag the run could not honour) in one place, before any store is
opened or anything is trained or paid."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from autoannotator.audit import DEFAULT_SHARE
from autoannotator.consensus import RULES, Rule
from autoannotator.errors import AnnotatorError
from autoannotator.probe import DEFAULT_PROBE
from autoannotator.refine import RefineSettings
from autoannotator.target_accuracy import DEFAULT_CONFIDENCE
from autoannotator.task import SpecialistSpec, Task

Mode = Literal["specialists", "llm-only"]
ReviewMode = Literal["combine", "override"]
ReviewerKind = Literal["none", "gold", "llm", "human", "other"]


class RunSettings(BaseModel):
    """Every option of a run, validated once (`create`).

    `rule`, `epsilon` (U threshold), `budget` (share of all items reviewed, [0, 1]), `target_accuracy` A and
    `confidence` C ((0, 1); C defaults to 0.9 with A), `audit` (share of accepted items also reviewed; 0.05 by
    default with A), `chunk_size` (items per chunk), `mode`, `refine`, the cold-start seed reviewer
    (`seed_reviewer`, `seed_size`), `random_seed`, the reviewer probe (`reviewer_probe` seed items; 100 for an
    LLM reviewer, 0 otherwise), `review_mode` (combine for an LLM, override otherwise), `require_better_reviewer`.
    `reviewer_kind` says what the reviewer is (none, gold, llm, human, other): several refusals depend on it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: Rule = "vote"
    epsilon: float | None = None
    budget: float | None = None
    target_accuracy: float | None = None
    confidence: float = DEFAULT_CONFIDENCE
    audit: float | None = None
    chunk_size: int = 512
    seed_label_column: str = "label"
    mode: Mode = "specialists"
    refine: RefineSettings | None = None
    seed_reviewer: str | None = None
    seed_size: int = 0
    random_seed: int = 0
    reviewer_kind: ReviewerKind = "none"
    reviewer_probe: int = 0
    review_mode: ReviewMode = "override"
    require_better_reviewer: bool = False
    progress: bool = False
    allow_remote_code: bool = False

    @classmethod
    def create(
        cls, *, reviewer_kind: ReviewerKind, seed_reviewer_ok: bool, confidence: float | None = None, reviewer_probe: int | None = None,
        review_mode: ReviewMode | None = None, refine: RefineSettings | dict | None = None, **options: Any,
    ) -> RunSettings:  # fmt: skip
        """The settings with their defaults filled in, or AnnotatorError naming the flag a run could not honour.
        `seed_reviewer_ok`: the cold-start seed reviewer could be built (False for a spec that names none)."""
        target, audit = options.get("target_accuracy"), options.pop("audit", None)
        if options.get("mode", "specialists") not in ("specialists", "llm-only"):
            raise AnnotatorError(f"unknown mode '{options['mode']}' (use specialists or llm-only)")
        if review_mode not in (None, "combine", "override"):
            raise AnnotatorError(f"unknown review mode '{review_mode}' (use combine or override)")
        if options.get("rule", "vote") not in RULES:
            raise AnnotatorError(f"unknown rule '{options['rule']}' (use {', '.join(RULES)})")
        _refuse_target(options | {"audit": audit}, confidence, reviewer_kind)
        is_llm = reviewer_kind == "llm"
        if isinstance(refine, dict):
            refine = RefineSettings.model_validate(refine)
        random_seed = options.get("random_seed", 0)
        if refine is not None and "seed" not in refine.model_fields_set:
            refine = refine.model_copy(update={"seed": random_seed})
        settings = cls(
            confidence=DEFAULT_CONFIDENCE if confidence is None else confidence,
            audit=DEFAULT_SHARE if audit is None and target is not None else audit,
            reviewer_probe=(DEFAULT_PROBE if is_llm else 0) if reviewer_probe is None else reviewer_probe,
            review_mode=review_mode or ("combine" if is_llm else "override"), refine=refine, reviewer_kind=reviewer_kind, **options,
        )  # fmt: skip
        settings._refuse(reviewer_probe, seed_reviewer_ok)
        return settings

    def _refuse(self, probe_given: int | None, seed_reviewer_ok: bool) -> None:
        """The refusals that need the filled-in settings (see `create`)."""
        if self.reviewer_probe < 0:
            raise AnnotatorError(f"--reviewer-probe is a number of seed items, got {self.reviewer_probe}")
        if self.mode == "llm-only" and (probe_given or self.require_better_reviewer):
            raise AnnotatorError("--reviewer-probe and --require-better-reviewer measure the reviewer against the specialists: --mode llm-only has none")
        if self.reviewer_probe and self.reviewer_kind == "gold":
            raise AnnotatorError("the gold reviewer reads the input's column, which seed items do not have: leave out --reviewer-probe")
        if self.reviewer_probe and self.reviewer_kind == "none":
            raise AnnotatorError("--reviewer-probe measures the reviewer: give one (--reviewer llm or human)")
        if self.require_better_reviewer and not self.reviewer_probe:
            raise AnnotatorError("--require-better-reviewer judges the reviewer by its probe: give --reviewer-probe N (N > 0) and a seed")
        if self.epsilon is not None and not 0.0 <= self.epsilon <= 1.0:
            raise AnnotatorError(f"epsilon must be in [0, 1], got {self.epsilon}")
        if self.budget is not None and not 0.0 <= self.budget <= 1.0:
            raise AnnotatorError(f"the review budget is a fraction in [0, 1], got {self.budget}")
        if self.rule != "vote" and self.epsilon is None and self.budget is None and self.target_accuracy is None:
            raise AnnotatorError(f"the '{self.rule}' rule needs --epsilon or --budget" + (" (or --target-accuracy)" if self.rule == "learned" else ""))
        if self.mode == "llm-only" and self.reviewer_kind == "none":
            raise AnnotatorError("--mode llm-only needs a reviewer that labels every item, e.g. --reviewer llm")
        if self.chunk_size < 1:
            raise AnnotatorError("chunk size must be at least 1")
        if self.audit and self.reviewer_kind == "none":
            raise AnnotatorError("--audit sends items to the reviewer: give one (--reviewer gold:COLUMN, llm or human), or --audit 0")
        if self.seed_reviewer and (not seed_reviewer_ok or self.seed_size < 2):
            raise AnnotatorError("--seed-label needs a reviewer (gold:COLUMN, llm or human) and --seed-size of at least 2")

    @property
    def driver_routes(self) -> bool:
        """Routing happens at the driver over the whole run (a budget or a target accuracy), not per batch."""
        return self.budget is not None or self.target_accuracy is not None

    def fingerprint(self, task: Task, specs: list[SpecialistSpec], input_hash: str, seed_data: tuple[list[str], list[str]] | None) -> dict:
        """What makes a run the same run: a resumed run with another fingerprint is refused (`RunStore.open`)."""
        seed_hash = hashlib.sha256(json.dumps(seed_data).encode()).hexdigest()[:32] if seed_data is not None else None
        target = {"target_accuracy": self.target_accuracy, "confidence": self.confidence} if self.target_accuracy is not None else {}
        return {
            "task": task.model_dump(mode="json"),
            "specialists": [s.model_dump(mode="json") for s in specs],
            "consensus": {"rule": self.rule, "epsilon": self.epsilon, "budget": self.budget} | target | ({"audit": self.audit} if self.audit else {}),
            "mode": self.mode,
            "refine": self.refine.model_dump() if self.refine else None,
            "seed_label": [self.seed_reviewer, self.seed_size] if self.seed_reviewer else None,
            "input": input_hash,
            "seed": seed_hash,
            "random_seed": self.random_seed,
        }  # fmt: skip


def _refuse_target(options: dict[str, Any], confidence: float | None, reviewer_kind: ReviewerKind) -> None:
    """Refuse, with one line, a target accuracy or audit the run could not honour."""
    target, audit, rule, mode = options.get("target_accuracy"), options.get("audit"), options.get("rule", "vote"), options.get("mode", "specialists")
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
    if options.get("epsilon") is not None:
        raise AnnotatorError("--target-accuracy sets the review threshold itself: leave out --epsilon")
    if reviewer_kind == "none":
        audit_too = f" (and an audit of {DEFAULT_SHARE:.0%} of the accepted ones)" if audit is None else ""
        raise AnnotatorError(f"--target-accuracy sends the items above its certified threshold{audit_too} to a reviewer: give one "
                             "(--reviewer gold:COLUMN, llm or human)")  # fmt: skip
    if str(options.get("seed_reviewer") or "").split(":")[0] == "llm":
        raise AnnotatorError("--target-accuracy is certified on the seed's true labels: a seed labeled by --seed-label llm would certify "
                             "agreement with the LLM, not accuracy; give --seed, or --seed-label gold:COLUMN or human")  # fmt: skip
