"""``onnxviz inspect MODEL``: what onnxviz sees in a model (input, preprocessing, labels, layers)."""

from __future__ import annotations

from ..results import table
from .common import add_common, add_model_args, load_model, print_json


_GRADIENT_MODES = {
    "exact": "exact gradients",
    "upcast": "gradients of a float32 upcast copy (mode upcast)",
    "ste": "the straight-through estimator through the quantizers (mode ste)",
    "ste-logit": "the straight-through estimator through the quantizers, of the logits before "
                 "their output quantizer (mode ste-logit)",
    "surrogate": "the float graph on dequantized weights (mode surrogate)",
}


def register(subparsers) -> None:
    p = subparsers.add_parser("inspect", help="show a model's input, preprocessing, labels, layers",
                              description="Show what onnxviz sees in an ONNX model.")
    add_model_args(p)
    add_common(p)
    p.set_defaults(func=run)


def describe(model) -> dict:
    """The inspect report as a JSON-ready dict."""
    i, pre = model.input, model.preprocessing
    return {
        "model": model.source,
        "producer": model.producer,
        "ir_version": int(model.proto.ir_version),
        "opset": model.opset,
        "input": {"name": i.name, "layout": i.layout, "size": list(i.size), "channels": i.channels,
                  "dtype": str(i.dtype), "dynamic_size": i.dynamic_size,
                  "flat_size": list(i.flat_size) if i.flat_size else None},
        "fixed_batch": model.fixed_batch,
        "precision": {"compute": model.precision.compute, "io": model.precision.io,
                      "quantization": model.precision.quantization,
                      "gradients": model.gradient_mode},
        "preprocessing": {"name": pre.name, "source": pre.source, "mean": list(pre.mean),
                          "std": list(pre.std), "scale": pre.scale,
                          "channel_order": pre.channel_order},
        "score_output": model.score_output,
        "prob_output": model.prob_output,
        "num_classes": model.num_classes,
        "regression": model.is_regression,
        "labels": {"count": len(model.labels) if model.labels else 0,
                   "source": model.labels_source,
                   "first": (model.labels or [])[:5]},
        "notes": model.notes,
        "layers": [{"name": lay.name, "tensor": lay.tensor, "op_type": lay.op_type,
                    "shape": [d if d is not None else "?" for d in lay.shape],
                    "grad_reachable": lay.grad_reachable}
                   for lay in model.layers(grad=True)],
    }


def run(args) -> int:
    model = load_model(args)
    info = describe(model)
    if args.json:
        print_json(info)
        return 0
    i, pre, lab = info["input"], info["preprocessing"], info["labels"]
    size = f"{i['size'][0]}x{i['size'][1]}" + (" (symbolic)" if i["dynamic_size"] else "")
    if i["flat_size"]:
        size += f" (a flattened {i['flat_size'][0]}x{i['flat_size'][1]} image)"
    out = [
        f"model:          {info['model']}",
        f"producer:       {info['producer']}",
        f"opset:          {info['opset']} (IR {info['ir_version']})",
        f"input:          {i['name']} {i['layout']} {size}, {i['channels']} channel(s)"
        + (", fixed batch 1" if info["fixed_batch"] else ""),
        f"precision:      {model.precision.describe()}; gradient methods use "
        f"{_GRADIENT_MODES[model.gradient_mode]}",
        f"preprocessing:  {model.preprocessing.describe()} (from {pre['source']})",
        f"score output:   {info['score_output']}"
        + (f" (logits; probabilities: {info['prob_output']})" if info["prob_output"] else "")
        + (" (regression)" if info["regression"] else f", {info['num_classes']} classes"),
        f"labels:         {lab['count']} from {lab['source']}" if lab["count"] else
        "labels:         none (classes are shown as 'class N')",
    ]
    out += [f"note:           {n}" for n in info["notes"]]
    rows = [[lay["name"], lay["op_type"], "x".join(map(str, lay["shape"])),
             {True: "yes", False: "no"}.get(lay["grad_reachable"], "?")]
            for lay in info["layers"]]
    out += ["", f"layers ({len(rows)} 4-D activations; gradients: whether gradient methods "
                "can reach the layer):",
            table(rows, ["name", "op", "shape", "gradients"])]
    print("\n".join(out))
    return 0
