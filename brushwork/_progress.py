"""The contract's progress event (issue 8), until ``brushwork.api`` provides it: then this module re-exports it.

Library code reports long work through one ``progress`` callable receiving :class:`Progress` events; it never
draws bars (the CLI does).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Progress:
    """One step of a long operation: ``step`` of ``total`` (0 if unknown) in ``stage``."""

    stage: str
    step: int
    total: int
    losses: Mapping[str, float] = field(default_factory=dict)
    preview: np.ndarray | None = None
    elapsed: float = 0.0
    message: str = ""


ProgressFn = Callable[[Progress], object]


class Reporter:
    """Emits the events of one stage to ``progress`` (which may be None): ``rep.step(i, losses=...)``."""

    def __init__(self, progress: ProgressFn | None, stage: str, total: int = 0) -> None:
        self.progress, self.stage, self.total = progress, stage, total
        self.start = time.perf_counter()

    def step(
        self,
        step: int,
        *,
        losses: Mapping[str, float] | None = None,
        preview: np.ndarray | None = None,
        message: str = "",
    ) -> None:
        if self.progress is not None:
            elapsed = time.perf_counter() - self.start
            self.progress(Progress(self.stage, step, self.total, dict(losses or {}), preview, elapsed, message))
