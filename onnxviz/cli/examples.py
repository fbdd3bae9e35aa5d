"""Two examples per subcommand, shown at the end of its ``--help``."""

from __future__ import annotations

import argparse

EXAMPLES = {
    "inspect": ["onnxviz inspect model.onnx",
                "onnxviz inspect model.onnx --json > model.json"],
    "predict": ["onnxviz predict model.onnx skimage:chelsea --top 3",
                "onnxviz predict model.onnx photos/ --json"],
    "explain": ["onnxviz explain model.onnx cat.jpg -m gradcam --out maps/",
                "onnxviz explain model.onnx photos/ -m all --json > maps.jsonl"],
    "activations": ["onnxviz activations model.onnx cat.jpg --layer conv1 --out acts/",
                    "onnxviz activations model.onnx cat.jpg --layer conv1 --channels 0,1,2"],
    "filters": ["onnxviz filters model.onnx --layer conv2 --channels 0,1,2,3 --out filters/",
                "onnxviz filters model.onnx --layer conv2 --steps 60 --blur 1"],
    "dream": ["onnxviz dream model.onnx cat.jpg --layer conv3 --out dream/",
              "onnxviz dream model.onnx cat.jpg --layer conv3 --octaves 4 --steps 20"],
    "report": ["onnxviz report model.onnx photos/ --out report/",
               "onnxviz report model.onnx cat.jpg -m gradcam,lime,occlusion --target 281"],
    "bench": ["onnxviz bench model.onnx --quick",
              "onnxviz bench model.onnx -m gradcam,occlusion --images 8 --json"],
    "serve": ["onnxviz serve model.onnx --port 8080 --method gradcam",
              "onnxviz serve a.onnx b.onnx --host 0.0.0.0 --token-file token.txt"],
    "evaluate": ["onnxviz evaluate model.onnx photos/ -m gradcam,saliency --out eval/",
                 "onnxviz evaluate model.onnx photos/ -m all --masks masks/"],
    "snapshot": ["onnxviz snapshot model.onnx photos/ -m gradcam,occlusion --out baseline/",
                 "onnxviz snapshot model.onnx photos/ -m all --out baseline/ --json"],
    "check": ["onnxviz check model-v2.onnx photos/ --baseline baseline/",
              "onnxviz check model-int8.onnx photos/ --baseline baseline/ --config gate.toml"],
    "demo": ["onnxviz demo",
             "onnxviz demo --image photo.jpg -m gradcam,lime --out demo/"],
}


def add_examples(subparsers_action) -> None:
    """Append the examples of :data:`EXAMPLES` to each subcommand's help (unless its own epilog
    already has examples)."""
    for name, parser in subparsers_action.choices.items():
        lines = EXAMPLES.get(name)
        if lines and "example" not in (parser.epilog or "").lower():
            text = "examples:\n" + "\n".join(f"  {line}" for line in lines)
            parser.epilog = f"{parser.epilog}\n\n{text}" if parser.epilog else text
            parser.formatter_class = argparse.RawDescriptionHelpFormatter
