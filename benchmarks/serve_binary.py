"""The v2 ``infer`` answer as JSON vs as binary tensor data, through ``tritonclient.http``.

One client sends the same request again and again to ``onnxviz serve`` (EfficientNet-Lite0,
Grad-CAM, scikit-image's cat photo as a PNG file), asking for the 224 x 224 float heatmap, in
two forms taken in turn (so that drift on a shared machine hits both alike):

- **JSON**: the file as base64 text and the heatmap as a JSON list (``binary_data=False``);
- **binary**: the file's bytes and the heatmap's float32 bytes after the JSON header
  (tritonclient's default).

Printed per form: the request and answer bytes, the server process's CPU milliseconds per
request (other work on the machine moves it little), the client's wall milliseconds per request
(median), and the floor: ``ov.explain``'s CPU milliseconds per image in process. Run from the
repository root::

    python benchmarks/serve_binary.py            # about a minute on 2 cores
    python benchmarks/serve_binary.py --quick
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve import cpu_seconds, start_server  # noqa: E402 - the server helpers of serve.py


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=40, help="requests per form")
    parser.add_argument("--quick", action="store_true", help="5 requests per form")
    args = parser.parse_args(argv)
    n = 5 if args.quick else args.requests

    import tritonclient.http as httpclient
    from skimage import data

    import onnxviz as ov

    photo = data.chelsea()
    ok, buf = cv2.imencode(".png", photo[..., ::-1])
    assert ok
    png = buf.tobytes()
    path = ov.bundled_model()
    model = ov.load(path, threads=1)
    ov.explain(model, photo, method="gradcam")
    c = time.process_time()
    for _ in range(n):
        want = ov.explain(model, photo, method="gradcam")
    floor = (time.process_time() - c) / n * 1000

    proc, raw, cmd = start_server(path, threads=1, max_batch=1, wait_ms=0)
    client = httpclient.InferenceServerClient(raw.base_url.netloc.decode(), network_timeout=120)
    forms = {}
    for name, binary in (("JSON", False), ("binary", True)):
        t = httpclient.InferInput("image", [1], "BYTES")
        t.set_data_from_numpy(np.array([png if binary else base64.b64encode(png)], dtype=object),
                              binary_data=binary)
        forms[name] = ([t], [httpclient.InferRequestedOutput("heatmap", binary_data=binary)])
    try:
        for inputs, outputs in forms.values():  # warm up, and check the answers
            heat = client.infer("effnet", inputs, outputs=outputs).as_numpy("heatmap")
            assert np.array_equal(heat[0], want.heatmap)
        wall = {k: [] for k in forms}
        cpu = dict.fromkeys(forms, 0.0)
        for _ in range(n):
            for name, (inputs, outputs) in forms.items():
                c, t0 = cpu_seconds(proc.pid), time.perf_counter()
                client.infer("effnet", inputs, outputs=outputs).as_numpy("heatmap")
                wall[name].append(time.perf_counter() - t0)
                cpu[name] += cpu_seconds(proc.pid) - c
        sizes = {}
        for name, binary in (("JSON", False), ("binary", True)):
            (inp,), (out,) = forms[name]
            head = json.dumps({"inputs": [inp._get_tensor()], "outputs": [out._get_tensor()]})
            body = head.encode() + (inp._get_binary_data() or b"")
            headers = {"Inference-Header-Content-Length": str(len(head))} if binary else {}
            r = raw.post("/v2/models/effnet/infer", content=body, headers=headers)
            sizes[name] = (len(body), len(r.content))
    finally:
        client.close()
        proc.terminate()
        proc.wait()

    print(f"onnxviz {ov.__version__}, EfficientNet-Lite0 Grad-CAM, cat photo 451x300 "
          f"({len(png)} B PNG), {n} requests per form, {os.cpu_count()} CPUs")
    print(f"server: {cmd}")
    print(f"{'form':8} {'request B':>10} {'answer B':>10} {'server CPU ms/req':>18} "
          f"{'client wall ms/req (median)':>28}")
    for name in forms:
        print(f"{name:8} {sizes[name][0]:>10} {sizes[name][1]:>10} "
              f"{cpu[name] / n * 1000:>18.1f} {statistics.median(wall[name]) * 1000:>28.1f}")
    print(f"floor: ov.explain in process, {floor:.1f} CPU ms per image")


if __name__ == "__main__":
    main()
