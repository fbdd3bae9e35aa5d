"""``onnxviz serve`` throughput: Grad-CAM over HTTP at 1, 4 and 16 clients vs in-process ``ov.explain``.

One run measures, on EfficientNet-Lite0 and four scikit-image photos at their own sizes:

1. in process: ``ov.explain(model, images, method="gradcam")`` at batch sizes 1..32, images/s;
   the best batch size is the baseline;
2. the server (a subprocess, ``onnxviz serve`` on 127.0.0.1, ``--max-batch`` = that best batch
   size), twice: with the same ONNX Runtime threads as in process, and with ``--workers`` = the
   CPU count on one thread each: 1, 4 and 16 concurrent clients, each sending one base64
   PNG per ``:explain`` request and waiting for the answer; requests/s, p50 and p99 latency, the
   mean batch the server formed (from its /metrics), and requests/s as a share of the in-process
   images/s at the best batch size, measured again just before each row (a shared machine
   drifts; each row is compared with its own moment); and the CPU time the server process spends
   per request against the CPU time of ``ov.explain`` per image, which other work on the machine
   does not move: its ratio is the share a machine whose cores are all busy reaches.

The default answer carries two PNGs per image (the heatmap at 224 px and the overlay at the
photo's size), which in-process ``ov.explain`` does not render; two more rows at 16 clients ask
for the heatmap PNG only and for the numbers only (``outputs: []``), so that the cost of HTTP,
decoding and batching can be told apart from the cost of rendering. Run from the repository root::

    python benchmarks/serve.py            # a few minutes on 2 cores
    python benchmarks/serve.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def photos() -> list[np.ndarray]:
    import skimage.data

    return [skimage.data.chelsea(), skimage.data.coffee(), skimage.data.astronaut(),
            skimage.data.rocket()]


def png_b64(img: np.ndarray) -> str:
    import cv2

    _, buf = cv2.imencode(".png", np.ascontiguousarray(img[..., ::-1]))
    return base64.b64encode(buf.tobytes()).decode("ascii")


def in_process(model, images, sizes, count: int, cpu: dict | None = None) -> dict[int, float]:
    """Images/s of ov.explain Grad-CAM at each batch size (``count`` images, after a warm-up);
    ``cpu[bs]`` gets the CPU seconds per image."""
    import onnxviz as ov

    stream = [images[i % len(images)] for i in range(count)]
    out = {}
    for bs in sizes:
        ov.explain(model, stream[:bs], method="gradcam")
        t, c = time.perf_counter(), time.process_time()
        for i in range(0, count, bs):
            ov.explain(model, stream[i:i + bs], method="gradcam")
        out[bs] = count / (time.perf_counter() - t)
        if cpu is not None:
            cpu[bs] = (time.process_time() - c) / count
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(model_path, threads: int, max_batch: int, wait_ms: float, workers: int = 1):
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "onnxviz.cli", "serve", f"effnet={model_path}", "--port",
           str(port), "--threads", str(threads), "--max-batch", str(max_batch),
           "--max-wait-ms", str(wait_ms), "--workers", str(workers), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
    for _ in range(600):
        try:
            if client.get("/v2/health/ready").status_code == 200:
                return proc, client, " ".join(["onnxviz", *cmd[3:]])
        except httpx.TransportError:
            time.sleep(0.1)
        if proc.poll() is not None:
            raise SystemExit("the server exited")
    proc.kill()
    raise SystemExit("the server did not start")


def batches(client) -> tuple[float, float]:
    """(batches, images) so far, from the server's batch-size histogram."""
    text = client.get("/metrics").text
    lab = r'\{method="gradcam",model="effnet"\}'
    n = re.search(rf"onnxviz_batch_size_count{lab} (\S+)", text)
    s = re.search(rf"onnxviz_batch_size_sum{lab} (\S+)", text)
    return (float(n.group(1)), float(s.group(1))) if n else (0.0, 0.0)


def load(url: str, bodies: list[dict], clients: int, per_client: int):
    """``clients`` threads, each sending ``per_client`` requests one after another."""
    import httpx

    def one(k):
        lat = []
        with httpx.Client(base_url=url, timeout=120) as c:
            for i in range(per_client):
                t = time.perf_counter()
                r = c.post("/v1/models/effnet:explain", json=bodies[(k + i) % len(bodies)])
                lat.append(time.perf_counter() - t)
                if r.status_code != 200:
                    raise SystemExit(f"HTTP {r.status_code}: {r.text}")
        return lat

    t = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        lat = [x for xs in pool.map(one, range(clients)) for x in xs]
    return len(lat) / (time.perf_counter() - t), lat


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short smoke run")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads (default 2)")
    p.add_argument("--wait-ms", type=float, default=5, help="server --max-wait-ms (default 5)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="--workers of the second server, each on one thread (default: the CPU "
                        "count; 1 runs only the first server)")
    args = p.parse_args(argv)
    import onnxviz as ov

    path = ov.bundled_model("efficientnet_lite0")
    images = photos()
    model = ov.load(path, threads=args.threads)
    sizes = [1, 4, 16] if args.quick else [1, 4, 8, 16, 32]
    rates = in_process(model, images, sizes, 16 if args.quick else 64)
    best = max(rates, key=rates.get)
    print(f"onnxviz {ov.__version__}, EfficientNet-Lite0 Grad-CAM, {os.cpu_count()} CPUs, "
          f"ONNX Runtime threads {args.threads}")
    print("in process, ov.explain: " + ", ".join(f"batch {b}: {r:.1f} img/s"
                                                  for b, r in rates.items()))
    print(f"baseline: batch {best}, {rates[best]:.1f} img/s\n")

    pngs = [png_b64(img) for img in images]

    def asking(outputs):
        return [{"instances": [b], "parameters": {"outputs": outputs}} for b in pngs]

    default = [{"instances": [b]} for b in pngs]
    rows = [("default (2 PNGs)", default, c) for c in (1, 4, 16)]
    rows.append(("heatmap PNG only", asking(["heatmap_png"]), 16))
    rows.append(("numbers only", asking([]), 16))
    # the server as the in-process run (ONNX Runtime threads, one batch at a time), and as one
    # batch per core on one thread each (--workers), which keeps the cores busy while requests
    # are decoded and rendered
    configs = [(args.threads, 1)]
    if args.workers > 1:
        configs.append((1, args.workers))
    measured = []
    for threads, workers in configs:
        proc, client, cmd = start_server(path, threads, best, args.wait_ms, workers)
        print(f"server {len(measured) // len(rows) + 1}: {cmd}")
        try:
            for name, bodies, clients in rows:
                per = (4 if args.quick else 8) * (1 if clients > 1 else 2)
                # the baseline again just before each row: on a machine shared with other work
                # the speed drifts, and each row is compared with the in-process speed of its
                # moment
                cpu: dict = {}
                base = in_process(model, images, [best], clients * per, cpu)[best]
                load(str(client.base_url), bodies, clients, 2)  # warm-up
                b0, c0 = batches(client), cpu_seconds(proc.pid)
                rps, lat = load(str(client.base_url), bodies, clients, per)
                b1, c1 = batches(client), cpu_seconds(proc.pid)
                server_cpu = (c1 - c0) / len(lat)
                mean_batch = (b1[1] - b0[1]) / max(1.0, b1[0] - b0[0])
                q = statistics.quantiles(lat, n=100, method="inclusive")
                measured.append((len(measured) // len(rows) + 1, name, clients, rps, q[49],
                                 q[98], mean_batch, base, server_cpu, cpu[best]))
        finally:
            client.close()
            proc.terminate()
            proc.wait(10)
    print(f"\n{'server':>6} {'answer':<17} {'clients':>7} {'req/s':>7} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'batch':>6} {'in-process img/s':>16} {'share':>6} "
          f"{'CPU ms/req':>10} {'in-process':>10} {'CPU share':>9}")
    for k, name, clients, rps, p50, p99, mean_batch, base, scpu, icpu in measured:
        print(f"{k:>6} {name:<17} {clients:>7} {rps:>7.1f} {p50 * 1000:>7.0f} "
              f"{p99 * 1000:>7.0f} {mean_batch:>6.1f} {base:>16.1f} {rps / base:>6.0%} "
              f"{scpu * 1000:>10.1f} {icpu * 1000:>10.1f} {icpu / scpu:>9.0%}")
    print("\nshare: requests/s over in-process images/s; CPU share: in-process CPU time per image "
          "over the server's per request, the share a machine whose cores are all busy reaches "
          "(it does not move with other work on the machine as wall-clock times do)")


if __name__ == "__main__":
    main()
