"""A tiny ONNX injection classifier built in the test: logistic regression on the guard's
trigram features, trained by hand to recognise one made-up attack phrase that no pattern
rule knows, so a block proves the model (not the rules) decided."""

from __future__ import annotations

from pathlib import Path

from pilothouse.guard.classifier import trigram_features

PHRASE = "zorblax quantum unlock sequence"
DIM = 256


def build_model(path: Path, phrase: str = PHRASE, dim: int = DIM) -> Path:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    direction = np.asarray(trigram_features(phrase, dim), dtype=np.float32).reshape(dim, 1)
    weight = numpy_helper.from_array(direction * 20.0, name="W")
    bias = numpy_helper.from_array(np.asarray([-10.0], dtype=np.float32), name="b")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "W"], ["logit0"]),
            helper.make_node("Add", ["logit0", "b"], ["logit"]),
            helper.make_node("Sigmoid", ["logit"], ["probability"]),
        ],
        "injection-lr",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, dim])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, [1, 1])],
        [weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path
