"""The type of every value a job carries: data, results, outcomes."""

from __future__ import annotations

from typing import Any

JSON = Any
"""A value made only of dict (str keys), list, str, int, float (finite), bool and None."""
