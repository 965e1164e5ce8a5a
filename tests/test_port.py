"""The PyTorch ports agree with onnxruntime running the same graphs (QDQ removed), near 1e-5."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from brushwork import onnx_port, store
from brushwork.methods.fast import _EXPORTS


def _graph(name: str) -> onnx.ModelProto:
    model = onnx.load(str(store.fetch(name)))
    return model if name == "dumoulin-26" else onnx_port.strip_qdq(model)


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_strip_qdq_leaves_a_float_graph() -> None:
    ops = {n.op_type for n in _graph("ghiasi-transformer").graph.node}
    assert not ops & {"QuantizeLinear", "DequantizeLinear"}
    assert {"Conv", "Pad", "Resize", "Sigmoid"} <= ops


def test_predictor_matches_onnx(rng: np.random.Generator) -> None:
    x = rng.random((1, 256, 256, 3), dtype=np.float32)
    ref = _session(_graph("ghiasi-predictor")).run(None, {"style_image": x})[0].reshape(1, 100)
    net = store.load_net("ghiasi-predictor")
    with torch.no_grad():
        out = net(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    assert out.shape == (1, 100)
    assert np.abs(out - ref).max() < 5e-5
    assert np.abs(out - ref).mean() < 1e-5


def test_transformer_matches_onnx(rng: np.random.Generator) -> None:
    x = rng.random((1, 384, 384, 3), dtype=np.float32)
    code = rng.normal(0, 1, (1, 100)).astype(np.float32)
    feeds = {"content_image": x, "mobilenet_conv/Conv/BiasAdd": code.reshape(1, 1, 1, 100)}
    ref = _session(_graph("ghiasi-transformer")).run(None, feeds)[0]
    net = store.load_net("ghiasi-transformer")
    with torch.no_grad():
        out = net(torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(code)).permute(0, 2, 3, 1).numpy()
    assert np.abs(out - ref).max() < 5e-5
    assert np.abs(out - ref).mean() < 1e-5


def test_multistyle_matches_onnx_at_any_size(rng: np.random.Generator) -> None:
    x = rng.random((1, 3, 92, 132), dtype=np.float32)  # multiples of 4, not of 8
    w = np.zeros(26, np.float32)
    w[[3, 17]] = 0.5
    ref = _session(_graph("dumoulin-26")).run(None, {"image": x, "style_weights": w})[0]
    net = store.load_net("dumoulin-26")
    with torch.no_grad():
        out = net(torch.from_numpy(x), torch.from_numpy(w)[None]).numpy()
    assert out.shape == x.shape
    assert np.abs(out - ref).max() < 5e-5


def test_int8_graph_differs_by_its_own_rounding(rng: np.random.Generator) -> None:
    """Why we test against the float graph: the int8 graph itself is off by a few hundredths."""
    x = rng.random((1, 384, 384, 3), dtype=np.float32)
    style = rng.random((1, 256, 256, 3), dtype=np.float32)
    code = _session(_graph("ghiasi-predictor")).run(None, {"style_image": style})[0]
    feeds = {"content_image": x, "mobilenet_conv/Conv/BiasAdd": code}
    int8 = _session(onnx.load(str(store.fetch("ghiasi-transformer")))).run(None, feeds)[0]
    flt = _session(_graph("ghiasi-transformer")).run(None, feeds)[0]
    assert 0.005 < np.abs(int8 - flt).mean() < 0.1


@pytest.mark.parametrize("name", ["ghiasi-transformer", "dumoulin-26"])
def test_onnx_export_matches_pytorch(name: str, rng: np.random.Generator) -> None:
    """The onnxruntime fast path runs an export of the same modules: same numbers, any size."""
    path = store.export_onnx(name, *_EXPORTS[name])
    session = _session(onnx.load(str(path)))
    x = rng.random((1, 3, 60, 84), dtype=np.float32)
    cond = rng.random((1, 100 if name == "ghiasi-transformer" else 26), dtype=np.float32)
    ref = session.run(None, dict(zip([i.name for i in session.get_inputs()], [x, cond], strict=True)))[0]
    with torch.no_grad():
        out = store.load_net(name)(torch.from_numpy(x), torch.from_numpy(cond)).numpy()
    assert np.abs(out - ref).max() < 5e-5
