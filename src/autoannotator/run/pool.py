"""Stage 2 of a run: the pool. The specialists (loaded from the run, ready-made, or trained on the seed), the
learned rule's aggregator bound to the specialist versions it was fitted on, the one cached cross-fit of the
pool on the seed, and the one scoring path every chunk, re-scoring and estimate goes through (the executor)."""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autoannotator.consensus import Rule
from autoannotator.errors import AnnotatorError, InputWarning
from autoannotator.executors import Executor
from autoannotator.run.settings import RunSettings
from autoannotator.scoring import DRIVER_ROUTES, ConsensusSettings, Scored
from autoannotator.specialists import Specialist, create_specialist, load_specialist
from autoannotator.specialists.base import options_model, specialist_class, text_digests
from autoannotator.stacking import AGGREGATOR_DIR, Aggregator, fit_aggregator, out_of_fold_probs
from autoannotator.store import RunStore
from autoannotator.task import SpecialistSpec, Task

Seed = tuple[list[str], list[str]]  # (texts, labels) of a labeled seed
MIN_UNSEEN = 30  # seed items no in-sample specialist saw, below which the aggregator cannot be fitted without them


class Pool:
    """The specialist pool of one run and its consensus. `specs`: the pool's specs (unique names); `ready`: the
    ready-made Specialist instances given by name (used as they are, never trained on the seed)."""

    def __init__(self, task: Task, settings: RunSettings, specs: list[SpecialistSpec], ready: Mapping[str, Specialist],
                 executor: Executor, run_dir: Path) -> None:  # fmt: skip
        self.task, self.settings, self.specs, self.ready = task, settings, specs, dict(ready)
        self.executor, self.run_dir = executor, run_dir
        self.specialists: dict[str, Specialist] = {}
        self.aggregator: Aggregator | None = None
        self.consensus_note: dict[str, Any] = {}
        self.consensus_note_extra: dict[str, Any] = {}  # what the summary adds about the fit (items left out as seen)
        self.n_seed = 0  # seed items: the leading out-of-fold predictions of every aggregator the run fits
        self._seed_oof: tuple[Seed, np.ndarray, np.ndarray] | None = None  # seed, its (k, n, n_labels) out-of-fold probs, targets

    @property
    def used_rule(self) -> Rule:
        """The rule in force: 'learned' falls back to the vote rule when no aggregator could be fitted."""
        return "vote" if self.settings.rule == "learned" and self.aggregator is None else self.settings.rule

    def consensus_settings(self) -> ConsensusSettings:
        """What the executors decide a batch with; under a review budget or a target accuracy the driver routes."""
        return ConsensusSettings(self.used_rule, DRIVER_ROUTES if self.settings.driver_routes else self.settings.epsilon, self.aggregator)

    def versions(self, store: RunStore) -> dict[str, int]:
        """{name: active version} of every specialist in the pool."""
        return {name: store.active_specialist(name)[0] for name in self.specialists}

    def score(self, store: RunStore, rows: list[int], texts: list[str], item_ids: list[str] | None, seconds: dict[str, float]) -> list[Scored]:
        """The one scoring path: the executor runs the pool on `texts` (non-empty) and decides by consensus."""
        return self.executor.score(rows, texts, specialists=self.specialists, labels=self.task.label_names, settings=self.consensus_settings(),
                                   run_dir=self.run_dir, seconds=seconds, item_ids=item_ids, versions=self.versions(store))  # fmt: skip

    def prepare(self, store: RunStore, seed_data: Seed | None, seconds: dict[str, float]) -> None:
        """Load each specialist's active version from the run, or build it (training on the seed) and save it;
        then, for rule 'learned', load the aggregator bound to these versions or fit one."""
        for spec in self.specs:
            name = spec.display_name
            active = store.active_specialist(name)
            if active is not None:
                self.specialists[name] = load_specialist(self.run_dir / active[1], self.task, allow_remote_code=self.settings.allow_remote_code)
                continue
            specialist = self.ready.get(name) or self._build(spec, seed_data, seconds)
            relative = Path("specialists") / name / "v1"
            specialist.save(self.run_dir / relative)
            store.record_specialist(name, spec.kind, str(relative))
            self.specialists[name] = specialist

    def prepare_aggregator(self, store: RunStore, seed_data: Seed | None, seconds: dict[str, float], refit_on: Seed | None = None) -> None:
        """Rule 'learned': load the run's active aggregator when it was fitted on the pool's active versions, or fit
        it on cross-fitted seed predictions and save it in RUN/consensus/. A refinement round killed before its
        refit (or a `rollback`) leaves a pool the aggregator was not fitted on: it is refitted on `refit_on` (the
        seed and the reviewed items, as a round refits) instead of used. Without a seed there is nothing to fit it
        on: the run uses the vote rule and says so."""
        self.n_seed = len(seed_data[0]) if seed_data is not None else 0
        active = store.get_meta("aggregator")  # None: this run has fitted none (a file left by other settings is not used)
        folder = self.run_dir / (active or AGGREGATOR_DIR)
        bound = store.get_meta("aggregator_versions")
        current = _versions_key(self.versions(store))
        if active is not None and (folder / "aggregator.json").is_file() and bound in (None, current):
            self.aggregator = Aggregator.load(folder)
            self.consensus_note = self.aggregator.summary()
            kept = store.get_meta("aggregator_n_seed")  # seed items it was fitted on (fewer when some were seen, `_unseen`)
            self.n_seed = int(kept) if kept is not None else self.n_seed
        elif seed_data is None:
            self.consensus_note = {"fallback": "--rule learned needs a labeled seed (--seed or --seed-label): used the vote rule"}
        elif active is not None and (folder / "aggregator.json").is_file():
            digest = hashlib.sha256(current.encode()).hexdigest()[:12]
            self.fit_aggregator(store, refit_on or seed_data, f"{AGGREGATOR_DIR}/refit-{digest}", seconds, n_seed=len(seed_data[0]))
        else:
            self.fit_aggregator(store, seed_data, AGGREGATOR_DIR, seconds, n_seed=len(seed_data[0]))

    def fit_aggregator(self, store: RunStore, data: Seed, relative: str, seconds: dict[str, float], *, n_seed: int) -> None:
        """Cross-fit the pool on `data` (texts, labels; the seed first), fit the aggregator, save it in RUN/`relative`
        and make it the run's active one, bound to the pool's active versions (store meta 'aggregator',
        'aggregator_versions'). A specialist that is not cross-fitted (ready-made, saved, refined from a ready-made
        one) but was trained on some of `data` would score those items in-sample and win a weight it has not earned:
        the aggregator is fitted on the items none of them saw (`_unseen`). `n_seed`: how many of `data`'s items,
        first, are the seed's (what a certificate may rest on)."""
        t0 = time.perf_counter()
        self.n_seed = n_seed
        data = self._unseen(data)
        probs, targets = out_of_fold_probs(self.specialists, self.trained_on_seed(), *data, seed=self.settings.random_seed)
        self._seed_oof = (data, probs, targets)
        fit_aggregator(probs, targets, list(self.specialists), seed=self.settings.random_seed).save(self.run_dir / relative)
        with store.transaction():
            store.set_meta("aggregator", relative)
            store.set_meta("aggregator_versions", _versions_key(self.versions(store)))
            store.set_meta("aggregator_n_seed", str(self.n_seed))
        self.aggregator = Aggregator.load(self.run_dir / relative)
        self.consensus_note = self.aggregator.summary() | self.consensus_note_extra
        seconds["fit:aggregator"] = seconds.get("fit:aggregator", 0.0) + time.perf_counter() - t0

    def _unseen(self, data: Seed) -> Seed:
        """`data` less the items a specialist that is not cross-fitted was trained on (its `trained_on`), with an
        InputWarning naming them; `n_seed` becomes the seed items left. Raises AnnotatorError under --target-accuracy
        when fewer than MIN_UNSEEN seed items (or fewer than two labels) are left to certify on; otherwise too few
        left: a warning, and all of `data` is used."""
        direct = [name for name in self.specialists if name not in self.trained_on_seed()]
        seen = {name: self.specialists[name].trained_on for name in direct if self.specialists[name].trained_on}
        if not seen:
            return data
        digests = [text_digests([t]) for t in data[0]]
        union = frozenset().union(*seen.values())
        keep = [i for i, d in enumerate(digests) if not d <= union]
        if len(keep) == len(data[0]):
            return data
        who = {name: sum(1 for d in digests if d <= trained) for name, trained in seen.items()}
        who = {name: n for name, n in who.items() if n}
        n_seed = sum(1 for i in keep if i < self.n_seed)
        kept_labels = {data[1][i] for i in keep}
        line = (f"specialists {sorted(who)} were trained on {max(who.values())} of the {len(data[0])} items the learned consensus is "
                f"fitted on ({who}) and are not cross-fitted: their predictions there are in-sample")  # fmt: skip
        if n_seed < MIN_UNSEEN or len(kept_labels) < 2:
            if self.settings.target_accuracy is not None:
                raise AnnotatorError(f"{line}; only {n_seed} seed items are left that none of them saw, too few to certify "
                                     "--target-accuracy on: give a seed they were not trained on")  # fmt: skip
            warnings.warn(f"{line}; too few items are left without them, so the consensus is fitted on all (its weights favour them)", InputWarning, stacklevel=3)
            return data
        warnings.warn(f"{line}; the consensus is fitted (and any target certified) on the {len(keep)} items none of them saw", InputWarning, stacklevel=3)
        self.consensus_note_extra = {"fitted_on_unseen": len(keep), "trained_on_seed": who}
        self.n_seed = n_seed
        return [data[0][i] for i in keep], [data[1][i] for i in keep]

    def seed_out_of_fold(self, seed_data: Seed, n_folds: int | None = None, rows: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(k, n_seed, n_labels) out-of-fold pool probabilities on the seed and (n_seed,) targets: cross-fitted once
        per run and seed (the learned rule's fit computes them; the probe and estimate reuse them). `n_folds`: a
        different number of folds than the aggregator's (not cached). `rows`: only these seed items are needed (the
        probe's): when nothing is cached, specialists that are not cross-fitted (LLM voters) predict only them."""
        if n_folds is not None:
            return out_of_fold_probs(self.specialists, self.trained_on_seed(), *seed_data, seed=self.settings.random_seed, n_folds=n_folds)
        cached = self._seed_oof is not None and self._seed_oof[0] == seed_data
        if rows is not None and not cached:
            return out_of_fold_probs(self.specialists, self.trained_on_seed(), *seed_data, seed=self.settings.random_seed, rows=rows)
        if not cached:
            probs, targets = out_of_fold_probs(self.specialists, self.trained_on_seed(), *seed_data, seed=self.settings.random_seed)
            self._seed_oof = (seed_data, probs, targets)
        return self._seed_oof[1], self._seed_oof[2]

    def trained_on_seed(self) -> set[str]:
        """Names of the pool's specialists that the seed trains (not ready-made instances, not untrainable kinds)."""
        return {spec.display_name for spec in self.specs if spec.display_name not in self.ready and self.specialists[spec.display_name].trainable}

    def attach(self, store: RunStore, examples: Sequence[Any]) -> None:
        """Give every specialist the store (LLM voters' cache and ledger) and the seed's examples (few-shot voters)."""
        for name, specialist in self.specialists.items():
            specialist.attach(store, name)
            specialist.use_examples(examples)

    def _build(self, spec: SpecialistSpec, seed_data: Seed | None, seconds: dict[str, float]) -> Specialist:
        """A new specialist, trained on the seed when it can be; kinds that need training refuse to run without."""
        specialist = self.new_specialist(spec)
        if seed_data is not None and specialist.trainable:
            t0 = time.perf_counter()
            specialist.fit(*seed_data)
            seconds[f"fit:{spec.display_name}"] = time.perf_counter() - t0
        elif specialist.needs_training:
            raise AnnotatorError(f"the '{spec.display_name}' specialist must be trained first: give a labeled seed file (--seed)")
        return specialist

    def new_specialist(self, spec: SpecialistSpec) -> Specialist:
        """An untrained specialist of `spec`, seeded with the run's random seed where its kind takes one."""
        options = dict(spec.options)
        if "seed" in options_model(specialist_class(spec.kind)).model_fields:
            options.setdefault("seed", self.settings.random_seed)
        return create_specialist(spec.kind, self.task, allow_remote_code=self.settings.allow_remote_code, **options)


def _versions_key(versions: dict[str, int]) -> str:
    """The specialist versions an aggregator is bound to, as a stable string (name=version, sorted)."""
    return ",".join(f"{name}={version}" for name, version in sorted(versions.items()))
