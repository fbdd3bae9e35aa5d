"""``onnxviz report MODEL IMAGE... --methods ...``: one self-contained HTML page.

The page shows each image, its top-5 prediction, every method's overlay side by side (with the
heatmap and a top-20% mask), the timings, the settings each method ran with and a model summary.
A method that cannot run on this model (CAM without a GAP -> dense head, say) is shown as such and
reported on stderr; the other methods still run.
"""

from __future__ import annotations

import time

from pathlib import Path

from ..errors import OnnxvizError
from ..explainers.options import (for_model, method_kwargs, parse_methods, parse_target,
                                  with_progress)
from ..results import out_dir, printable
from . import files, options
from .common import add_detection_args, load_model, model_command, nms_of, warn


def register(subparsers) -> None:
    from ..explainers.registry import methods

    p = model_command(
        subparsers, "report", help="one self-contained HTML page comparing methods on images",
        description="Explain images with several methods; write one HTML page (images embedded).")
    options.add_method_arg(p)
    p.add_argument("--target", "-t", metavar="T", help="class to explain (default: top-1)")
    p.add_argument("--top", type=int, default=5, help="classes in the prediction table (default 5)")
    p.add_argument("--title", default=None, help="page title")
    p.add_argument("--out", "-o", default="onnxviz-report", metavar="DIR",
                   help="output folder; the page is DIR/report.html (default onnxviz-report; "
                        "a path ending in .html names the file itself)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.add_argument("--debug", dest="sub_debug", action="store_true",
                   help="show the full traceback on errors")
    add_detection_args(p)
    g = p.add_argument_group("rendering")
    from ..viz import COLORMAPS

    g.add_argument("--cmap", default="jet", choices=COLORMAPS, help="colormap (default jet)")
    g.add_argument("--alpha", type=float, default=0.4, help="overlay heatmap weight (default 0.4)")
    files.add_clip_arg(g)
    options.add_method_options(p, methods())
    p.set_defaults(func=run)


def model_summary(model) -> dict:
    """The rows of the report's model table."""
    from .inspect import describe

    d = describe(model)
    i, lab = d["input"], d["labels"]
    size = f"{i['size'][0]}x{i['size'][1]}"
    return {
        "file": d["model"] or "in-memory",
        "producer": d["producer"],
        "opset": d["opset"],
        "input": f"{i['name']} {i['layout']} {size}, {i['channels']} channels",
        "preprocessing": model.preprocessing.describe(),
        "score output": d["score_output"] + (" (logits, then Softmax)" if d["prob_output"] else ""),
        "classes": d["num_classes"],
        "labels": f"{lab['count']} from {lab['source']}" if lab["count"] else "none",
        "4-D layers": len(d["layers"]),
    }


def build_report(model, sources, images, methods, settings, target=None, quiet=False, top=5,
                 say=None, nms=None):
    """Explain every image with every method; returns ``(sections, failures by method)``.

    ``say``: called with one line of progress per map (``"3/22 gradcam: 0.41 s"``) in place of
    the progress bar (``onnxviz demo`` prints them).

    ``images`` may be any iterable (a generator decoding one file at a time): each image is
    explained by every method, then kept only at page size (:data:`PAGE_SIDE`), so a folder of
    large photos never sits in memory whole. ``settings`` is ``{method: kwargs}``. A method that
    raises an :class:`OnnxvizError` is recorded as failed (for one image, or for all when it
    cannot be built) instead of stopping the report.

    A detector's image has a section per box (the box drawn on the photo, a card per method),
    a segmenter's a section per class region; ``nms`` picks a detector's boxes.
    """
    from ..explainers.dense import explainer
    from ..viz import ReportImage

    def top_k(pr):
        return [(p.label, p.score if p.probability is None else p.probability) for p in pr]

    failures, explainers = {}, []
    for m in methods:
        try:
            kwargs = with_progress(m, settings.get(m, {}), files.show_progress(quiet))
            explainers.append(explainer(model, m, kwargs, nms))
        except OnnxvizError as err:
            failures[m] = str(err)
    dense = model.task != "classify"
    sections, total, done = [], len(sources) * len(explainers), 0
    with files.progress(len(sources) * len(methods), "explaining", quiet or say is not None,
                        unit="map") as bar:
        for src, img in _named(sources, images):
            sec = ReportImage(src, img, predictions=[] if dense else
                              top_k(model.predict([img], top=top)[0]))
            cards: dict = {}  # a detector's boxes, a segmenter's regions: a card each
            for ex in explainers:
                bar.set_postfix_str(ex.name, refresh=False)
                t = time.perf_counter()
                try:
                    found = ex.explain([img], target=target)
                    if dense:
                        for k, e in enumerate(found):
                            cards.setdefault(_card_key(e, k), []).append(e)
                    else:
                        sec.explanations.extend(found)
                    outcome = f"{time.perf_counter() - t:.2f} s"
                except OnnxvizError as err:
                    sec.failures[ex.name] = str(err)
                    outcome = f"failed: {err}"
                done += 1
                if say is not None:
                    say(f"{done}/{total} {ex.name}: {outcome}")
                bar.update(1)
            for m, msg in failures.items():
                sec.failures[m] = msg
                bar.update(1)
            if dense:
                sections.extend(_target_sections(src, img, cards, sec.failures))
                continue
            sec.image = _page_size(img)
            sections.append(sec)
    for ex in explainers:  # failed on every image: a method failure
        msgs = [s.failures[ex.name] for s in sections if ex.name in s.failures]
        if sections and len(msgs) == len(sections) and not any(
                e.method == ex.name for s in sections for e in s.explanations):
            failures[ex.name] = msgs[0]
    return sections, failures


def _named(sources, images):
    """``(name, image)`` pairs: ``images`` yields arrays (named by ``sources`` in order) or
    ``(name, array)`` pairs (where unreadable files were skipped on the way)."""
    names = iter(sources)
    for item in images:
        yield item if isinstance(item, tuple) else (next(names), item)


def _card_key(e, k: int):
    """What a box's or a region's results share across methods: its index, or its class."""
    return ("box", k) if e.box is not None else ("region", e.target)


def _target_sections(src, img, cards: dict, failures: dict) -> list:
    """One section per box (the photo with the box drawn) or region of one image."""
    from ..viz import ReportImage, draw_box

    out = []
    for (kind, key), found in cards.items():
        e = found[0]
        if kind == "box":
            box = ", ".join(f"{v:.0f}" for v in e.box)
            name = f"{src} · box {key}: {e.label} [{box}]"
            picture = draw_box(img, e.box, e.label)
        else:
            name = f"{src} · {e.label} region ({100 * e.region['area']:.1f}% of the image)"
            picture = img
        out.append(ReportImage(name, _page_size(picture), predictions=[(e.label, e.score)],
                               explanations=list(found), failures=dict(failures)))
    if not out:  # nothing found to explain: the image and why
        out.append(ReportImage(src, _page_size(img), failures=dict(failures)))
    return out


#: Longest side of the images a report keeps (the page shows them at 400 px at most).
PAGE_SIDE = 800


def _page_size(img):
    import cv2

    h, w = img.shape[:2]
    if max(h, w) <= PAGE_SIDE:
        return img
    f = PAGE_SIDE / max(h, w)
    return cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))),
                      interpolation=cv2.INTER_AREA)


def effective_settings(method: str, kwargs: dict) -> dict:
    """Every option of ``method`` with the value it runs with (defaults filled in)."""
    from ..explainers.registry import get

    out = {n: p.default for n, p in get(method).options().items()}
    out.update(kwargs)
    return out


def run(args) -> int:
    from ..viz import write_report

    if args.top < 1:
        raise OnnxvizError(f"--top must be >= 1, got {args.top}")
    if not 0.0 <= args.alpha <= 1.0:
        raise OnnxvizError(f"--alpha must be in [0, 1], got {args.alpha}")
    if not 0.0 <= args.clip < 100.0:
        raise OnnxvizError(f"--clip must be in [0, 100), got {args.clip}")
    methods = parse_methods(args.methods or ["all"])
    given = options.given_options(args)
    settings = {m: method_kwargs(m, given, strict=len(methods) == 1) for m in methods}
    target = parse_target(args.target)
    sources = files.expand_images(args.images)
    skipped: list = []

    def images():  # decoded one at a time, as the report goes, named as shown
        for _, src, img in files.iter_images(sources, skipped, strict=len(sources) == 1):
            yield printable(src), img

    out = Path(args.out) if str(args.out).lower().endswith(".html") else \
        out_dir(args.out) / "report.html"
    model = load_model(args)
    nms = nms_of(args, model)
    methods = for_model(methods, args.methods or ["all"], model)
    sections, failures = build_report(model, sources, images(), methods, settings, target,
                                      args.quiet, args.top, nms=nms)
    if not sections:
        raise OnnxvizError(f"no image could be read: {skipped[0][1]}")
    for m, msg in failures.items():
        warn(f"{m}: {msg}")
    if len(failures) == len(methods):
        raise OnnxvizError(f"no method could run: {next(iter(failures.values()))}")
    path = write_report(out, sections, model_summary=model_summary(model),
                        title=args.title or f"onnxviz report: {Path(args.model).name}",
                        settings={m: effective_settings(m, s) for m, s in settings.items()
                                  if m not in failures},
                        alpha=args.alpha, cmap=args.cmap, clip_percent=args.clip)
    print(path)
    return 0
