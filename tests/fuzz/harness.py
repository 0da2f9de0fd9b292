"""A fuzz target: one input in, and only the documented refusals may come out.

Each target's ``one_input(data)`` returns when the server would answer the input (a result,
or a refusal it documents: a validation error turned into an ``error`` event, an ``AppError`` or
an HTTP exception turned into a 4xx); anything else it raises is a crash. The same function runs
under atheris (coverage-guided, ``python -m tests.fuzz``) and under hypothesis in the suite.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    name: str
    one_input: Callable[[bytes], None]
    # Real inputs to start from: the fuzzer mutates them, the suite runs each one.
    seeds: Sequence[bytes] = ()
