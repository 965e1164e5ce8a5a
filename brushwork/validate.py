"""The one set of validators for values a user passes to the API: seeds, style weights, finite numbers in a range.

Each returns the value in its canonical type or raises :class:`~brushwork.errors.InputError` with one line naming
the value. Torch-free and cheap to import (numpy is imported where weights are normalised); the CLI's argparse
types (:mod:`brushwork.cli.common`) share the same limits.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING

from brushwork.errors import InputError
from brushwork.options import SEED_LIMIT  # seeds are 0 <= seed < 2**63

if TYPE_CHECKING:
    import numpy as np


def check_seed(seed: object, name: str = "seed") -> int:
    """A random seed as an int, ``0 <= seed < 2**63``; InputError otherwise (bools and floats are refused)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) < SEED_LIMIT:
        raise InputError(f"{name} must be a whole number from 0 to 2**63 - 1, got {seed!r}")
    return int(seed)


def check_number(
    value: object,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite real number within ``low``..``high`` (bounds included unless ``*_open``) as a float; InputError
    naming ``name`` otherwise (NaN, inf, huge values, strings, bools)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be a number, got {value!r}")
    try:
        x = float(value)
    except OverflowError:  # a huge int
        x = math.inf
    if not math.isfinite(x):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    too_low = low is not None and (x <= low if low_open else x < low)
    too_high = high is not None and (x >= high if high_open else x > high)
    if too_low or too_high:
        lo = "" if low is None else f"{'more than' if low_open else 'at least'} {low:g}"
        hi = "" if high is None else f"{'less than' if high_open else 'at most'} {high:g}"
        raise InputError(f"{name} must be {' and '.join(s for s in (lo, hi) if s)}, got {x:g}")
    return x


def check_positive(value: object, name: str) -> float:
    """A finite number more than 0."""
    return check_number(value, name, low=0.0, low_open=True)


def check_count(value: object, name: str, *, low: int = 1, high: int | None = None) -> int:
    """A whole number within ``low``..``high``; InputError otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name} must be a whole number, got {value!r}")
    n = int(value)
    if n < low or (high is not None and n > high):
        bound = f"at least {low}" if high is None else f"from {low} to {high}"
        raise InputError(f"{name} must be {bound}, got {n}")
    return n


def normalise_weights(weights: Sequence[float] | None, k: int, name: str = "style weights") -> np.ndarray:
    """Blend weights for ``k`` styles as float64, normalised to sum 1 (equal when None). InputError for a wrong
    count, a negative or non-finite weight, or all zeros. Huge weights (near the largest float) do not overflow."""
    import numpy as np

    if weights is None:
        return np.full(k, 1.0 / k)
    try:
        w = np.asarray(list(weights), dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{name} must be numbers, got {weights!r}") from None
    if w.shape != (k,):
        raise InputError(f"got {w.size} {name} for {k} styles: give one weight per style")
    if not np.isfinite(w).all() or (w < 0).any():
        raise InputError(f"{name} must be finite and not negative, got {list(weights)}")
    top = w.max()
    if top <= 0:
        raise InputError(f"{name} must not all be zero")
    w = w / top  # first, so that the sum of huge weights cannot overflow
    return w / w.sum()
