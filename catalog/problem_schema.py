"""Moved to `kernel.problem_schema`; kept for gateway/analysis_api.py, which is being
restructured in another branch (import from `kernel.problem_schema`)."""

from kernel.problem_schema import problem_responses

__all__ = ["problem_responses"]
