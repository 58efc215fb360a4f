"""The task-specialist layer: small classifiers behind one protocol, registered by kind."""

from autoannotator.specialists.base import (
    LabelMapping,
    Specialist,
    create_specialist,
    load_specialist,
    register,
    registered_kinds,
)

__all__ = ["LabelMapping", "Specialist", "create_specialist", "load_specialist", "register", "registered_kinds"]
