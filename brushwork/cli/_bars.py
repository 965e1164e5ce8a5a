"""Progress events (:class:`brushwork.api.Progress`) drawn as tqdm bars, one per stage: the CLI's one bar style.

To be replaced by ``brushwork.cli.common.progress_bar`` once the contract (issue 8) provides it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

STAGE_NAMES = {"codes": ("style codes", "img"), "render": ("rendering", "img"), "train": ("training", "epoch")}


class Bars:
    """A ``progress`` callable: a bar per stage, created on its first event, closed by :meth:`close` (or as a
    context manager). ``keys`` name the losses shown beside the bar; ``quiet`` draws nothing."""

    def __init__(self, *, quiet: bool = False, keys: Sequence[str] = ()) -> None:
        self.quiet, self.keys = quiet, tuple(keys)
        self.bars: dict[str, Any] = {}

    def __call__(self, event: Any) -> None:
        bar = self.bars.get(event.stage)
        if bar is None:
            from tqdm import tqdm

            desc, unit = STAGE_NAMES.get(event.stage, (event.stage, "it"))
            bar = self.bars[event.stage] = tqdm(total=event.total or None, desc=desc, unit=unit, disable=self.quiet)
        shown = {k: f"{event.losses[k]:.1f}" for k in self.keys if k in event.losses}
        if shown:
            bar.set_postfix(shown, refresh=False)
        bar.update(event.step - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()

    def __enter__(self) -> Bars:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
