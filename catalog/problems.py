"""Moved to `kernel.problems`; kept for gateway/data_api.py and gateway/analysis_api.py,
which are being restructured in another branch (import from `kernel.problems`)."""

from kernel.problems import Problem, invalid_parameter, not_found

__all__ = ["Problem", "invalid_parameter", "not_found"]
