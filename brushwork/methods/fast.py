"""The fast path: one forward pass per image through the ported Magenta networks.

- Built-in styles (``builtin:N``, N in 0..25) use Dumoulin et al.'s 26-style network; a blend of built-in
  styles is a weight vector over its 26 rows.
- Any picture as a style uses Ghiasi et al.'s predictor (style image → 100-d code) and transformer; a blend of
  pictures is a weighted mean of their codes, and ``strength`` moves from the photo's own code to the target's.

Both transformers are fully convolutional: the photo is reflect-padded to a multiple of 4, rendered at its own
resolution (bounded by ``max_size``) and cropped back, so large photos stay sharp. ``stroke_scale`` renders at
``1/stroke_scale`` of the resolution and, for larger strokes, renders once more at full resolution on the
upscaled result so that edges stay crisp instead of blurred.

Runtimes: on the CPU the networks run in onnxruntime from an ONNX export of the same PyTorch modules (exported
once and cached by the store), because ``import torch`` alone takes about 1 s, longer than a whole
stylization. On CUDA or MPS they run in PyTorch. Arrays here are ``H×W×3`` float32 RGB in 0..1.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from brushwork import io, store, tiling
from brushwork.api import NUM_BUILTIN, normalize_weights, parse_style, render_stroke_scaled
from brushwork.device import resolve_device
from brushwork.errors import BrushworkError, InputError, ModelUnavailable
from brushwork.options import FastOptions

if TYPE_CHECKING:
    import torch

Source = str | os.PathLike | Image.Image | np.ndarray
StyleRef = Source | int  # an image, or the index of a built-in style

STYLE_SIZE = 256  # the predictor's reference input: shorter side resized to 256, centre crop
MIN_SIDE = 16
MIN_STROKE, MAX_STROKE = 0.25, 4.0
_CPU = ["CPUExecutionProvider"]

# ONNX export specs: example input shapes and dynamic axes (batch 1; images of any size)
_EXPORTS: dict[str, tuple[dict[str, tuple[int, ...]], dict[str, dict[int, str]]]] = {
    "ghiasi-predictor": ({"image": (1, 3, STYLE_SIZE, STYLE_SIZE)}, {"image": {0: "n"}, "output": {0: "n"}}),
    "ghiasi-transformer": (
        {"image": (1, 3, 64, 64), "style": (1, 100)},
        {"image": {2: "h", 3: "w"}, "output": {2: "h", 3: "w"}},
    ),
    "dumoulin-26": (
        {"image": (1, 3, 64, 64), "weights": (1, NUM_BUILTIN)},
        {"image": {2: "h", 3: "w"}, "output": {2: "h", 3: "w"}},
    ),
}


def register_export(name: str, inputs: dict[str, tuple[int, ...]], dynamic: dict[str, dict[int, str]]) -> None:
    """Let the runtimes below run store network ``name`` (or ``name/part``): its ONNX export's example input
    shapes and dynamic axes (other methods' networks, e.g. MicroAST's, run through the same runtimes)."""
    _EXPORTS[name] = (inputs, dynamic)


def session_threads() -> int:
    """onnxruntime's intra-op threads: ``$BRUSHWORK_THREADS`` (set by cluster workers to the CPUs Ray gave them,
    so that workers sharing a machine do not oversubscribe it), or 0 = onnxruntime's default (every core)."""
    try:
        return max(0, int(os.environ.get("BRUSHWORK_THREADS", "0")))
    except ValueError:
        return 0


class _OrtRuntime:
    """Runs the store's networks in onnxruntime (CPU) from their cached ONNX exports."""

    name = "onnxruntime"

    def __init__(self) -> None:
        self._sessions: dict[str, Any] = {}

    def run(self, net: str, *arrays: np.ndarray) -> np.ndarray:
        session = self._sessions.get(net)
        if session is None:
            with store.runtime_import():
                import onnxruntime as ort

            options = ort.SessionOptions()
            options.log_severity_level = 3
            options.intra_op_num_threads = session_threads()
            path = store.onnx_path(net)
            try:
                session = ort.InferenceSession(str(_ort_variant(store.export_onnx(net, *_EXPORTS[net]))), options, _CPU)
            except Exception as exc:  # onnxruntime's errors for a damaged file (InvalidProtobuf, Fail, ...)
                if isinstance(exc, BrushworkError) or not path.is_file():
                    raise
                path.unlink()  # a damaged cached export: export it again, once
                _ort_variant_path(path).unlink(missing_ok=True)
                try:
                    session = ort.InferenceSession(
                        str(_ort_variant(store.export_onnx(net, *_EXPORTS[net]))), options, _CPU
                    )
                except Exception:
                    raise ModelUnavailable(f"cannot load {path}: {' '.join(str(exc).split())[:200]}") from None
            self._sessions[net] = session
        names = [i.name for i in session.get_inputs()]
        return session.run(None, dict(zip(names, arrays, strict=True)))[0]


class _OpenVinoRuntime:
    """Runs the store's networks with OpenVINO (CPU), compiled for each input shape.

    Compiling takes about 0.4 s per new shape and then runs about 20 % faster than onnxruntime here, so it is the
    runtime for repeated work on same-size images (folders, video frames), not for a single picture.
    """

    name = "openvino"
    MAX_COMPILED = 8

    def __init__(self) -> None:
        with store.runtime_import():
            import openvino

        self._core = openvino.Core()
        self._compiled: dict[tuple, tuple[Any, list[str]]] = {}
        self._lock = threading.Lock()

    def run(self, net: str, *arrays: np.ndarray) -> np.ndarray:
        with self._lock:  # one infer request per compiled shape: callers in several threads take turns
            return self._run(net, *arrays)

    def _run(self, net: str, *arrays: np.ndarray) -> np.ndarray:
        key = (net, *(a.shape for a in arrays))
        entry = self._compiled.get(key)
        if entry is None:
            model = for_openvino(self._core.read_model(str(store.export_onnx(net, *_EXPORTS[net]))))
            names = [i.get_any_name() for i in model.inputs]
            model.reshape({n: list(a.shape) for n, a in zip(names, arrays, strict=True)})
            compiled = self._core.compile_model(
                model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
            )
            if len(self._compiled) >= self.MAX_COMPILED:
                self._compiled.pop(next(iter(self._compiled)))
            entry = self._compiled[key] = (compiled.create_infer_request(), names)
        request, names = entry
        result = request.infer(dict(zip(names, (np.ascontiguousarray(a) for a in arrays), strict=True)))
        return np.array(next(iter(result.values())))  # a copy: the request reuses its output buffer


RUNTIMES = ("auto", "onnxruntime", "openvino", "torch")


class _AutoRuntime:
    """The CPU's default: onnxruntime for a network and input shape seen once, OpenVINO from its second run.

    Measured here at 1024×768 (bench/bench_fast.py): OpenVINO runs about 20 % faster than onnxruntime but
    compiles each new shape for about 0.4 s, so a single picture is fastest in onnxruntime and any repeated
    size (a loop, a folder, video frames) pays the compilation back within a few images.
    """

    name = "auto"

    def __init__(self) -> None:
        self._ort = _OrtRuntime()
        self._ov: _OpenVinoRuntime | None = None
        self._seen: set[tuple] = set()
        self._lock = threading.Lock()

    def run(self, net: str, *arrays: np.ndarray) -> np.ndarray:
        key = (net, *(a.shape for a in arrays))
        with self._lock:
            first = key not in self._seen
            self._seen.add(key)
            if not first and self._ov is None:
                self._ov = _OpenVinoRuntime()
        return self._ort.run(net, *arrays) if first else self._ov.run(net, *arrays)


def openvino_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


class _TorchRuntime:
    """Runs the store's networks in PyTorch on ``device``."""

    name = "torch"

    def __init__(self, device: str) -> None:
        self.device = device
        self._nets: dict[str, torch.nn.Module] = {}

    def run(self, net: str, *arrays: np.ndarray) -> np.ndarray:
        import torch

        module = self._nets.get(net)
        if module is None:
            module = self._nets[net] = store.load_net(net, self.device)
        with torch.inference_mode():
            out = module(*(torch.from_numpy(np.ascontiguousarray(a)).to(self.device) for a in arrays))
        return out.float().cpu().numpy()


Arrays = list[np.ndarray]


class _Segments:
    """Runs parts of the fast networks (:class:`brushwork.nets.blocks.Segment`, for :mod:`brushwork.tiling`):
    in onnxruntime from cached ONNX exports on the CPU (no torch import once exported), else in PyTorch."""

    KEEP = 1  # each pass bakes its own affine maps into its session: a session is not reused by the next pass

    def __init__(self, runtime: str, device: str) -> None:
        self.torch = runtime == "torch"
        self.device = device
        self._runs: dict[tuple, Any] = {}

    def __call__(
        self,
        name: str,
        start: int,
        stop: int,
        inputs: list[np.ndarray],
        affines: list[np.ndarray],
        box: tuple[int, int, int, int] | None = None,
        half: Sequence[bool] = (),
        maps: bool = True,
    ) -> list[np.ndarray]:
        """The segment's outputs; with ``box`` (y0, y1, x0, x1 in the last output's pixels) more: the last
        output's per-channel sum and sum of squares over the box (float64), computed inside the graph (from the
        float32 values), then for each output flagged in ``half`` a number at least ``tiling.F16_MAX`` where it
        overflows float16 (its largest absolute value, or infinity; below it otherwise). Inputs may be
        float16 (states kept so); flagged outputs come back float16 (converted inside the graph, much faster
        than numpy's conversion). ``maps=False`` (with a box): only the sum and the sum of squares, for a pass that
        keeps no state (the outputs are not copied out of the runtime)."""
        half = tuple(bool(h) for h in half)
        key: tuple = (name, start, stop, tuple(a.dtype.char for a in inputs), half)
        if not self.torch:  # the affine maps are baked into the session as constants (see _ort)
            key += (b"".join(a.tobytes() for a in affines),)
        run = self._runs.pop(key, None)
        if run is None:
            if self.torch:
                run = self._torch(name, start, stop, len(inputs), half)
            else:
                run = self._ort(name, start, stop, inputs, affines, half)
            while len(self._runs) >= self.KEEP:  # each session holds memory of its own: keep the recent few
                self._runs.pop(next(iter(self._runs)))
        self._runs[key] = run  # most recently used last
        return run(inputs, affines, box, maps)

    def native(
        self,
        name: str,
        start: int,
        stop: int,
        inputs: list[np.ndarray],
        affine: list[np.ndarray],
        norms: Sequence[tuple[np.ndarray, np.ndarray]],
    ) -> list[np.ndarray]:
        """Steps ``start … stop − 1`` over whole maps in one run (:class:`brushwork.nets.blocks.NativeSpan`): step
        ``start`` applies ``affine`` (scale, shift), the later ones real instance norms with ``norms``' (gamma, beta).
        Returns the state after step ``stop − 1``, then its last map's per-channel sum and sum of squares (float64)."""
        from brushwork.tiling import EPS

        params = [*affine, *(np.asarray(a, np.float32) for pair in norms for a in pair)]
        if self.torch:
            import torch

            from brushwork.nets.blocks import NativeSpan

            module = NativeSpan(store.load_net(name, self.device), start, stop, len(inputs), EPS)
            with torch.inference_mode():
                outs = module(*(torch.from_numpy(a).to(self.device).float() for a in (*inputs, *params)))
                last = outs[-1][0].double()
                sums = [last.sum((1, 2)).cpu().numpy(), last.square().sum((1, 2)).cpu().numpy()]
                return [o.float().cpu().numpy() for o in outs] + sums
        from brushwork.tiling import STAGED

        session, feeds = self._native_session(name, start, stop, inputs, params)
        # the outputs are written into arrays of ours: arrays onnxruntime returns keep its arena's block (the
        # run's whole working memory) mapped for as long as they live
        _, h, w = inputs[0].shape[1:]
        s = STAGED[name].steps[start - 1].outputs[0][1] if start else 1
        binding = session.io_binding()
        for feed, a in zip(feeds, inputs, strict=True):
            binding.bind_cpu_input(feed, np.ascontiguousarray(a))
        result = []
        for out, (c, stride) in zip(session.get_outputs(), STAGED[name].steps[stop - 1].outputs, strict=False):
            a = np.empty((1, c, h * s // stride, w * s // stride), np.float32)
            binding.bind_output(out.name, "cpu", 0, np.float32, list(a.shape), a.ctypes.data)
            result.append(a)
        for out in session.get_outputs()[len(result) :]:
            binding.bind_output(out.name, "cpu")
        session.run_with_iobinding(binding)
        return [*result, *(r.astype(np.float64) for r in binding.copy_outputs_to_cpu()[len(result) :])]

    def _native_session(
        self, name: str, start: int, stop: int, inputs: list[np.ndarray], params: list[np.ndarray]
    ) -> tuple[Any, list[str]]:
        import onnx
        import onnxruntime as ort
        from onnx import numpy_helper

        from brushwork.tiling import EPS, STAGED

        net = STAGED[name]
        strides = [1] if start == 0 else [s for _, s in net.steps[start - 1].outputs]
        feeds = [f"s{i}" for i in range(len(inputs))]
        constants = [f"p{i}" for i in range(len(params))]
        outs = [f"o{i}" for i in range(len(net.steps[stop - 1].outputs))]
        shapes = {n: (1, a.shape[1], 64 // st, 64 // st) for n, a, st in zip(feeds, inputs, strides, strict=True)}
        shapes |= {n: a.shape for n, a in zip(constants, params, strict=True)}
        dynamic = {n: {2: f"h{n}", 3: f"w{n}"} for n in [*feeds, *outs]}

        def module(full: Any) -> Any:
            from brushwork.nets.blocks import NativeSpan  # torch: only to export

            return NativeSpan(full, start, stop, len(inputs), EPS)

        path = store.export_onnx(name, shapes, dynamic, module=module, tag=f"-native{start}-{stop}", outputs=outs)
        model = onnx.load(str(path))
        graph = model.graph
        _bake(graph, dict(zip(constants, params, strict=True)))  # this rendering's maps and norms: constants
        make, value = onnx.helper.make_node, onnx.helper.make_tensor_value_info
        graph.initializer.append(numpy_helper.from_array(np.array([0, 2, 3], np.int64), "sum_axes"))
        graph.node.append(make("ReduceSum", [outs[-1], "sum_axes"], ["sum"], keepdims=0))
        graph.node.append(make("ReduceSumSquare", [outs[-1]], ["sumsq"], axes=[0, 2, 3], keepdims=0))
        graph.output.extend(value(n, onnx.TensorProto.FLOAT, [None]) for n in ("sum", "sumsq"))
        options = _session_options(shared=False)  # its own arena, gone with the session: the shared one's
        # growth stays that of the tiles (extended by the run's sizes, it kept the later passes' peaks higher)
        return ort.InferenceSession(for_onnxruntime(model).SerializeToString(), options, _CPU), feeds

    def release(self) -> None:
        """Drop the sessions at the end of a tiled rendering, and hand the shared arena's free memory back."""
        self._runs.clear()
        self.shrink()

    def shrink(self) -> None:
        """Hand the memory the tile sessions' shared arena holds but does not use back to the system (see
        :func:`_shared_arena`): :func:`brushwork.tiling.run_staged` calls it where the next pass's tiles have other
        shapes (what the arena kept would not be reused and would add to them) and :meth:`release` at the end."""
        if not self.torch:
            _shrink_arena()

    def _torch(self, name: str, start: int, stop: int, n: int, half: tuple[bool, ...]) -> Any:
        import torch

        from brushwork.nets.blocks import Segment

        module = Segment(store.load_net(name, self.device), start, stop, n)

        def run(inputs: list[np.ndarray], affines: list[np.ndarray], box: Any, maps: bool = True) -> list[np.ndarray]:
            with torch.inference_mode():
                args = [torch.from_numpy(a).to(self.device).float() for a in (*inputs, *affines)]
                outs = module(*args)
                moments: list[np.ndarray] = []
                if box is not None:
                    y0, y1, x0, x1 = box
                    centre = outs[-1][0, :, y0:y1, x0:x1].double()
                    moments = [centre.sum((1, 2)).cpu().numpy(), centre.square().sum((1, 2)).cpu().numpy()]
                    if not maps:  # the moments alone
                        return moments
                kinds = [*half, *[False] * len(outs)]
                result = [(o.half() if h else o.float()).cpu().numpy() for o, h in zip(outs, kinds, strict=False)]
                if box is not None:
                    result += moments
                    result += [o.abs().max().float().cpu().numpy() for o, h in zip(outs, half, strict=False) if h]
                return result

        return run

    def _ort(self, name: str, start: int, stop: int, inputs: Arrays, affines: Arrays, half: tuple[bool, ...]) -> Any:
        import onnx
        import onnxruntime as ort
        from onnx import numpy_helper

        from brushwork.tiling import STAGED

        net = STAGED[name]
        strides = [1] if start == 0 else [s for _, s in net.steps[start - 1].outputs]
        names = [f"s{i}" for i in range(len(inputs))] + [f"a{i}" for i in range(len(affines))]
        outs = [f"o{i}" for i in range(len(net.steps[stop - 1].outputs))]
        shapes = {n: (1, a.shape[1], 64 // st, 64 // st) for n, a, st in zip(names, inputs, strides, strict=False)}
        shapes |= {n: a.shape for n, a in zip(names[len(inputs) :], affines, strict=True)}
        dynamic = {n: {2: f"h{n}", 3: f"w{n}"} for n in [*names[: len(inputs)], *outs]}

        def module(full: Any) -> Any:
            from brushwork.nets.blocks import Segment

            return Segment(full, start, stop, len(inputs))

        path = store.export_onnx(name, shapes, dynamic, module=module, tag=f"-steps{start}-{stop}", outputs=outs)
        options = _session_options()
        # the normalisations' affine maps (fixed for the whole pass) become constants of the graph, so that
        # onnxruntime folds them into the convolutions before them and fuses the ReLUs: about 2× faster where a
        # segment spans several steps (the full-resolution first steps especially)
        model = onnx.load(str(path))
        _bake(model.graph, dict(zip(names[len(inputs) :], affines, strict=True)))
        # and the moments of the last output over a box (the tile's centre), summed inside the graph (multithreaded):
        # over the whole output and over the four strips around the box, subtracted in float64 (run below). Slicing
        # the centre out instead copied most of every full-resolution tile (0.5 s of a 3840×2160 rendering)
        graph, value, make = model.graph, onnx.helper.make_tensor_value_info, onnx.helper.make_node
        strips = [f"strip{i}_{end}" for i in range(4) for end in ("start", "end")]
        graph.input.extend(value(n, onnx.TensorProto.INT64, [2]) for n in strips)
        graph.initializer.extend(
            numpy_helper.from_array(np.array(v, np.int64), n)
            for n, v in (("box_axes", [2, 3]), ("sum_axes", [0, 2, 3]))
        )
        parts = [outs[-1]]
        for i in range(4):
            graph.node.append(make("Slice", [outs[-1], *strips[2 * i : 2 * i + 2], "box_axes"], [f"strip{i}"]))
            parts.append(f"strip{i}")
        for part in parts:
            graph.node.append(make("ReduceSum", [part, "sum_axes"], [f"{part}_sum"], keepdims=0))
            graph.node.append(make("ReduceSumSquare", [part], [f"{part}_sumsq"], axes=[0, 2, 3], keepdims=0))
        graph.output.extend(
            value(f"{part}_{kind}", onnx.TensorProto.FLOAT, [None]) for kind in ("sum", "sumsq") for part in parts
        )
        # float16 states: converted to float32 on the way in, and outputs to float16 on the way out, in the graph
        feeds = names[: len(inputs)]
        for i, a in enumerate(inputs):
            if a.dtype == np.float16:
                entry = next(e for e in graph.input if e.name == feeds[i])
                feeds[i] = entry.name = f"{feeds[i]}_half"
                entry.type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
                graph.node.insert(0, make("Cast", [feeds[i]], [names[i]], to=onnx.TensorProto.FLOAT))
        for j, flag in enumerate(half[: len(outs)]):
            if flag:
                entry = next(e for e in graph.output if e.name == outs[j])
                entry.name = f"{outs[j]}_half"
                entry.type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
                graph.node.append(make("Cast", [outs[j]], [entry.name], to=onnx.TensorProto.FLOAT16))
        session = ort.InferenceSession(for_onnxruntime(model).SerializeToString(), options, _CPU)
        names_out = [o.name for o in session.get_outputs()]
        plain = names_out[: len(outs)]
        flagged = [j for j, flag in enumerate(half[: len(outs)]) if flag]

        def run(inputs: list[np.ndarray], affines: list[np.ndarray], box: Any, maps: bool = True) -> list[np.ndarray]:
            feed = dict(zip(feeds, inputs, strict=True))
            if box is None:  # no moments: empty strips
                return session.run(plain, feed | dict.fromkeys(strips, np.zeros(2, np.int64)))
            y0, y1, x0, x1 = box
            big = np.iinfo(np.int64).max
            corners = [(0, 0), (y0, big), (y1, 0), (big, big), (y0, 0), (y1, x0), (y0, x1), (y1, big)]
            feed |= {n: np.array(v, np.int64) for n, v in zip(strips, corners, strict=True)}
            if not maps:  # the moments alone: the outputs stay in the runtime
                result = [None] * len(outs) + session.run(names_out[len(outs) : len(outs) + 10], feed)
            else:
                result = session.run(None, feed)
            sums = [r.astype(np.float64) for r in result[len(outs) : len(outs) + 10]]
            first = sums[0] - sum(sums[1:5])  # the box: the whole output less the four strips around it
            second = sums[5] - sum(sums[6:10])
            if not maps:
                return [first, second]
            # float16 outputs: an exponent of all ones is an overflow to infinity (or a NaN); about twice as fast
            # as the largest value reduced inside the graph
            over = [float("inf") if (result[j].view(np.uint16) & 0x7C00).max() == 0x7C00 else 0.0 for j in flagged]
            return [*result[: len(outs)], first, second, *(np.float32(v) for v in over)]

        return run


def _bake(graph: Any, constants: dict[str, np.ndarray]) -> None:
    """Turn the graph inputs named in ``constants`` into initializers with those values (onnxruntime then folds
    them into the operations that use them)."""
    from onnx import numpy_helper

    for graph_input in list(graph.input):
        if graph_input.name in constants:
            graph.input.remove(graph_input)
            graph.initializer.append(numpy_helper.from_array(constants[graph_input.name], graph_input.name))


def _ort_variant_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}-ort.onnx")


def _ort_variant(path: Path) -> Path:
    """The export at ``path`` rewritten by :func:`for_onnxruntime`, cached beside it (made once: it imports onnx)."""
    variant = _ort_variant_path(path)
    if not variant.is_file():
        import onnx

        io.write_atomic(variant, for_onnxruntime(onnx.load(str(path))).SerializeToString())
    return variant


OPENVINO_BLOCK = 8  # output channels per vector block of OpenVINO's AVX2 convolution kernels


def for_openvino(model: Any) -> Any:
    """``model`` (an OpenVINO model, changed in place and returned) with each convolution whose output channels
    are more than one block and not a whole number of blocks (the space-to-depth convolutions' 12) computed with
    zero filters up to the next multiple of :data:`OPENVINO_BLOCK`, then sliced back: the same numbers, and
    OpenVINO's kernels run a 5×5 convolution from 64 channels to 16 faster than to 12 (94 against 112 ms alone;
    MicroAST's whole network −5 to −7 %, the fast path's −3 to −5 %). For OpenVINO only: in onnxruntime it is slower."""
    from openvino import opset13, passes

    fold = passes.Manager()  # weights that the export builds in the graph (space-to-depth) become constants
    fold.register_pass(passes.ConstantFolding())
    fold.run_passes(model)
    for node in model.get_ordered_ops():
        if node.get_type_name() != "Convolution":
            continue
        weight = node.input_value(1).get_node()
        if weight.get_type_name() != "Constant":
            continue
        w = weight.get_data()
        out = w.shape[0]
        extra = -out % OPENVINO_BLOCK
        if out <= OPENVINO_BLOCK or not extra:
            continue
        padded = opset13.constant(np.concatenate([w, np.zeros((extra, *w.shape[1:]), w.dtype)]))
        attrs = node.get_attributes()
        conv = opset13.convolution(
            node.input_value(0),
            padded,
            attrs["strides"],
            attrs["pads_begin"],
            attrs["pads_end"],
            attrs["dilations"],
            attrs["auto_pad"],
        )
        conv.set_friendly_name(node.get_friendly_name())  # profiles keep naming the layer
        kept = opset13.slice(conv, np.array([0]), np.array([out]), np.array([1]), np.array([1]))
        for target in list(node.output(0).get_target_inputs()):
            target.replace_source_output(kept.output(0))
    model.validate_nodes_and_infer_types()
    return model


def for_onnxruntime(model: Any) -> Any:
    """``model`` (an ONNX ModelProto, changed in place and returned) with each ``DepthToSpace`` (the pixel shuffles
    of the sub-pixel upsampling and of the space-to-depth convolutions, brushwork.nets.blocks) as a transposed
    convolution with 0/1 weights, stride and kernel the block size, one group per output channel: the same
    numbers, and onnxruntime runs it about 7× faster (16 against 113 ms for 32×540×960, its DepthToSpace a
    generic 6-d transpose). For onnxruntime only: OpenVINO's DepthToSpace is the faster of the two there."""
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    shapes = onnx.shape_inference.infer_shapes(model, data_prop=True).graph  # data_prop: weights built in the graph
    channels = {}
    for info in [*shapes.value_info, *shapes.input]:
        dims = info.type.tensor_type.shape.dim
        if len(dims) == 4 and dims[1].dim_value:
            channels[info.name] = dims[1].dim_value
    for n, node in enumerate(graph.node):
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        c = channels.get(node.input[0]) if node.op_type == "DepthToSpace" else None
        if not c or attrs.get("mode", b"DCR") != b"CRD":
            continue
        b = int(attrs["blocksize"])
        weight = np.zeros((c, 1, b, b), np.float32)  # input channel o·b² + b·dy + dx → output o at (dy, dx)
        for ch in range(c):
            weight[ch, 0, (ch % (b * b)) // b, ch % b] = 1.0
        name = f"{node.output[0]}_shuffle_weight"
        graph.initializer.append(numpy_helper.from_array(weight, name))
        shuffle = onnx.helper.make_node(
            "ConvTranspose", [node.input[0], name], list(node.output), strides=[b] * 2, kernel_shape=[b] * 2
        )
        shuffle.attribute.append(onnx.helper.make_attribute("group", c // (b * b)))
        graph.node.remove(node)
        graph.node.insert(n, shuffle)
    return model


def _session_options(shared: bool = True) -> Any:
    """onnxruntime options of the tile sessions (``shared``: in the process's shared arena)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = session_threads()
    # onnxruntime's arena on: its buffers are reused from tile to tile; without it every run maps fresh memory,
    # and first touches of fresh pages cost more than the work on them here (measured in a VM: a quarter-
    # resolution pass 1.6-2× faster with the arena); one arena serves every pass (below)
    options.enable_cpu_mem_arena = True
    if shared and _shared_arena():  # one arena for every pass: its pages are reused by the next pass, not mapped again
        options.add_session_config_entry("session.use_env_allocators", "1")
    return options


_ARENA_LOCK = threading.Lock()
_ARENA: list[bool] = []  # [registered]: once per process


def _shared_arena() -> bool:
    """Register one onnxruntime arena for the process's tile sessions (once; False where onnxruntime cannot).

    A tiled rendering runs one session per pass (19 for ``dumoulin-26``), each with the pass's normalisation maps
    baked in. With an arena per session every pass mapped its working memory afresh, and on virtual machines the
    first touch of a fresh page costs more than the work done on it: measured at 3840×2160, a shared arena that
    the next pass reuses took the tiled rendering from 11.9 s to 10.3 s. The arena keeps what it grew to, so
    :func:`brushwork.tiling.run_staged` shrinks it (:func:`_shrink_arena`) where the tiles change shape."""
    with _ARENA_LOCK:
        if not _ARENA:
            import onnxruntime as ort

            try:
                info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
                ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, -1, -1, -1))
                _ARENA.append(True)
            except (AttributeError, RuntimeError):  # an onnxruntime build without shared allocators
                _ARENA.append(False)
        return _ARENA[0]


@lru_cache(maxsize=1)
def _shrinker() -> Any:
    """A one-node session on the shared arena, run with onnxruntime's arena shrinkage to free its unused chunks."""
    import onnx
    import onnxruntime as ort

    value = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["a"], ["b"])],
        "shrink",
        [value("a", onnx.TensorProto.FLOAT, [1])],
        [value("b", onnx.TensorProto.FLOAT, [1])],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry("session.use_env_allocators", "1")
    session = ort.InferenceSession(model.SerializeToString(), options, _CPU)
    run_options = ort.RunOptions()
    run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return lambda: session.run(None, {"a": np.zeros(1, np.float32)}, run_options)


def _shrink_arena() -> None:
    if _ARENA and _ARENA[0]:
        _shrinker()()


def make_runtime(runtime: str, device: str) -> _AutoRuntime | _OrtRuntime | _OpenVinoRuntime | _TorchRuntime:
    """The runtime named ``runtime`` for a resolved ``device`` (``auto``: PyTorch on CUDA/MPS; on the CPU
    onnxruntime, then OpenVINO once a shape repeats); one that cannot run there raises :class:`InputError`."""
    if runtime not in RUNTIMES:
        raise InputError(f"unknown runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
    if runtime in ("onnxruntime", "openvino") and device != "cpu":
        raise InputError(f"the {runtime} runtime runs on the CPU: use --device cpu or --runtime torch")
    if runtime == "openvino" and not openvino_available():
        raise InputError("the openvino runtime is not installed (pip install openvino)")
    if runtime == "auto":
        runtime = "torch" if device != "cpu" else "auto" if openvino_available() else "onnxruntime"
    if runtime == "auto":
        return _AutoRuntime()
    if runtime == "onnxruntime":
        return _OrtRuntime()
    return _OpenVinoRuntime() if runtime == "openvino" else _TorchRuntime(device)


def _nchw(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32)


class FastStylizer:
    """The fast path with its networks loaded; reuse one instance for many images (batches, video)."""

    def __init__(self, device: str = "auto", max_pixels: int | None = None, runtime: str = "auto") -> None:
        """``runtime``: ``auto`` (onnxruntime on the CPU, PyTorch on CUDA/MPS), ``onnxruntime``, ``openvino``
        (CPU; compiles per image size, faster for many same-size images) or ``torch``."""
        self.max_pixels = max_pixels  # refuse larger inputs (None: io's default, BRUSHWORK_MAX_PIXELS)
        self.device = resolve_device(device)
        self.runtime = make_runtime(runtime, self.device)
        self.segments = _Segments("torch" if runtime == "torch" or self.device != "cpu" else "onnxruntime", self.device)

    # -- style codes ------------------------------------------------------------------------------------

    def style_code(self, style: Source) -> np.ndarray:
        """The 100-d style code of a picture: its centred square, resized to 256×256."""
        rgb = io.in_memory(style, "the style", self.max_pixels).rgb
        h, w = rgb.shape[:2]
        if min(h, w) < MIN_SIDE:
            raise InputError(f"style image is too small ({w}×{h}): both sides need {MIN_SIDE} px")
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        crop = io.resize(rgb[top : top + side, left : left + side], (STYLE_SIZE, STYLE_SIZE))
        return self.runtime.run("ghiasi-predictor", _nchw(crop))[0]

    # -- rendering --------------------------------------------------------------------------------------

    def _forward(self, rgb: np.ndarray, target: tuple[str, np.ndarray]) -> np.ndarray:
        """One pass of the network chosen by ``target`` (``("code", 100-d)`` or ``("builtin", 26 weights)``)."""
        h, w = rgb.shape[:2]
        ph, pw = (-h) % 4, (-w) % 4
        x = np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="reflect") if ph or pw else rgb
        net = "ghiasi-transformer" if target[0] == "code" else "dumoulin-26"
        out = self.runtime.run(net, _nchw(x), target[1][None].astype(np.float32))
        return out[0].transpose(1, 2, 0)[:h, :w]

    def render(self, rgb: np.ndarray, target: tuple[str, np.ndarray], stroke_scale: float = 1.0) -> np.ndarray:
        """Render ``rgb`` (H×W×3) in the target style at its own size, strokes scaled by ``stroke_scale``."""
        if not MIN_STROKE <= stroke_scale <= MAX_STROKE:
            raise InputError(f"stroke scale must be between {MIN_STROKE} and {MAX_STROKE}, got {stroke_scale}")
        return render_stroke_scaled(lambda x, _: self._forward(x, target), rgb, stroke_scale)

    def target(
        self, styles: Sequence[StyleRef], style_weights: Sequence[float] | None = None
    ) -> tuple[str, np.ndarray]:
        """The rendering target of a style list: ``("builtin", 26 weights)`` or ``("code", 100-d code)``."""
        if not styles:
            raise InputError("give at least one style (an image or builtin:N)")
        parsed = [parse_style(s) for s in styles]
        weights = normalize_weights(style_weights, len(parsed))
        kinds = {isinstance(p, int) for p in parsed}
        if len(kinds) > 1:
            raise InputError("cannot blend builtin: styles with image styles; use one kind at a time")
        if kinds == {True}:
            table = np.zeros(NUM_BUILTIN, dtype=np.float32)
            for index, weight in zip(parsed, weights, strict=True):
                table[index] += weight
            return ("builtin", table)
        codes = np.stack([self.style_code(p) for p in parsed])
        return ("code", (weights[:, None] * codes).sum(0).astype(np.float32))


class Engine:
    """The contract's engine of ``method="fast"`` (see :mod:`brushwork.api`): style codes computed once."""

    native: frozenset[str] = frozenset()

    def __init__(self, styles: list[np.ndarray | int], options: FastOptions, progress: Any = None) -> None:
        self.stylizer = get_stylizer(options.device, options.runtime)
        self.target = self.stylizer.target(styles, options.style_weights)

    def render(self, rgb: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
        return self.stylizer.render(rgb, self.target)

    # -- tiled rendering (brushwork.tiling, called by brushwork.api for print-size photos) ----------------------

    UNTILED_BYTES_PER_PIXEL = 310  # measured peak of an untiled onnxruntime rendering, per output pixel
    TILE_ALIGN = 4

    def render_tiled(
        self, source: tiling.Source, masks: Any, sink: Any, tile: int | None, budget: int, fixed_bytes: int
    ) -> dict[str, int]:
        """Render ``source`` in tiles, exactly as :meth:`render`; ``sink(region, rgb h×w×3)`` gets the output."""
        target = self.target
        net = tiling.DUMOULIN if target[0] == "builtin" else tiling.GHIASI
        h, w = source.shape
        padded = tiling.Padded(source, (tiling.round_up(h, 4), tiling.round_up(w, 4)))
        arrays = store.load_arrays(net.name)
        params = tiling.norm_params(net.name, arrays, target[1])
        plan = tiling.plan(net, budget, tile, fixed_bytes)
        first = arrays[net.linear_first].astype(np.float32) if net.linear_first else None

        def crop(region: tuple[int, int, int, int], rgb: np.ndarray) -> None:
            y0, y1, x0, x1 = region
            if y0 >= h or x0 >= w:
                return
            sink((y0, min(y1, h), x0, min(x1, w)), rgb[:, : min(y1, h) - y0, : min(x1, w) - x0].transpose(1, 2, 0))

        return tiling.run_staged(net, self.stylizer.segments, padded, params, crop, plan, first)


@lru_cache(maxsize=4)
def get_stylizer(device: str = "auto", runtime: str = "auto") -> FastStylizer:
    """A shared :class:`FastStylizer` per device and runtime (networks load once per process)."""
    return FastStylizer(device, runtime=runtime)


# -- tensor helpers for the other methods (optimization init, latent space) ---------------------------------


def style_vector(style: Source, *, device: str = "cpu") -> torch.Tensor:
    """The 100-d style code of a picture, as a tensor ``(100,)``."""
    import torch

    return torch.from_numpy(get_stylizer(device).style_code(style).copy())


def predict_codes(images: torch.Tensor, device: str = "cpu") -> torch.Tensor:
    """Style codes of a batch ``N×3×H×W`` (RGB 0..1, used as given, e.g. 256×256 crops) → ``N×100``."""
    import torch

    runtime = get_stylizer(device).runtime
    arrays = images.detach().float().cpu().numpy()
    return torch.from_numpy(np.concatenate([runtime.run("ghiasi-predictor", a[None]) for a in arrays]))


def render(
    content: torch.Tensor, code: torch.Tensor, *, stroke_scale: float = 1.0, device: str = "cpu"
) -> torch.Tensor:
    """Render ``1×3×H×W`` content (0..1) with a style code ``(100,)`` or ``(1, 100)`` → ``1×3×H×W``."""
    import torch

    rgb = io.to_numpy(content)
    vector = code.detach().float().reshape(-1).cpu().numpy()
    out = get_stylizer(device).render(rgb, ("code", vector), stroke_scale)
    return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)[None])).to(content.device)


def fast_stylize_tensor(content: torch.Tensor, style: torch.Tensor, device: str = "cpu") -> torch.Tensor:
    """Fast stylization of tensors: ``1×3×H×W`` content and ``1×3×h×w`` style (0..1) → ``1×3×H×W``."""
    code = get_stylizer(device).style_code(io.to_numpy(style))
    import torch

    return render(content, torch.from_numpy(code.copy()), device=device)
