"""``onnxviz serve MODEL [MODEL...]``: an explanation server (KServe v1, Open Inference Protocol v2).

Each model is served under its file stem (or ``NAME=PATH``): ``POST /v1/models/NAME:explain``,
``:predict``, ``/v2/models/NAME/infer``, metadata, health, ``/metrics``. ``--method`` chooses the
methods requests may ask for (the first is the default); everything about a request is checked by
the same registry as ``onnxviz explain``. Needs the ``serve`` extra; docs/serving.md tells more.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import OptionError
from ..explainers.options import parse_methods
from . import options
from .common import add_model_args, load_model


def register(subparsers) -> None:
    from ..serve.limits import DEFAULT_CAPS, Limits

    d = Limits()
    p = subparsers.add_parser(
        "serve", allow_abbrev=False,
        help="serve explanations over HTTP (KServe v1 and Open Inference Protocol v2)",
        description="Serve models over HTTP: POST /v1/models/NAME:explain and :predict (KServe "
                    "v1), /v2/models/NAME/infer (Open Inference Protocol), health, metadata and "
                    "Prometheus /metrics. Needs: pip install 'onnxviz[serve]'.")
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="an .onnx file, served under its file stem; NAME=PATH chooses the name")
    add_model_args(p, positional=False)
    options.add_method_arg(p, default="gradcam")
    p.add_argument("--debug", dest="sub_debug", action="store_true",
                   help="show the full traceback on errors")
    g = p.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    g.add_argument("--port", type=int, default=8080,
                   help="port (default 8080; 0: any free port, named in the 'ready' log line)")
    g.add_argument("--workers", type=int, default=d.workers, metavar="N",
                   help=f"batches run at once, on threads sharing the models (default {d.workers})")
    g.add_argument("--max-batch", type=int, default=d.max_batch, metavar="N",
                   help=f"images per explainer call (default {d.max_batch})")
    g.add_argument("--max-wait-ms", type=float, default=d.max_wait * 1000, metavar="MS",
                   help=f"how long a batch waits for more images (default {d.max_wait * 1000:g})")
    g.add_argument("--token-file", metavar="FILE",
                   help="require 'Authorization: Bearer <the file's text>' (health probes "
                        "excepted); default: no auth")
    g.add_argument("--ui", action=argparse.BooleanOptionalAction, default=True,
                   help="the browser page at / (default on: a page that calls this server's own "
                        "API, which --token-file guards; --no-ui for none)")
    g.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="JSON log lines on stderr (default info: one per request)")
    lim = p.add_argument_group("limits")
    lim.add_argument("--max-body-mb", type=float, default=d.max_body / 2**20, metavar="MB",
                     help=f"request body size (default {d.max_body / 2**20:g})")
    lim.add_argument("--max-pixels", type=int, default=d.max_pixels, metavar="N",
                     help=f"pixels of one image, checked from its header (default {d.max_pixels})")
    lim.add_argument("--max-queue", type=int, default=d.max_queue, metavar="N",
                     help=f"images waiting; past it 503 + Retry-After (default {d.max_queue})")
    lim.add_argument("--timeout", type=float, default=d.timeout, metavar="S",
                     help=f"seconds per request, 504 after (default {d.timeout:g})")
    caps = ", ".join(f"{k} {'>=' if kind == 'min' else '<='} {v:g}"
                     for k, (kind, v) in DEFAULT_CAPS.items())
    lim.add_argument("--cap", action="append", metavar="OPTION=N",
                     help=f"change a cap on an expensive method option (default: {caps})")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..serve import require

    require()  # one line and exit 2 without the serve extra
    from ..serve import listen, serve
    from ..serve.engine import ServedModel, model_name
    from ..serve.limits import Limits, parse_caps

    methods = served_methods(args.methods)
    limits = Limits(max_body=int(args.max_body_mb * 2**20), max_pixels=args.max_pixels,
                    max_queue=args.max_queue, timeout=args.timeout, max_batch=args.max_batch,
                    max_wait=args.max_wait_ms / 1000, workers=args.workers,
                    caps=parse_caps(args.cap))
    if not 0 <= args.port < 65536:
        raise OptionError(f"--port must be in 0..65535, got {args.port}")
    token = read_token(args.token_file)
    specs = [model_name(s) for s in args.models]
    names = [n for n, _ in specs]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise OptionError(f"two models named {dup!r}; give NAME=PATH to tell them apart")
    sock = listen(args.host, args.port)  # a port in use fails before any model loads
    models = {}
    for name, path in specs:
        served = ServedModel(name, load_model(argparse.Namespace(**{**vars(args), "model": path})))
        served.warm_up(methods[0])
        models[name] = served
    serve(models, methods, limits, token=token, log_level=args.log_level, sock=sock,
          ui=args.ui)
    return 0


def served_methods(spec) -> list[str]:
    """``--method``: the methods requests may use, the default first (gradcam first for all)."""
    methods = parse_methods(spec or ["gradcam"])
    named = {n.strip() for part in (spec or []) for n in part.split(",")}
    if "all" in named and "gradcam" in methods and not (named - {"all"}):
        methods.remove("gradcam")
        methods.insert(0, "gradcam")
    return methods


def read_token(path) -> str | None:
    """The bearer token in ``path`` (surrounding whitespace dropped), or None without a file."""
    if path is None:
        return None
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise OptionError(f"--token-file {path}: cannot read it ({e})") from None
    if not token or any(c.isspace() for c in token):
        raise OptionError(f"--token-file {path}: the token must be one word, not empty")
    return token
