"""The pool's specialists as the caller names them: kind names, specs, dicts, ready-made instances, or a mapping of
names to any of these; each normalised to a spec with a unique name and checked before any store is made."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from autoannotator.errors import AnnotatorError
from autoannotator.specialists import Specialist, create_specialist
from autoannotator.specialists.base import check_remote_code, specialist_class
from autoannotator.task import SpecialistSpec, Task

DEFAULT_SPECIALISTS = ("tfidf", "embedding", "lexicon")

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


def pool_specs(
    task: Task, specialists: Sequence[SpecialistLike] | Mapping[str, SpecialistLike] | None, mode: str, allow_remote_code: bool
) -> tuple[list[SpecialistSpec], dict[str, Specialist]]:
    """The pool's specs (unique names) and its ready-made instances by name; every spec's options and remote-code
    permission are checked here, before any store is made (AnnotatorError naming the specialist otherwise)."""
    if mode == "llm-only":
        return [], {}
    if isinstance(specialists, Mapping):  # {name: kind, spec, dict or ready Specialist}
        chosen = list(specialists.values())
        specs = [as_spec(s).model_copy(update={"name": name}) for name, s in specialists.items()]
        as_specs(specs)  # uniqueness and kinds
    else:
        chosen = [declared(s, task) for s in specialists or task.specialists or DEFAULT_SPECIALISTS]
        specs = as_specs(chosen)
    ready = {spec.display_name: s for spec, s in zip(specs, chosen) if isinstance(s, Specialist)}
    for spec in specs:
        name = spec.display_name
        if name in ready:
            ready[name].allow_remote_code = ready[name].allow_remote_code or allow_remote_code
            check_remote_code(ready[name], name)
            continue
        try:
            create_specialist(spec.kind, task, allow_remote_code=allow_remote_code, **spec.options)
        except AnnotatorError as exc:
            raise AnnotatorError(f"specialist '{name}' ({spec.kind}): {exc}") from None
    return specs, ready
