"""Video stylization with stable strokes, and the temporal metrics that measure it.

Each frame goes through the same renderer (``brushwork.api.renderer``: the style work is done once). Between
consecutive input frames a dense optical flow (OpenCV DIS, computed at a reduced size) warps the previous
*stylized* frame onto the new one; a forward-backward consistency check and the flow's motion boundaries mark the
pixels where that warp cannot be trusted (occlusions, disocclusions, the frame border). Outside them the new
frame is a blend of its own stylization and the warped previous result, weighted by ``consistency`` (0 = frame by
frame), so strokes follow the motion instead of being redrawn every frame (Ruder et al. 2016). A scene cut (most
pixels unreliable, or the warped previous frame far from the new one) resets the history.

With ``keyframes`` N > 1 (:class:`Frames`; the default for the feed-forward methods) the network stylizes only every
N-th frame and the frames either side of a scene cut; each frame between two keyframes is both keyframes' outputs
warped onto it along the chained flow (forward from the earlier, backward from the later), weighted by the warps'
trust masks and by temporal distance (:func:`propagate`).

Decoding + flow, stylization, and encoding run in three threads joined by short queues, so file I/O and the flow
overlap the network. Finished frames are kept as PNG files in a cache folder beside the output while the run
lasts; ``resume=True`` continues from them after an interruption (the blend history is the 8-bit output frame,
so a resumed run reproduces an uninterrupted one), and the cache is removed when the output is complete.

Metrics (:func:`evaluate_video`): the warping error of Lai et al. 2018 (mean over non-occluded pixels of the
squared RGB difference between each stylized frame and the previous one warped by the *original* video's flow),
a flicker figure (frame-to-frame change of the low-frequency luminance along the motion, beyond the original's),
and a per-frame style distance.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from brushwork import io
from brushwork.api import Progress, Reporter
from brushwork.errors import InputError, OutputError
from brushwork.options import INT_LIMIT, MAX_SIDE, MIN_SIDE
from brushwork.validate import check_count, check_number

ProgressFn = Callable[[Progress], object]

# ------------------------------------------------------------------------------------------- defaults

CONSISTENCY = 0.7  # weight of the warped previous result outside occlusions
DETAIL_SIGMA = 1.5  # fine detail (restored after blending) = the image minus a Gaussian blur of this sigma
# longer side the flow is computed at (pixels): bench_video measured full size best on 854×480 (warping error
# 0.0040; 640 px 0.0044, 384 px 0.0058, 240 px 0.0078) at no visible cost next to the network, so larger frames only
# are reduced
FLOW_SIZE = 1024
FLOW_PRESET = "fast"  # DIS preset of the pipeline (the metric uses "medium" at full size)
# shortest side the flow is computed at (pixels): OpenCV's DIS fails (an error, or a crash) on images thinner than its
# pyramid needs (a side under 12 px; a long thin frame such as 640×16); a thinner side is enlarged for the flow only
FLOW_MIN = 32
SCENE_CUT = 0.5  # a cut when more than this fraction of pixels is unreliable, or the warped-input error is large
CUT_ERROR = 0.12  # mean absolute grey difference (0..1) between a frame and the previous one warped onto it
CACHE_SUFFIX = ".brushwork-frames"
KEYFRAMES = 4  # feed-forward methods with consistency > 0: the network stylizes every 4th frame (bench_video)
FLOOR = 0.05  # propagation: weight of a plain cross-fade where neither keyframe's warp can be trusted
RESTORE_DETAIL = True  # propagation: give the in-between frames' fine detail the keyframes' local energy back
WEIGHT_SIGMA = 4.0  # propagation: smoothing of the trust masks that weight the two keyframes' warps (pixels)


# ----------------------------------------------------------------------------------------------- flow


def _dis(preset: str) -> Any:
    import cv2

    presets = {
        "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
        "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
        "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    }
    if preset not in presets:
        raise InputError(f"unknown flow preset {preset!r}: use one of {', '.join(presets)}")
    return cv2.DISOpticalFlow_create(presets[preset])


def gray(rgb: np.ndarray) -> np.ndarray:
    """H×W×3 (uint8 or float 0..1) -> H×W uint8 luminance."""
    import cv2

    if rgb.dtype != np.uint8:
        rgb = (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


@dataclass
class Motion:
    """How frame t relates to frame t-1: ``map_x/map_y`` (H×W float32, for ``cv2.remap``) give for each pixel of
    frame t its position in frame t-1; ``reliable`` (H×W float32 0..1) is 0 on occlusions, motion boundaries and
    pixels that come from outside the frame; ``cut`` says the two frames are different shots. With
    ``FlowEstimator(forward=True)`` also the other direction: ``forward_x/forward_y`` give for each pixel of frame
    t-1 its position in frame t, ``forward_reliable`` (on t-1's grid) where that can be trusted (keyframe
    propagation warps later outputs back with it)."""

    map_x: np.ndarray
    map_y: np.ndarray
    reliable: np.ndarray
    cut: bool
    unreliable_fraction: float
    error: float
    forward_x: np.ndarray | None = None
    forward_y: np.ndarray | None = None
    forward_reliable: np.ndarray | None = None


class FlowEstimator:
    """Dense optical flow between consecutive frames (OpenCV DIS), at a reduced size, with occlusion masks;
    ``forward=True`` keeps the forward flow's maps and occlusion mask too (:class:`Motion`)."""

    def __init__(self, size: int | None = FLOW_SIZE, preset: str = FLOW_PRESET, forward: bool = False) -> None:
        self.size = size
        self.preset = preset
        self.forward = forward
        self._dis = _dis(preset)
        self._shape: tuple[int, ...] | None = None

    def _flow(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if self._shape is not None and self._shape != a.shape:
            # DIS tunes its pyramid to the first size it sees (and keeps that): a new size gets a new one
            self._dis = _dis(self.preset)
        self._shape = a.shape
        return self._dis.calc(a, b, None)

    def flow_size(self, width: int, height: int) -> tuple[int, int]:
        """The (width, height) the flow of w×h frames is computed at: the longer side bounded by ``size``, neither
        side under :data:`FLOW_MIN` (a thinner side is enlarged; :func:`_full_size` scales the flow back)."""
        longer = max(width, height)
        scale = 1.0 if self.size is None or longer <= self.size else self.size / longer
        return max(FLOW_MIN, round(width * scale)), max(FLOW_MIN, round(height * scale))

    def motion(self, prev_gray: np.ndarray, cur_gray: np.ndarray) -> Motion:
        """Backward flow (t -> t-1) for warping, checked against the forward flow (t-1 -> t)."""
        import cv2

        h, w = cur_gray.shape
        size = self.flow_size(w, h)
        if size != (w, h):
            shrinking = size[0] <= w and size[1] <= h
            interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
            a = cv2.resize(prev_gray, size, interpolation=interpolation)
            b = cv2.resize(cur_gray, size, interpolation=interpolation)
        else:
            a, b = prev_gray, cur_gray
        backward = self._flow(b, a)  # for pixels of t: displacement to t-1
        forward = self._flow(a, b)  # for pixels of t-1: displacement to t
        backward_full, reliable = _full_size(backward, occlusion_mask(backward, forward), w, h)
        map_x, map_y = _maps(backward_full)
        reliable = _inside(reliable, map_x, map_y)
        unreliable = float(1.0 - reliable.mean())
        warped = cv2.remap(prev_gray, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        diff = cv2.absdiff(warped, cur_gray).astype(np.float32) / 255.0
        weight = reliable.sum()
        error = float((diff * reliable).sum() / weight) if weight > 0 else 1.0
        cut = unreliable > SCENE_CUT or error > CUT_ERROR
        motion = Motion(map_x, map_y, reliable, cut, unreliable, error)
        if self.forward:
            forward_full, forward_reliable = _full_size(forward, occlusion_mask(forward, backward), w, h)
            motion.forward_x, motion.forward_y = _maps(forward_full)
            motion.forward_reliable = _inside(forward_reliable, motion.forward_x, motion.forward_y)
        return motion


def _full_size(flow: np.ndarray, reliable: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """A flow (and its mask) computed at a reduced size, brought back to w×h (displacements scaled)."""
    import cv2

    sh, sw = flow.shape[:2]
    if (sw, sh) == (w, h):
        return flow, reliable
    flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
    flow[..., 0] *= w / sw
    flow[..., 1] *= h / sh
    return flow, cv2.resize(reliable, (w, h), interpolation=cv2.INTER_LINEAR)


def _inside(reliable: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """``reliable`` set to 0 where the maps point outside the other frame."""
    h, w = map_x.shape
    inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    return np.where(inside, reliable, 0.0).astype(np.float32)


_GRIDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _maps(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    h, w = flow.shape[:2]
    grid = _GRIDS.get((h, w))
    if grid is None:
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        grid = _GRIDS.setdefault((h, w), (xs, ys))
    u, v = cv2.split(flow)
    return grid[0] + u, grid[1] + v


def occlusion_mask(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """1 where the backward flow of frame t is trustworthy, 0 at occlusions and motion boundaries.

    Forward-backward check (Sundaram et al. 2010, as in Ruder et al. 2016): following the backward flow to t-1 and
    the forward flow back must return close to the start, ``|b + f(x+b)|² <= 0.01 (|b|² + |f(x+b)|²) + 0.5``;
    motion boundaries: ``|∇u|² + |∇v|² <= 0.01 |b|² + 0.002``. (Swap the arguments for the forward flow's mask.)
    """
    import cv2

    map_x, map_y = _maps(backward)
    f_at = cv2.remap(forward, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    b0, b1 = cv2.split(backward)  # per channel: the same sums as over the last axis, several times faster
    f0, f1 = cv2.split(f_at)
    s0, s1 = b0 + f0, b1 + f1
    round_trip = s0 * s0 + s1 * s1
    b2 = b0 * b0 + b1 * b1
    magnitude = b2 + (f0 * f0 + f1 * f1)
    consistent = round_trip <= 0.01 * magnitude + 0.5
    gu = np.gradient(b0)
    gv = np.gradient(b1)
    grad = gu[0] ** 2 + gu[1] ** 2 + gv[0] ** 2 + gv[1] ** 2
    smooth = grad <= 0.01 * b2 + 0.002
    mask = (consistent & smooth).astype(np.uint8)
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8))  # do not trust the pixels next to an occlusion either
    return mask.astype(np.float32)


def warp(image: np.ndarray, motion: Motion, cubic: bool = False) -> np.ndarray:
    """Warp an image of frame t-1 (H×W×C, any dtype cv2 takes) onto frame t (bilinear, or bicubic)."""
    import cv2

    interpolation = cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR
    return cv2.remap(image, motion.map_x, motion.map_y, interpolation, borderMode=cv2.BORDER_REPLICATE)


# -------------------------------------------------------------------------------------------- renderer


def make_renderer(styles: Sequence[Any], method: str = "fast", **options: Any) -> Any:
    """One renderer for all frames (``brushwork.api.renderer``: the style work is done once)."""
    from brushwork.api import renderer

    return renderer(list(styles), method=method, **options)


# ------------------------------------------------------------------------------------ temporal blending


@dataclass
class TemporalState:
    """What the next frame needs from the previous one."""

    gray: np.ndarray | None = None  # previous input frame, grey uint8
    output: np.ndarray | None = None  # previous output frame, uint8 H×W×3


@dataclass
class FrameStats:
    cuts: int = 0
    reliable: list[float] = field(default_factory=list)


def blend(
    stylized: np.ndarray,
    previous: np.ndarray | None,
    motion: Motion | None,
    consistency: float,
    restore_detail: bool = True,
) -> np.ndarray:
    """The frame's stylization pulled towards the warped previous result outside occlusions (float 0..1).

    Averaging two stroke textures that do not line up exactly lowers their contrast, and the loss compounds from
    frame to frame; ``restore_detail`` gives the blend's fine detail (above a Gaussian of σ = 1.5 px) back the
    local energy of the frame's own stylization (gain 1..2). The previous result is warped with bicubic
    interpolation (bilinear blurs a little more at every frame). bench_video measures both choices.
    """
    if previous is None or motion is None or motion.cut or consistency <= 0.0:
        return stylized
    warped = warp(previous, motion, cubic=True).astype(np.float32) / 255.0
    weight = (consistency * motion.reliable)[..., None]
    mixed = stylized + weight * (warped - stylized)
    if not restore_detail:
        return mixed
    import cv2

    low_mixed = cv2.GaussianBlur(mixed, (0, 0), DETAIL_SIGMA)
    high_mixed = mixed - low_mixed
    high_own = stylized - cv2.GaussianBlur(stylized, (0, 0), DETAIL_SIGMA)
    e_mixed = cv2.GaussianBlur((high_mixed**2).sum(-1), (0, 0), 2 * DETAIL_SIGMA)
    e_own = cv2.GaussianBlur((high_own**2).sum(-1), (0, 0), 2 * DETAIL_SIGMA)
    gain = np.clip(np.sqrt(e_own / (e_mixed + 1e-8)), 1.0, 2.0)[..., None]
    return low_mixed + gain * high_mixed


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# ------------------------------------------------------------------------------- method "optimize" (Ruder)


class OptimizeFrames:
    """Method ``optimize`` for video (Ruder et al. 2016): each frame with history starts from the previous output
    warped onto it and adds the temporal loss to it (:class:`brushwork.methods.optimize.FrameOptimizer`); frames
    without history (the first, after a scene cut, or all with consistency 0) start from the method's ``init`` and
    run its ``iterations``. ``renderer``: the checked options and loaded styles (``brushwork.api.renderer``);
    ``strength`` blends with the frame afterwards, ``color_match`` recolours the styles to the first frame."""

    def __init__(self, renderer: Any, temporal_weight: float, frame_iterations: int) -> None:
        check_renderer(renderer, "optimize")
        self.options = renderer.options
        self.styles = [s for s in renderer.styles if not isinstance(s, int)]
        self.temporal_weight = temporal_weight
        self.frame_iterations = frame_iterations
        self._optimizer: Any = None

    def _make(self, first_frame: np.ndarray) -> Any:
        from brushwork.api import match_colors
        from brushwork.methods.optimize import FrameOptimizer

        o = self.options
        styles = [match_colors(s, first_frame) for s in self.styles] if o.color_match else self.styles
        return FrameOptimizer(
            styles,
            style_weights=o.style_weights,
            content_weight=o.content_weight,
            style_weight=o.style_weight,
            tv_weight=o.tv_weight,
            temporal_weight=self.temporal_weight,
            content_layers=o.content_layers,
            style_layers=o.style_layers,
            style_layer_weights=o.style_layer_weights,
            loss=o.loss,
            optimizer=o.optimizer,
            learning_rate=o.learning_rate,
            iterations=o.iterations,
            frame_iterations=self.frame_iterations,
            init=o.init,
            style_scale=o.stroke_scale,
            preserve_color=o.preserve_color,
            seed=o.seed,
            backbone=o.backbone,
            weights=o.weights,
            pool=o.pool,
            swag=o.swag,
            normalize_gradients=o.normalize_gradients,
            device=o.device,
        )

    def render(
        self, rgb: np.ndarray, previous: np.ndarray | None = None, trust: np.ndarray | None = None
    ) -> np.ndarray:
        """``rgb``: the frame (H×W×3 float32 0..1); ``previous``: the previous output warped onto it (float 0..1)
        or None; ``trust``: H×W weights of the temporal loss. Returns H×W×3 float32 0..1."""
        from brushwork import io

        if self._optimizer is None:
            self._optimizer = self._make(rgb)
        result = self._optimizer.frame(rgb, previous, trust)
        if result.interrupted:  # Ctrl-C inside the optimization: stop the video, not just the frame
            raise KeyboardInterrupt
        out = io.to_numpy(result.image)
        strength = self.options.strength
        if strength < 1.0:
            out = strength * out + (1.0 - strength) * rgb
        return np.clip(out, 0.0, 1.0).astype(np.float32)


def check_renderer(renderer: Any, method: str) -> None:
    """InputError for a ready renderer's options that do not apply to video (checked before any frame)."""
    if method == "optimize" and getattr(renderer.options, "min_size", None) is not None:
        raise InputError("min_size (a coarse-to-fine pyramid) does not apply to video: each frame is one scale")


def stylize_frame(
    frame: np.ndarray,
    motion: Motion | None,
    state: TemporalState,
    renderer: Any,
    consistency: float,
    feed: float = 0.0,
    stats: FrameStats | None = None,
    optimizer: OptimizeFrames | None = None,
) -> np.ndarray:
    """One frame of the pipeline: ``frame`` (uint8 H×W×3) stylized and blended with ``state.output`` (the previous
    output frame) along ``motion`` (this frame relative to the previous one; None for the first frame). Returns the
    uint8 output frame; the caller keeps it as the next frame's ``state``. With ``optimizer`` (method
    ``optimize``) the warped previous output starts the optimization and weights its temporal loss instead of a
    pixel blend (Ruder et al.)."""
    if stats is not None and motion is not None:
        stats.reliable.append(1.0 - motion.unreliable_fraction)
        if motion.cut:
            stats.cuts += 1
    usable = motion is not None and not motion.cut and state.output is not None
    rgb = frame.astype(np.float32) / 255.0
    if optimizer is not None:
        previous = trust = None
        if usable and consistency > 0.0:
            assert motion is not None
            previous = warp(state.output, motion, cubic=True).astype(np.float32) / 255.0
            trust = consistency * motion.reliable
        return to_uint8(optimizer.render(rgb, previous, trust))
    if usable and feed > 0.0:
        warped = warp(state.output, motion).astype(np.float32) / 255.0
        w = (feed * motion.reliable)[..., None]
        rgb = rgb + w * (warped - rgb)
    stylized = renderer.render(rgb)
    if stylized.shape != frame.shape:
        raise InputError(f"the renderer changed the frame size to {stylized.shape[1]}×{stylized.shape[0]}")
    return to_uint8(blend(stylized, state.output, motion if usable else None, consistency))


# ------------------------------------------------------------------------------------ keyframe propagation


@dataclass
class Chain:
    """Where the pixels of one frame lie in another frame some flow steps away (``map_x/map_y``, for
    ``cv2.remap``), and how far each can be trusted (``reliable``: the product of the steps' masks)."""

    map_x: np.ndarray
    map_y: np.ndarray
    reliable: np.ndarray

    def then(self, map_x: np.ndarray, map_y: np.ndarray, reliable: np.ndarray) -> Chain:
        """The chain from a frame one step further: its pixels lie at ``map_x/map_y`` in this chain's first frame,
        trusted by ``reliable`` (on the further frame's grid). One remap of the stacked maps."""
        import cv2

        stacked = cv2.merge([self.map_x, self.map_y, self.reliable])
        moved = cv2.remap(stacked, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        x, y, r = cv2.split(moved)
        return Chain(x, y, r * reliable)

    def motion(self) -> Motion:
        """As a :class:`Motion` (never a cut: a group of frames never spans one) for :func:`blend`."""
        unreliable = float(1.0 - self.reliable.mean())
        return Motion(self.map_x, self.map_y, self.reliable, False, unreliable, 0.0)


def detail_energy(rgb: np.ndarray) -> np.ndarray:
    """Local energy of an image's fine detail (above a Gaussian of σ = :data:`DETAIL_SIGMA`), H×W float32, for
    images in 0..1 (uint8 is scaled)."""
    import cv2

    x = rgb.astype(np.float32) / 255.0 if rgb.dtype == np.uint8 else rgb
    high = x - cv2.GaussianBlur(x, (0, 0), DETAIL_SIGMA)
    return cv2.GaussianBlur((high**2).sum(-1), (0, 0), 2 * DETAIL_SIGMA)


def propagate(
    earlier: np.ndarray,
    later: np.ndarray,
    forward: Chain,
    backward: Chain,
    t: float,
    floor: float = FLOOR,
    energies: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """A frame between two stylized keyframes (uint8 H×W×3), at ``t`` (0..1) of the way from ``earlier`` to
    ``later``: ``earlier`` warped forward along ``forward`` (this frame's pixels in the earlier keyframe) and
    ``later`` warped back along ``backward`` (its pixels in the later keyframe), both bicubic, weighted by each
    warp's trust mask and by temporal distance, ``(1−t)²·M_f`` and ``t²·M_b`` (squared: the nearer keyframe
    dominates, so fewer pixels average two stroke textures that do not line up; linear weights kept 89.8 % of
    microast's fine detail on bench_video's 10 s clip, squared 90.2 %, for 4 % more warping error). Where neither
    warp can be trusted (disocclusions seen by no keyframe) the weights fall to a plain cross-fade, ``floor`` (1−t)
    and ``floor`` t.
    The masks are smoothed first (Gaussian, σ = :data:`WEIGHT_SIGMA` px): hard per-pixel switches between the two
    warps left blotches inside moving objects, whose flat interiors the flow follows poorly.

    ``energies``: the keyframes' :func:`detail_energy`; then, as :func:`blend` does, the mix's fine detail gets
    back the keyframes' local energy (warped along with them, weighted like them; gain 1..2): two stroke textures
    that do not line up exactly, and the bicubic warps, soften it. Returns the uint8 frame."""
    import cv2

    f = warp(earlier, forward, cubic=True).astype(np.float32) / 255.0
    b = warp(later, backward, cubic=True).astype(np.float32) / 255.0
    wf = (1.0 - t) ** 2 * cv2.GaussianBlur(forward.reliable, (0, 0), WEIGHT_SIGMA)
    wb = t**2 * cv2.GaussianBlur(backward.reliable, (0, 0), WEIGHT_SIGMA)
    share = (wb + floor * t) / (wf + wb + floor)  # of the later keyframe
    out = f + share[..., None] * (b - f)
    if energies is not None:
        e_f = warp(energies[0], forward)
        target = e_f + share * (warp(energies[1], backward) - e_f)
        low = cv2.GaussianBlur(out, (0, 0), DETAIL_SIGMA)
        high = out - low
        e_mixed = cv2.GaussianBlur((high**2).sum(-1), (0, 0), 2 * DETAIL_SIGMA)
        gain = np.clip(np.sqrt(target / (e_mixed + 1e-8)), 1.0, 2.0)[..., None]
        out = low + gain * high
    return to_uint8(out)


def _check_arguments(
    src: object, dst: object, styles: object, progress: object, renderer: object, protect: object
) -> None:
    """InputError / OutputError (one line) for arguments of :func:`stylize_video` of the wrong kind."""
    if not isinstance(src, str | os.PathLike) or src == "":
        raise InputError(f"src must be a video file's path, got {src!r:.40}")
    if not isinstance(dst, str | os.PathLike) or dst == "":
        raise OutputError(f"dst must be the output file's path, got {dst!r:.40}")
    io.check_not_folder_name(os.fspath(dst))
    if isinstance(styles, str | os.PathLike) or not isinstance(styles, Sequence):
        raise InputError(f"styles must be a list of styles (images or builtin:N), got {styles!r:.40}")
    if progress is not None and not callable(progress):
        raise InputError(f"progress must be a function taking a Progress event, got {progress!r:.40}")
    if renderer is not None and not callable(getattr(renderer, "render", None)):
        raise InputError("renderer must be a ready renderer (brushwork.api.renderer), with a render method")
    io.as_paths(protect, "protect")


def check_keyframes(keyframes: int | None, method: str, consistency: float) -> int:
    """``keyframes`` checked, or its default for ``method`` and ``consistency`` (:data:`KEYFRAMES` for the
    feed-forward methods with consistency on; 1 — every frame stylized — with consistency 0 and for optimize)."""
    if keyframes is None:
        return 1 if method == "optimize" or consistency <= 0.0 else KEYFRAMES
    if isinstance(keyframes, bool) or not isinstance(keyframes, int) or not 1 <= keyframes <= INT_LIMIT:
        raise InputError(f"keyframes must be a positive whole number (at most {INT_LIMIT}), got {keyframes!r:.40}")
    if keyframes > 1 and method == "optimize":
        raise InputError("keyframes apply to the feed-forward methods: method optimize stylizes every frame (use 1)")
    return keyframes


@dataclass
class _Pending:
    rgb: np.ndarray
    gray: np.ndarray
    motion: Motion | None
    tag: Any


class Frames:
    """Frames in order through :func:`stylize_frame` (``keyframes`` 1), or with keyframe propagation: the network
    stylizes every ``keyframes``-th frame (by index: ``index % keyframes == 0``), the first frame, the last
    (:meth:`finish`) and the two frames either side of a scene cut; each frame between two keyframes is
    :func:`propagate`-d from them along the flow (the motions need ``FlowEstimator(forward=True)``). A keyframe is
    blended with the previous keyframe's output warped along the chained flow, as :func:`blend` does with the
    previous frame. A group of frames depends only on the output of the keyframe before it, so a run that restarts
    from a keyframe (:meth:`restore`) reproduces an uninterrupted one.

    :meth:`push` takes a frame and returns the ``(tag, uint8 output)`` pairs it completes, in order."""

    def __init__(
        self,
        renderer: Any,
        consistency: float,
        keyframes: int = 1,
        feed: float = 0.0,
        stats: FrameStats | None = None,
        optimizer: OptimizeFrames | None = None,
    ) -> None:
        self.renderer = renderer
        self.consistency = consistency
        self.keyframes = keyframes
        self.feed = feed
        self.stats = stats
        self.optimizer = optimizer
        self.state = TemporalState()
        self.pending: list[_Pending] = []
        self.rendered = 0  # frames the network stylized

    def restore(self, gray: np.ndarray, output: np.ndarray) -> None:
        """Continue after a finished frame (a keyframe when ``keyframes`` > 1)."""
        assert not self.pending
        self.state = TemporalState(gray, output)

    def push(
        self, index: int, rgb: np.ndarray, gray: np.ndarray, motion: Motion | None, tag: Any = None
    ) -> list[tuple[Any, np.ndarray]]:
        if self.keyframes == 1:
            return self._group([_Pending(rgb, gray, motion, tag)])
        done: list[tuple[Any, np.ndarray]] = []
        cut = motion is None or motion.cut
        if cut and self.pending:  # the frame before a cut closes its group as a keyframe
            done += self._group(self.pending)
            self.pending = []
        self.pending.append(_Pending(rgb, gray, motion, tag))
        if cut or index % self.keyframes == 0:
            done += self._group(self.pending)
            self.pending = []
        return done

    def finish(self) -> list[tuple[Any, np.ndarray]]:
        """The last frames (the last frame is a keyframe)."""
        done = self._group(self.pending) if self.pending else []
        self.pending = []
        return done

    def _stylize(self, frame: _Pending, motion: Motion | None) -> np.ndarray:
        self.rendered += 1
        args = (self.renderer, self.consistency, self.feed, self.stats, self.optimizer)
        return stylize_frame(frame.rgb, motion, self.state, *args)

    def _group(self, frames: list[_Pending]) -> list[tuple[Any, np.ndarray]]:
        key = frames[-1]
        if len(frames) == 1:
            out = self._stylize(key, key.motion)
            self.state = TemporalState(key.gray, out)
            return [(key.tag, out)]
        forward: list[Chain] = []  # each frame's pixels in the earlier keyframe
        for f in frames:
            m = f.motion
            assert m is not None and not m.cut
            step = (m.map_x, m.map_y, m.reliable)
            forward.append(Chain(*step) if not forward else forward[-1].then(*step))
        earlier = self.state.output
        assert earlier is not None
        later = self._stylize(key, forward[-1].motion())
        backward: list[Chain] = []  # each frame's pixels in the later keyframe, from the last in-between frame back
        for f in reversed(frames[1:]):
            m = f.motion
            assert m is not None and m.forward_x is not None and m.forward_y is not None
            assert m.forward_reliable is not None
            step = (m.forward_x, m.forward_y, m.forward_reliable)
            backward.append(Chain(*step) if not backward else backward[-1].then(*step))
        backward.reverse()
        n = len(frames)
        energies = (detail_energy(earlier), detail_energy(later)) if RESTORE_DETAIL else None
        done = [
            (f.tag, propagate(earlier, later, forward[j], backward[j], (j + 1) / n, energies=energies))
            for j, f in enumerate(frames[:-1])
        ]
        self.state = TemporalState(key.gray, later)
        return [*done, (key.tag, later)]


# ------------------------------------------------------------------------------------------ the pipeline


@dataclass(frozen=True)
class VideoSettings:
    """Everything that decides the output frames (the resume cache is only reused when these match)."""

    styles: tuple[str, ...]
    method: str = "fast"
    options: tuple[tuple[str, Any], ...] = ()
    consistency: float = CONSISTENCY
    feed: float = 0.0  # "prevWarped": fraction of the warped previous result mixed into the network's input
    max_size: int | None = None
    start: float | None = None
    end: float | None = None
    flow_size: int | None = FLOW_SIZE
    flow_preset: str = FLOW_PRESET
    temporal_weight: float | None = None  # method "optimize" only
    frame_iterations: int | None = None  # method "optimize" only
    keyframes: int = 1  # the network stylizes every keyframes-th frame; the others are propagated (:class:`Frames`)


_STOP = object()


class _Failed(Exception):
    """Carries an exception out of a pipeline thread."""


def frame_size(width: int, height: int, max_size: int | None) -> tuple[int, int]:
    """The (width, height) the pipeline works at for w×h frames: the longer side bounded by ``max_size``."""
    if max_size is None or max(width, height) <= max_size:
        return width, height
    s = max_size / max(width, height)
    return max(2, round(width * s)), max(2, round(height * s))


def _resize_frame(rgb: np.ndarray, max_size: int | None) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    size = frame_size(w, h, max_size)
    if size == (w, h):
        return rgb
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def check_frames(
    info: io.VideoInfo, *, max_size: int | None = None, start: float | None = None, end: float | None = None
) -> tuple[int, int]:
    """The working (width, height) of the video ``info`` (:func:`io.probe_video`); InputError (one line, naming the
    file) when ``max_size`` would take its shorter side under 16 px, or ``start``/``end`` leave no frame — all
    known before any frame is decoded."""
    name = str(info.path)
    if max_size is not None and max_size < MIN_SIDE:
        raise InputError(f"max size must be at least {MIN_SIDE} pixels, got {max_size}")
    w, h = frame_size(info.width, info.height, max_size)
    if min(w, h) < MIN_SIDE:
        need = -(-MIN_SIDE * max(info.width, info.height) // min(info.width, info.height))
        raise InputError(
            f"{name} ({info.width}×{info.height}) is too thin for --max-size {max_size}: it would be {w}×{h}, and "
            f"both sides need {MIN_SIDE} px (use --max-size {need} or more)"
        )
    if start is not None and info.duration and start >= info.duration:
        raise InputError(f"--start {start:g} is past the end of {name} ({info.duration:.3f} s long)")
    if end is not None and end <= 0.0:
        raise InputError(f"--end {end:g} leaves no frames of {name} (its first frame is at 0 s)")
    return w, h


def _cache_key(src: Path, settings: VideoSettings) -> str:
    st = src.stat()
    styles = []
    for s in settings.styles:
        p = Path(s)
        styles.append([s, p.stat().st_size, p.stat().st_mtime_ns] if p.is_file() else [s])
    payload = {
        "source": [str(src.resolve()), st.st_size, st.st_mtime_ns],
        "styles": styles,
        "settings": {k: v for k, v in settings.__dict__.items() if k != "styles"},
        "format": 1,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def encode_png(rgb: np.ndarray, name: str = "a frame") -> bytes:
    """A uint8 RGB frame as fast PNG bytes: the frame caches' format. zlib level 1 with run-length matching and the
    "up" filter only: 19 ms CPU for an 854×480 frame against 44 ms for the default filters and strategy, at the
    same size (545 kB against 541 kB; bench_video measured it)."""
    import cv2

    params = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
    params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]), params)
    if not ok:
        raise OutputError(f"cannot write {name}")
    return buf.tobytes()


class FrameCache:
    """Finished output frames (PNG) in a folder beside the output, valid for one source + settings key."""

    def __init__(self, output: Path, key: str, suffix: str = CACHE_SUFFIX) -> None:
        self.folder = output.with_name(f".{output.name}{suffix}")
        self.key = key

    def _frame(self, index: int) -> Path:
        return self.folder / f"{index:07d}.png"

    def existing(self) -> int:
        """How many leading frames the cache holds for this key (0 when it holds none or another key's)."""
        manifest = self.folder / "manifest.json"
        try:
            if json.loads(manifest.read_text()).get("key") != self.key:
                return -1
        except (OSError, ValueError):
            return 0
        n = 0
        while self._frame(n).is_file():
            n += 1
        return n

    def reset(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        try:
            self.folder.mkdir(parents=True)
            io.write_atomic(self.folder / "manifest.json", json.dumps({"key": self.key}).encode())
        except OSError as exc:
            raise OutputError(f"cannot create the frame cache {self.folder}: {exc.strerror or exc}") from None

    def load(self, index: int) -> np.ndarray | None:
        import cv2

        data = cv2.imread(str(self._frame(index)), cv2.IMREAD_COLOR)
        return None if data is None else np.ascontiguousarray(data[..., ::-1])

    def store(self, index: int, rgb: np.ndarray) -> None:
        self.store_png(index, encode_png(rgb, f"the frame cache {self.folder}"))

    def store_png(self, index: int, data: bytes) -> None:
        io.write_atomic(self._frame(index), data)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class _Item:
    index: int
    time: float
    rgb: np.ndarray  # uint8, at the working size
    gray: np.ndarray
    motion: Motion | None
    cached: np.ndarray | None = None


def _thread(target: Callable[[], None], errors: list[BaseException], stop: threading.Event) -> threading.Thread:
    def run() -> None:
        try:
            target()
        except BaseException as exc:  # handed to the main thread
            errors.append(exc)
            stop.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _put(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event) -> object:
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return _STOP


def stylize_video(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    styles: Sequence[Any],
    *,
    method: str = "fast",
    consistency: float = CONSISTENCY,
    keyframes: int | None = None,
    feed: float = 0.0,
    crf: int = 20,
    start: float | None = None,
    end: float | None = None,
    max_size: int | None = None,
    resume: bool = False,
    flow_size: int | None = FLOW_SIZE,
    flow_preset: str = FLOW_PRESET,
    temporal_weight: float | None = None,
    frame_iterations: int | None = None,
    progress: ProgressFn | None = None,
    renderer: Any = None,
    protect: Sequence[str | os.PathLike] = (),
    **options: Any,
) -> dict[str, Any]:
    """Stylize the video ``src`` into ``dst`` (.mp4 H.264, .webm VP9 or .gif), keeping timing, rotation and audio.

    ``consistency`` 0..1: weight of the flow-warped previous result outside occlusions (0 = frame by frame).
    ``keyframes`` N: the network stylizes every N-th frame (and the first, the last and the frames either side of
    a scene cut); the frames between are propagated from the two keyframes around them along the flow
    (:class:`Frames`). Default: :data:`KEYFRAMES` for the feed-forward methods with ``consistency`` > 0, else 1
    (every frame stylized; method ``optimize`` takes only 1).
    ``feed`` 0..1: also mix the warped previous result into the network's input ("prevWarped").
    ``start``/``end``: seconds; ``max_size``: longer side of the frames; ``crf``: quality (lower = better).
    ``resume``: continue from the finished frames cached beside ``dst`` by an interrupted run with the same
    settings. ``renderer``: a ready renderer (default: ``make_renderer(styles, method, **options)``).
    Method ``"optimize"`` (:class:`OptimizeFrames`): with consistency > 0 each frame starts from the warped previous
    result and adds the temporal loss, weighted ``temporal_weight`` × consistency × the trust mask, for
    ``frame_iterations`` iterations (defaults: ``brushwork.methods.optimize.TEMPORAL_WEIGHT``, ``FRAME_ITERATIONS``).
    Progress events have stage ``"video"``. Returns a summary (frames, size, fps, seconds, cuts, resumed).
    """
    _check_arguments(src, dst, styles, progress, renderer, protect)
    src, dst = Path(src), Path(dst)
    consistency = check_number(consistency, "consistency", low=0.0, high=1.0)
    feed = check_number(feed, "feed", low=0.0, high=1.0)
    crf = check_count(crf, "crf", low=0, high=63)
    start = None if start is None else check_number(start, "start", low=0.0)
    end = None if end is None else check_number(end, "end", low=0.0)
    max_size = None if max_size is None else check_count(max_size, "max size", low=MIN_SIDE, high=MAX_SIDE)
    flow_size = None if flow_size is None else check_count(flow_size, "flow size", low=FLOW_MIN, high=MAX_SIDE)
    if temporal_weight is not None:
        temporal_weight = check_number(temporal_weight, "temporal weight", low=0.0)
    if start is not None and end is not None and end <= start:
        raise InputError(f"--end ({end}) must be after --start ({start})")
    if max_size is not None and max_size < MIN_SIDE:
        raise InputError(f"max size must be at least {MIN_SIDE} pixels, got {max_size}")
    optimizing = method == "optimize"
    keyframes = check_keyframes(keyframes, method, consistency)
    if optimizing:
        from brushwork.methods import optimize as mo

        if feed > 0.0:
            raise InputError("feed does not apply to method optimize (it starts each frame from the warped result)")
        temporal_weight = mo.TEMPORAL_WEIGHT if temporal_weight is None else temporal_weight
        frame_iterations = mo.FRAME_ITERATIONS if frame_iterations is None else frame_iterations
        if not temporal_weight >= 0.0:
            raise InputError(f"temporal weight must be 0 or more, got {temporal_weight}")
        if isinstance(frame_iterations, bool) or not isinstance(frame_iterations, int) or frame_iterations < 1:
            raise InputError(f"frame iterations must be a positive whole number, got {frame_iterations!r}")
    elif temporal_weight is not None or frame_iterations is not None:
        raise InputError("temporal weight and frame iterations apply to method optimize only")
    info = io.probe_video(src, min_side=MIN_SIDE)
    check_frames(info, max_size=max_size, start=start, end=end)
    io.check_video_writable(dst, [src, *protect])
    settings = VideoSettings(
        tuple(str(s) for s in styles),
        method,
        tuple(sorted((k, repr(v)) for k, v in options.items())),
        consistency,
        feed,
        max_size,
        start,
        end,
        flow_size,
        flow_preset,
        temporal_weight,
        frame_iterations,
        keyframes,
    )
    cache = FrameCache(dst, _cache_key(src, settings))
    done = cache.existing() if resume else 0
    if done < 0:
        raise InputError(
            f"the frame cache {cache.folder} was made with other settings or another input; "
            "run without --resume to start over"
        )
    if done > 0 and keyframes > 1:  # continue after the last keyframe cached: the frames after it depend on the next
        done = (done - 1) // keyframes * keyframes + 1
    if renderer is None:
        renderer = make_renderer(styles, method, **options)
    check_renderer(renderer, method)
    frames_optimizer = OptimizeFrames(renderer, temporal_weight, frame_iterations) if optimizing else None
    # the cache folder is made once everything that can be checked before the first frame was; a run that fails
    # before it finishes a frame removes the folder it made (one holding an earlier run's frames, kept for
    # --resume, is never this run's)
    fresh_cache = done == 0
    if fresh_cache:
        cache.reset()

    first = start or 0.0
    span_end = min(end, info.duration) if end is not None and info.duration else (end or info.duration)
    total = info.frames if (start is None and end is None) else 0
    if not total and span_end:
        total = max(1, round((span_end - first) * info.fps))
    reporter = Reporter(progress, "video", total)

    stop = threading.Event()
    errors: list[BaseException] = []
    decoded: queue.Queue = queue.Queue(maxsize=4)
    finished: queue.Queue = queue.Queue(maxsize=4)
    flow = FlowEstimator(flow_size, flow_preset, forward=keyframes > 1)
    stats = FrameStats()

    def decode() -> None:
        prev_gray = None
        for frame in io.read_video(src, start=start, end=end):
            if stop.is_set():
                return
            rgb = _resize_frame(frame.rgb, max_size)
            g = gray(rgb)
            motion = None
            cached = cache.load(frame.index) if frame.index < done else None
            # frames restored from the cache need no flow, except the one after the last of them
            if prev_gray is not None and cached is None:
                motion = flow.motion(prev_gray, g)
            if not _put(decoded, _Item(frame.index, frame.time, rgb, g, motion, cached), stop):
                return
            prev_gray = g
        _put(decoded, _STOP, stop)

    try:
        writer = io.VideoWriter(
            dst,
            fps=info.fps,
            crf=crf,
            rotation=info.rotation,
            audio_from=src,
            audio_start=first,
            audio_end=end,
            protect=[src, *protect],
        )
    except Exception:
        if fresh_cache:
            cache.remove()
        raise
    stored = 0  # frames this run finished into the cache

    def encode() -> None:
        nonlocal stored
        while True:
            item = _get(finished, stop)
            if item is _STOP:
                return
            index, t, out, fresh = item  # type: ignore[misc]
            writer.write(out, t - first)
            if fresh:
                cache.store(index, out)
                stored += 1

    t0 = time.perf_counter()
    threads = [_thread(decode, errors, stop), _thread(encode, errors, stop)]
    count = 0
    shape: tuple[int, ...] = ()
    pipeline = Frames(renderer, consistency, keyframes, feed, stats, frames_optimizer)

    def emit(item: _Item, out: np.ndarray, fresh: bool) -> bool:
        nonlocal count, shape
        if not _put(finished, (item.index, item.time, out, fresh), stop):
            return False
        count += 1
        shape = out.shape
        reporter.step(count)
        return True

    try:
        while True:
            item = _get(decoded, stop)
            if item is _STOP:
                if not stop.is_set():  # the input ended (not an error elsewhere): its last frames
                    all(emit(i, out, True) for i, out in pipeline.finish())
                break
            assert isinstance(item, _Item)
            if item.cached is not None and item.cached.shape == item.rgb.shape:
                pipeline.restore(item.gray, item.cached)
                ready = [(item, item.cached)]
                fresh = False
            else:
                ready = pipeline.push(item.index, item.rgb, item.gray, item.motion, item)
                fresh = True
            if not all(emit(i, out, fresh) for i, out in ready):
                break
        _put(finished, _STOP, stop)
        for t in threads:
            while t.is_alive():
                t.join(0.1)
        if errors:
            raise errors[0]
        if count == 0:
            raise InputError(f"cannot read {src}: no frames between --start and --end")
        writer.close()
    except BaseException as exc:
        stop.set()
        for t in threads:
            t.join(5)
        writer.abort()
        if fresh_cache and stored == 0 and isinstance(exc, Exception) and not any(t.is_alive() for t in threads):
            cache.remove()  # no frame finished: nothing to resume from
        raise
    cache.remove()
    h, w = shape[:2] if shape else (0, 0)
    seconds = time.perf_counter() - t0
    return {
        "input": str(src),
        "output": str(dst),
        "frames": count,
        "resumed_frames": min(done, count),
        "width": w,
        "height": h,
        "fps": round(info.fps, 3),
        "audio": info.audio,
        "rotation": info.rotation,
        "scene_cuts": stats.cuts,
        "keyframes": keyframes,
        "stylized_frames": pipeline.rendered,
        "seconds": round(seconds, 3),
        "frames_per_second": round((count - min(done, count)) / seconds, 3) if seconds > 0 else 0.0,
    }


# --------------------------------------------------------------------------------------------- metrics


def _frames_at(path: str | os.PathLike, size: tuple[int, int] | None, max_size: int | None) -> Iterator[np.ndarray]:
    import cv2

    for frame in io.read_video(path):
        rgb = frame.rgb
        if size is not None and (rgb.shape[1], rgb.shape[0]) != size:
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        elif size is None:
            rgb = _resize_frame(rgb, max_size)
        yield rgb


def _low_luma(rgb: np.ndarray) -> np.ndarray:
    import cv2

    g = gray(rgb).astype(np.float32) / 255.0
    return cv2.GaussianBlur(g, (0, 0), 4.0)


def laplacian_detail(rgb: np.ndarray) -> float:
    """Fine detail: mean absolute Laplacian of the grey image (0..1 scale)."""
    import cv2

    g = gray(rgb).astype(np.float32) / 255.0
    return float(np.abs(cv2.Laplacian(g, cv2.CV_32F)).mean())


def temporal_metrics(
    original: Iterator[np.ndarray] | Sequence[np.ndarray],
    stylized: Iterator[np.ndarray] | Sequence[np.ndarray],
    *,
    flow_preset: str = "medium",
) -> dict[str, Any]:
    """Warping error, flicker and detail of ``stylized`` frames (uint8 H×W×3) against the ``original`` frames
    (same size and count) whose flow defines the motion (DIS at full size, a stronger setting than the pipeline's).

    warping_error: mean over frame pairs of Σ M‖S_t − W(S_{t−1})‖² / Σ M (RGB in 0..1, M = non-occluded pixels of
    the original's flow; Lai et al. 2018). flicker: mean absolute change of the low-frequency luminance (Gaussian
    σ = 4 px, grey levels 0..255) along the motion in the stylized video minus the same in the original — global
    brightness pulsing that the original does not have. detail: mean absolute Laplacian of the stylized frames.
    """
    flow = FlowEstimator(None, flow_preset)
    per_frame: list[float] = []
    flicker: list[float] = []
    detail: list[float] = []
    prev_o = prev_s = None
    n = 0
    for o, s in zip(original, stylized, strict=False):
        n += 1
        if o.shape != s.shape:
            raise InputError(f"frame {n}: sizes differ ({o.shape[1]}×{o.shape[0]} vs {s.shape[1]}×{s.shape[0]})")
        detail.append(laplacian_detail(s))
        if prev_o is not None:
            motion = flow.motion(gray(prev_o), gray(o))
            m = motion.reliable
            total = m.sum()
            if total > 0 and not motion.cut:
                ws = warp(prev_s, motion).astype(np.float32) / 255.0
                diff = ((s.astype(np.float32) / 255.0 - ws) ** 2).sum(-1)
                per_frame.append(float((diff * m).sum() / total))
                dl_s = _low_luma(s) - warp(_low_luma(prev_s), motion)
                dl_o = _low_luma(o) - warp(_low_luma(prev_o), motion)
                flicker.append(float((np.abs(dl_s) * m).sum() / total - (np.abs(dl_o) * m).sum() / total) * 255.0)
        prev_o, prev_s = o, s
    if n < 2:
        raise InputError("need at least two frames to measure temporal consistency")
    return {
        "frames": n,
        "warping_error": float(np.mean(per_frame)) if per_frame else 0.0,
        "warping_error_per_frame": per_frame,
        "flicker": float(np.mean(flicker)) if flicker else 0.0,
        "detail": float(np.mean(detail)),
    }


def _style_coder() -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray, np.ndarray], float]]:
    try:
        from brushwork.evaluate import code_distance, style_code

        return (lambda rgb: style_code(rgb)), code_distance
    except ImportError:
        from brushwork.methods.fast import get_stylizer

        stylizer = get_stylizer("cpu")

        def rms(a: np.ndarray, b: np.ndarray) -> float:
            return float(np.sqrt(((np.asarray(a) - np.asarray(b)) ** 2).mean()))

        return (lambda rgb: np.asarray(stylizer.style_code(rgb), np.float64)), rms


def _same_shape(a: io.VideoInfo, b: io.VideoInfo) -> bool:
    """Whether two videos' frames have the same aspect ratio, to the pixel of the smaller one (rounding, and the
    last row or column that H.264 drops from an odd size)."""
    if max(a.width, a.height) > max(b.width, b.height):
        a, b = b, a
    width = b.width * a.height / b.height  # the larger scaled to the smaller's height, then to its width
    height = b.height * a.width / b.width
    return abs(width - a.width) <= max(2.0, 0.01 * a.width) and abs(height - a.height) <= max(2.0, 0.01 * a.height)


def _count_error(
    original: str | os.PathLike, n_original: int, stylized: str | os.PathLike, n_stylized: int
) -> InputError:
    return InputError(
        f"{original} has {n_original} frames and {stylized} {n_stylized}: the stylized video must have the "
        "original's frames, as many (stylize the whole video, or cut the original the same way)"
    )


def evaluate_video(
    original: str | os.PathLike,
    stylized: str | os.PathLike,
    *,
    style: Any = None,
    max_size: int | None = 480,
    style_every: int = 1,
) -> dict[str, Any]:
    """Temporal metrics of a stylized video against its original (see :func:`temporal_metrics`), plus the style
    distance of each frame: to ``style`` (an image) when given, else to the stylized video's mean style code.

    The two videos must have the same number of frames and the same aspect ratio (the stylized one may be smaller:
    a run with a smaller max size); InputError, one line naming both, otherwise. Frames are compared at the
    stylized video's size, the longer side bounded by ``max_size`` (at least 16) but the shorter side kept at 16 px
    or more (a long thin video)."""
    if max_size is not None and max_size < MIN_SIDE:
        raise InputError(f"max size must be at least {MIN_SIDE} pixels, got {max_size}")
    info = io.probe_video(stylized, min_side=MIN_SIDE)
    info_o = io.probe_video(original, min_side=MIN_SIDE)
    if not _same_shape(info, info_o):
        raise InputError(
            f"{original} is {info_o.width}×{info_o.height} and {stylized} {info.width}×{info.height}: the stylized "
            "video must show the original's frames, in the same aspect ratio (it may be smaller)"
        )
    if info.frames and info_o.frames and info.frames != info_o.frames:
        raise _count_error(original, info_o.frames, stylized, info.frames)
    w, h = info.width, info.height
    if max_size is not None and max(w, h) > max_size:
        s = max(max_size / max(w, h), MIN_SIDE / min(w, h))
        if s < 1.0:
            w, h = max(MIN_SIDE, round(w * s)), max(MIN_SIDE, round(h * s))
    frames_s: list[np.ndarray] = []
    counts = [0, 0]

    def counted(it: Iterator[np.ndarray], k: int) -> Iterator[np.ndarray]:
        for f in it:
            counts[k] += 1
            yield f

    def keep(it: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for k, f in enumerate(it):
            if k % max(1, style_every) == 0:
                frames_s.append(f)
            yield f

    frames_o = counted(_frames_at(original, (w, h), None), 0)
    stylized_frames = counted(_frames_at(stylized, (w, h), None), 1)
    result = temporal_metrics(frames_o, keep(stylized_frames))
    # a header without a frame count (WebM, GIF): the rest of the longer video, counted
    counts[0] += sum(1 for _ in frames_o)
    counts[1] += sum(1 for _ in stylized_frames)
    if counts[0] != counts[1]:
        raise _count_error(original, counts[0], stylized, counts[1])
    code, distance = _style_coder()
    codes = [code(f) for f in frames_s]
    if style is not None:
        reference = code(io.load_image(style).rgb)
    else:
        reference = np.mean(codes, axis=0)
    per_frame = [distance(c, reference) for c in codes]
    result.update(
        {
            "style_distance": float(np.mean(per_frame)),
            "style_distance_per_frame": per_frame,
            "style_reference": "style image" if style is not None else "mean code of the stylized video",
            "width": w,
            "height": h,
        }
    )
    return result
