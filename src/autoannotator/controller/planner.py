"""`autoannotator plan`: from a task file to a checked pipeline file."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from autoannotator.controller.catalog import CatalogEntry, curated_catalog, user_catalog
from autoannotator.controller.features import features_for
from autoannotator.controller.plan import PipelineSpec, ReviewerSpec, render_pipeline
from autoannotator.controller.select import Candidate, Method, rank, template_profile
from autoannotator.errors import AnnotatorError
from autoannotator.io import read_table
from autoannotator.items import labeled_seed
from autoannotator.refine import RefineSettings
from autoannotator.task import SpecialistSpec, Task

KIND_NAMES = {"hf-minilm-finetuned": "minilm-finetuned", "embedding-minilm": "embedding", "tfidf-logreg": "tfidf",
              "vader-lexicon": "lexicon"}  # fmt: skip


def packaged_encoder() -> Any:
    """encode(texts) -> normalized embeddings with the packaged all-MiniLM-L6-v2."""
    from autoannotator.specialists.embedding import EmbeddingSpecialist

    embedder = EmbeddingSpecialist(Task.from_dict({"name": "plan", "labels": ["a", "b"]}))
    return embedder.embed


def llm_writer(options: dict[str, Any]) -> Any | None:
    """A prompt -> text function on an OpenAI-compatible server, or None (no server given)."""
    if not options.get("base_url"):
        return None
    import openai

    client = openai.OpenAI(base_url=options["base_url"], api_key=os.environ.get(options.get("api_key_env", "OPENAI_API_KEY"), "none"))

    def ask(prompt: str) -> str:
        reply = client.chat.completions.create(model=options.get("model", "gpt-4o-mini"), temperature=0, max_tokens=300,
                                               messages=[{"role": "user", "content": prompt}])  # fmt: skip
        return reply.choices[0].message.content or ""

    return ask


def mark_cached(entries: list[CatalogEntry]) -> None:
    """Hub models already in the local Hugging Face cache work offline."""
    from huggingface_hub import try_to_load_from_cache

    for entry in entries:
        if entry.kind == "hf" and entry.model and not entry.offline:
            if isinstance(try_to_load_from_cache(entry.model, "config.json"), str):
                entry.offline = True


@dataclass
class Plan:
    spec: PipelineSpec
    text: str
    chosen: list[Candidate]
    judged: list[Candidate]
    profile: str
    copies: dict[Path, Path] = field(default_factory=dict)  # source -> destination, to copy beside the pipeline file


def seed_beside(seed: Path, base: Path, copies: dict[Path, Path]) -> str:
    """The seed file relative to the pipeline's folder; one outside it is copied there (under its own name,
    which must not hold a different file)."""
    if seed.resolve().is_relative_to(base.resolve()):
        return str(seed.resolve().relative_to(base.resolve()))
    target = base / seed.name
    if target.exists() and target.read_bytes() != seed.read_bytes():
        raise AnnotatorError(f"the seed file {seed} is outside {base}, which holds a different {seed.name}: copy it there yourself")
    copies[seed] = target
    return seed.name


def relative_to(path: Path, base: Path, what: str) -> str:
    """`path` relative to the pipeline's folder; a path outside it is refused (pipeline files stay self-contained)."""
    path, base = path.resolve(), base.resolve()
    if not path.is_relative_to(base):
        raise AnnotatorError(f"the {what} {path} is not inside {base}: write the pipeline file in a folder that holds it")
    return str(path.relative_to(base))


def make_plan(
    task_path: Path, output: Path, *, k: int = 3, method: Method = "similarity", seed: Path | None = None,
    sample: Path | None = None, sample_label_column: str = "label", catalog_dir: Path | None = None,
    hub: bool = True, hub_endpoint: str | None = None, reviewer: str = "llm", llm_options: dict[str, Any] | None = None,
    epsilon: float | None = None, beta: int | None = None,
) -> Plan:  # fmt: skip
    """Choose k specialists for the task and write the pipeline file's text (not yet saved)."""
    task = Task.from_yaml(task_path)
    llm_options = llm_options or {}
    entries = curated_catalog() + (user_catalog(catalog_dir) if catalog_dir else [])
    notes = []
    offline = True
    if hub:
        from autoannotator.controller.hub import search_hub

        try:
            entries += search_hub(task.name.replace("-", " "), endpoint=hub_endpoint, limit=20)
            offline = False
        except AnnotatorError as exc:
            notes.append(f"Hub search off: {exc}")
    mark_cached(entries)
    ask = llm_writer(llm_options)
    profile = template_profile(task)
    if ask is not None:
        written = ask(f"In two sentences, describe this annotation task and the kind of model suited to it.\n{profile}").strip()
        profile = written[:800] or profile
    labeled = None
    if sample is not None:
        labeled = labeled_seed(read_table(sample), task, label_column=sample_label_column, source=str(sample))
    encode = packaged_encoder()
    chosen, judged = rank(task, entries, k=k, encode=encode, profile=profile, method=method, sample=labeled,
                          has_seed=seed is not None, offline=offline, features=features_for, llm=ask)  # fmt: skip
    base = output.parent
    specs, comments = [], {}
    for c in chosen:
        name = KIND_NAMES.get(c.entry.id, c.entry.id.split("/")[-1])
        options: dict[str, Any] = {}
        if c.entry.model:
            options["model"] = relative_to(Path(c.entry.model), base, "model folder") if c.entry.source == "user" else c.entry.model
        if c.label_map and any(c.entry.labels):
            options["label_map"] = c.label_map
        specs.append(SpecialistSpec(kind=c.entry.kind, name=name, options=options))
        mapped = ", ".join(f"{m} -> {t} ({c.how[m]})" for m, t in c.label_map.items()) or "trained on the seed labels"
        comments[name] = (f"{c.entry.id} [{c.entry.source}, {c.entry.parameters} params, licence {c.entry.license}]: "
                          f"{method} score {c.score:.3f}; labels: {mapped}")  # fmt: skip
    copies: dict[Path, Path] = {}
    inside = task_path.resolve().is_relative_to(base.resolve())
    spec = PipelineSpec(  # a task file outside the pipeline's folder is embedded: the file stays self-contained
        task=relative_to(task_path, base, "task file") if inside else task.model_dump(mode="json", exclude_defaults=True),
        specialists=specs,
        consensus={"epsilon": epsilon}, reviewer=ReviewerSpec(spec=reviewer, options=llm_options),
        refine=RefineSettings(beta=beta) if beta else None,
        seed=seed_beside(seed, base, copies) if seed else None,
    )  # fmt: skip
    comments["consensus"] = "paper eq. 5: an item is hard when U = 1 - max votes / k >= epsilon (null: any disagreement)"
    comments["reviewer"] = "who answers hard items: none, gold:COLUMN, llm (embedded model unless options.base_url), human"
    excluded = [f"  {c.entry.id}: {c.excluded}" for c in judged if c.excluded]
    ranked = sorted((c for c in judged if not c.excluded), key=lambda c: -c.score)
    header = [
        "Written by `autoannotator plan`; checked again by `autoannotator run`. Edit freely.",
        f"Task profile: {profile}",
        f"Ranking: {method}; chose {len(chosen)} of {len(ranked)} usable candidates (one per model family):",
        *[f"  {c.score:.3f}  {c.entry.id}" for c in ranked],
        "Not usable here:", *(excluded or ["  (none)"]), *notes,
    ]  # fmt: skip
    text = render_pipeline(spec, comments, header)
    return Plan(spec=spec, text=text, chosen=chosen, judged=judged, profile=profile, copies=copies)


