"""``onnxviz serve``: explanations over HTTP, in KServe's v1 protocol and the Open Inference
Protocol (v2), with dynamic batching, limits, Prometheus metrics and JSON logs.

The server is a thin door onto the library: a request's images and parameters become one
``registry.get(method)(model, **options).explain(images, targets)`` call shared with the requests
that arrived with it (:mod:`~onnxviz.serve.batching`), and the :class:`~onnxviz.Explanation`\\ s
become JSON (:mod:`~onnxviz.serve.protocol`). Its packages are the ``serve`` extra
(``pip install 'onnxviz[serve]'``): Starlette, uvicorn and prometheus-client. docs/serving.md is
the user's guide.
"""

from __future__ import annotations

import importlib

from .errors import ServeUnavailable

#: The packages of the ``serve`` extra that the server imports.
NEEDS = ("starlette", "uvicorn", "prometheus_client")


def require() -> None:
    """Raise :class:`ServeUnavailable` (one line: how to install) unless the extra is installed."""
    missing = []
    for name in NEEDS:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ServeUnavailable(f"onnxviz serve needs {', '.join(missing)}: "
                               "pip install 'onnxviz[serve]'")


def serve(models: dict, methods: list[str], limits, *, host: str = "127.0.0.1",
          port: int = 8080, token: str | None = None, log_level: str = "info",
          sock=None, ui: bool = True) -> None:
    """Serve ``models`` (``{name: ServedModel}``) until interrupted.

    Args:
        models: the models by URL name, loaded and warmed up.
        methods: the methods served, the default first.
        limits: a :class:`~onnxviz.serve.limits.Limits`.
        host, port: where to listen (127.0.0.1 unless told otherwise; port 0 for any free one).
        token: the bearer token requests must carry, or None for no auth.
        log_level: of the JSON log lines (``debug``, ``info``, ``warning``, ``error``).
        sock: a socket from :func:`listen` already bound (``host`` and ``port`` are then unused).
        ui: serve the browser page at ``/`` (docs/serving.md, "The page").
    """
    require()
    import uvicorn

    from .app import Server, create_app
    from .metrics import logger

    sock = sock or listen(host, port)
    server = Server(models, methods, limits, token, logger(log_level),
                    address=sock.getsockname()[:2], ui=ui)
    config = uvicorn.Config(create_app(server), log_level="warning", access_log=False,
                            lifespan="on", timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])


def listen(host: str, port: int):
    """A listening socket on ``host:port`` (port 0: any free port; the ``ready`` log line says
    which). A port in use is a one-line error, not a traceback."""
    import socket

    from ..errors import OnnxvizError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OnnxvizError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(2048)
    return sock
