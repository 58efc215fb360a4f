"""AutoAnnotator: small specialist models vote on every item; only the hard ones go to an LLM or a person."""

from autoannotator.errors import AnnotatorError
from autoannotator.pipeline import AnnotationResult, Annotator, RunSummary
from autoannotator.report import Evaluation, evaluate_frame
from autoannotator.task import Label, Task

__all__ = ["AnnotationResult", "Annotator", "AnnotatorError", "Evaluation", "Label", "RunSummary", "Task", "evaluate_frame"]
__version__ = "0.1.0"
