"""Secondary review of hard items: by gold labels here; by an LLM or a person in their own modules."""

from autoannotator.reviewers.base import Answer, Reviewer, ReviewItem, create_reviewer, register

__all__ = ["Answer", "ReviewItem", "Reviewer", "create_reviewer", "register"]
