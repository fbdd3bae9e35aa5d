"""Where a segmenter's region maps fall, on held-out scenes (issue 22's localisation proof).

For every region a segmenter predicts in ``make_scenes(n, seed=12)`` (``models/scenes.py``;
training used 11 and 111), per method: how often the map's maximum lies on the region's pixels
(``hit``; where the maximum is a plateau, as occlusion's patches are, its centre; the
criterion of ``tests/detection/test_bundled.py``), on its true pixels (the scene's
class map, ``hit_true``) and inside the region's bounding box (``hit_box``, the boxes' criterion
without tolerance); and the largest share of the map's positive mass on another shape class's
predicted region (``leak``, the test's) or true pixels (``leak_true``), with how many exceed 20 %.
Shape regions and the background region are counted apart (the background is no object)::

    python benchmarks/region_localisation.py                       # the bundled U-Net, 10 scenes
    python benchmarks/region_localisation.py other.onnx -n 20 -m saliency,gradcam
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import onnxviz as ov  # noqa: E402
from models.scenes import make_scenes  # noqa: E402

OPTIONS = {"occlusion": {"patch": 8, "stride": 8}, "rise": {"num_masks": 500, "seed": 0},
           "integrated_gradients": {"steps": 16}, "smoothgrad": {"seed": 0}}


def _row(e, masks, truth) -> tuple:
    heat, c = e.heatmap, e.target
    pos = np.clip(heat, 0, None)
    total = max(float(pos.sum()), 1e-12)
    ys, xs = np.nonzero(heat == heat.max())  # a plateau's centre (occlusion: the worst patch)
    y, x = int(round(ys.mean())), int(round(xs.mean()))
    ys, xs = np.nonzero(masks[c])
    leak = [float(pos[m].sum()) / total for k, m in masks.items() if k not in (0, c)]
    true = [float(pos[truth == k].sum()) / total for k in np.unique(truth) if k not in (0, c)]
    return (bool(masks[c][y, x]), truth[y, x] == c,
            ys.min() <= y <= ys.max() and xs.min() <= x <= xs.max(),
            max(leak, default=0.0), max(true, default=0.0))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default=ov.bundled_model("shapes_segmenter"))
    ap.add_argument("-n", type=int, default=10, help="scenes")
    ap.add_argument("-m", default="saliency,gradcam,occlusion", help="methods")
    args = ap.parse_args(argv)
    seg = ov.load(args.model)
    scenes = make_scenes(args.n, seed=12)
    warnings.simplefilter("ignore")
    print("method        regions   n  hit  hit_true hit_box | leak  >20% | leak_true >20% | s")
    for method in args.m.split(","):
        t0, rows = time.perf_counter(), {"shapes": [], "background": []}
        for img, truth in zip(scenes.images, scenes.masks):
            found = ov.explain(seg, img, method, **OPTIONS.get(method, {}))
            masks = {e.target: e.extras["region_mask"] for e in found}
            for e in found:
                rows["background" if e.target == 0 else "shapes"].append(_row(e, masks, truth))
        for kind, r in rows.items():
            a = np.asarray(r, float).reshape(-1, 5)
            print(f"{method:13s} {kind:10s} {len(a):2d} {a[:, 0].mean():4.0%} {a[:, 1].mean():6.0%}"
                  f" {a[:, 2].mean():7.0%} | {a[:, 3].max():.2f} {int((a[:, 3] >= .2).sum()):4d} |"
                  f" {a[:, 4].max():8.2f} {int((a[:, 4] >= .2).sum()):4d} |"
                  f" {time.perf_counter() - t0:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
