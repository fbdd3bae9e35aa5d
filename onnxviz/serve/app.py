"""The ASGI application: routes of KServe's v1 and the Open Inference Protocol (v2), health,
metrics, bearer-token auth, body limits and timeouts, on Starlette.

Every handler runs inside :meth:`Server.answer`, which checks the token, turns any
:class:`~onnxviz.errors.OnnxvizError` into its 4xx (or 503) one-line JSON error, any other exception
into a logged 500 (the server keeps serving), and counts and logs the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import logging
import time

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import __version__
from ..results import PNGS
from . import binary, page, protocol
from .batching import Batcher
from .engine import Item, results
from .errors import (
    Busy,
    MethodNotAllowed,
    NotFound,
    RequestError,
    Timeout,
    TooLarge,
    Unauthorized,
    one_line,
    status_of,
)
from .limits import Limits
from .metrics import CONTENT_TYPE, Metrics, log
from .params import job_of, parameters_of, predict_options, targets_of

#: Paths answered without a token (probes that cannot send one; the page, which a browser
#: opens before anyone can type a token, and its static files under :data:`PAGE_FILES`).
OPEN_PATHS = ("/", "/v2/health/live", "/v2/health/ready")
PAGE_FILES = "/ui/"


class Server:
    """The state behind the routes: the models, the batcher, the limits, metrics and logs.

    Args:
        models: ``{name: ServedModel}``.
        methods: the methods served; the first is a request's default.
        limits: the :class:`~onnxviz.serve.limits.Limits`.
        token: the bearer token every request but the health probes must send, or None.
        logger: where JSON log lines go.
        address: (host, port) listened on, for the ``ready`` log line.
        ui: serve the browser page at ``/`` (to browsers; probes still get the health answer).
    """

    def __init__(self, models: dict, methods: list[str], limits: Limits, token: str | None,
                 logger: logging.Logger, address: tuple = ("", 0), ui: bool = True):
        self.models, self.methods, self.limits = models, methods, limits
        self.ui = ui
        self.address = address
        self.token = token
        self.log = logger
        self.metrics = Metrics()
        self.batcher = Batcher(self._run, max_batch=limits.max_batch, max_wait=limits.max_wait,
                               max_queue=limits.max_queue, workers=limits.workers,
                               observe=self._observe)

    # ---- plumbing --------------------------------------------------------------------------
    def _run(self, key: tuple, payloads: list) -> list:
        """A batch on a worker thread: ``(model, "explain", job key)`` or ``(model, "predict",
        top)``."""
        served = self.models[key[0]]
        if key[1] == "predict":
            return served.predict(key[2], payloads)
        job = payloads[0][0]
        return served.explain(job.method, job.kwargs, [item for _, item in payloads])

    def _observe(self, key: tuple, size: int, seconds: float) -> None:
        method = key[2][0] if key[1] == "explain" else "predict"
        self.metrics.batch(key[0], method, size, seconds)
        self.metrics.queue.set(self.batcher.depth)

    def model(self, name: str):
        if name not in self.models:
            raise NotFound(f"unknown model {name!r}; served: {', '.join(self.models)}")
        return self.models[name]

    def check_token(self, request: Request) -> None:
        path = request.url.path
        if self.token is None or path in OPEN_PATHS or (self.ui and path.startswith(PAGE_FILES)):
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            raise Unauthorized("a valid 'Authorization: Bearer <token>' header is required")

    async def body(self, request: Request, binary_tensors: bool = False) -> dict:
        """The JSON object of the body, read no further than ``max_body`` bytes; with
        ``binary_tensors``, framed by the binary tensor data extension when the request says so
        (:func:`onnxviz.serve.binary.body_of`)."""
        limit = self.limits.max_body
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise TooLarge(f"the body is {length} bytes, past this server's limit of {limit} "
                           "(onnxviz serve --max-body-mb)")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"the body is past this server's limit of {limit} bytes "
                               "(onnxviz serve --max-body-mb)")
            chunks.append(chunk)
        data = binary.inflate(b"".join(chunks), request.headers.get("content-encoding"), limit)
        header = request.headers.get(binary.HEADER) if binary_tensors else None
        return binary.body_of(data, header)

    async def batch(self, key: tuple, payloads: list, arrived: float) -> list:
        """Queue ``payloads`` and wait for their results, no longer than the request's timeout."""
        self.metrics.queue.set(self.batcher.depth + len(payloads))
        waiting = self.batcher.submit(key, payloads)
        left = self.limits.timeout - (time.perf_counter() - arrived)
        try:
            results = await asyncio.wait_for(waiting, max(left, 0.001))
        except asyncio.TimeoutError:
            raise Timeout(f"no answer within {self.limits.timeout:g} s "
                          "(onnxviz serve --timeout)") from None
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return results

    async def explained(self, served, job, images: list, targets: list, arrived: float) -> list:
        """Explanations of ``images`` (batched with other requests), then their PNGs (rendered
        off the batch's worker, so the next batch runs meanwhile)."""
        how = dataclasses.replace(PNGS, cmap=job.cmap)
        items = [Item(img, t, job.outputs, how) for img, t in zip(images, targets)]
        explained = await self.batch((served.name, "explain", job.key),
                                     [(job, it) for it in items], arrived)
        if not any(n.endswith("_png") for n in job.outputs):
            return results(explained, items)
        return await asyncio.to_thread(results, explained, items)

    async def answer(self, request: Request, endpoint: str, handler, model: str = "") -> Response:
        """Run ``handler()`` (a coroutine giving a JSON-able object or a Response) as one request:
        auth, errors, metrics, the log line."""
        t = time.perf_counter()
        headers, fields = {}, {}
        try:
            self.check_token(request)
            out = await handler(fields)
            if isinstance(out, Response):
                response = out
            else:
                response = json_response(await _dumps(out))
        except Exception as e:  # noqa: BLE001 - every error becomes an answer
            code = status_of(e)
            if isinstance(e, Busy):
                headers["Retry-After"] = str(e.retry_after)
            if isinstance(e, Unauthorized):
                headers["WWW-Authenticate"] = "Bearer"
            if isinstance(e, MethodNotAllowed):
                headers["Allow"] = e.allow
            bug = code == 500
            message = "internal error (logged by the server)" if bug else one_line(e)
            fields["error"] = one_line(e)
            if bug:
                log(self.log, "internal error", logging.ERROR, exc_info=e,
                    path=request.url.path, error=one_line(e))
            response = error_response(code, message, headers)
        seconds = time.perf_counter() - t
        # labels only from known names: a client cannot grow the metrics without bound
        self.metrics.request(model if model in self.models else "", endpoint,
                             response.status_code, seconds)
        log(self.log, "request", method=request.method, path=request.url.path,
            status=response.status_code, seconds=round(seconds, 6), model=model, **fields)
        return response

    # ---- the endpoints ---------------------------------------------------------------------
    async def explain(self, served, body: dict, arrived: float, fields: dict):
        params = parameters_of(body)
        job = job_of(params, self.methods, self.limits.caps, served.model)
        instances = protocol.instances_of(body)
        targets = targets_of(params, len(instances), served.model)
        images = await asyncio.to_thread(protocol.decode_instances, instances,
                                         self.limits.max_pixels)
        fields.update(images=len(images), explainer=job.method)
        results = await self.explained(served, job, images, targets, arrived)
        heat = "heatmap" in job.outputs
        return {"explanations": [protocol.v1_explanation(r, heat, served.task)
                                 for r in results]}

    async def predict(self, served, body: dict, arrived: float, fields: dict):
        top = predict_options(parameters_of(body), served.model)
        instances = protocol.instances_of(body)
        images = await asyncio.to_thread(protocol.decode_instances, instances,
                                         self.limits.max_pixels)
        fields.update(images=len(images))
        rows = await self.batch((served.name, "predict", top), [Item(i) for i in images],
                                arrived)
        out = {"predictions": protocol.v1_predictions(rows)}
        if served.task == "segment":
            out["class_maps"] = await asyncio.to_thread(protocol.class_maps, rows)
        return out

    async def infer(self, served, body: dict, arrived: float, fields: dict):
        if served.task != "classify":
            raise RequestError(f"{served.name} is a {served.task} model: its explanations are one "
                               f"per {'box' if served.task == 'detect' else 'region'}; ask "
                               f"POST /v1/models/{served.name}:explain")
        params = parameters_of(body)
        names = protocol.v2_outputs(body)
        raw = binary.wanted(body, params, names)
        job = job_of({k: v for k, v in params.items() if k not in ("outputs", binary.OUTPUT_PARAM)},
                     self.methods, self.limits.caps)
        job = dataclasses.replace(job, outputs=tuple(n for n in names if n.endswith("_png")))
        tensor = protocol.v2_tensor(body)
        images = await asyncio.to_thread(protocol.v2_images, tensor, self.limits.max_pixels)
        targets = targets_of(params, len(images), served.model)
        fields.update(images=len(images), explainer=job.method)
        results = await self.explained(served, job, images, targets, arrived)
        out = protocol.v2_response(served.name, body.get("id"), job.method, results, names, raw)
        framed = binary.framed(out)
        if framed is None:
            return out
        content, headers = framed
        return Response(content, headers=headers, media_type=binary.CONTENT_TYPE)


def json_response(content: bytes, status: int = 200, headers=None) -> Response:
    return Response(content, status, headers=headers, media_type="application/json")


def error_response(code: int, message: str, headers=None) -> Response:
    return json_response(json.dumps({"error": message}).encode(), code, headers)


async def _dumps(obj) -> bytes:
    """JSON bytes; large answers (images, heatmaps) are written off the event loop."""
    if isinstance(obj, dict) and ("explanations" in obj or "outputs" in obj):
        return await asyncio.to_thread(lambda: json.dumps(obj).encode())
    return json.dumps(obj).encode()


def create_app(server: Server) -> Starlette:
    """The Starlette application of ``server``."""

    def simple(endpoint, make):
        async def route(request: Request):
            name = request.path_params.get("name", "")

            async def handler(fields):
                return make(request, name)

            return await server.answer(request, endpoint, handler, name)
        return route

    async def v1_model(request: Request):
        spec = request.path_params["spec"]
        name, _, verb = spec.partition(":")
        if request.method == "GET":
            async def ready(fields):
                if verb in ("predict", "explain"):
                    raise MethodNotAllowed(f"{verb} takes POST, not GET: POST /v1/models/"
                                           f"{name}:{verb}")
                if verb:
                    raise NotFound(f"no GET route for {spec!r}")
                server.model(name)
                return {"name": name, "ready": True}
            return await server.answer(request, "v1_ready", ready, name)
        endpoint = {"predict": server.predict, "explain": server.explain}.get(verb)

        async def run(fields):
            if endpoint is None:
                raise NotFound(f"unknown verb {verb!r}: POST /v1/models/NAME:predict or "
                               "NAME:explain")
            served = server.model(name)
            arrived = time.perf_counter()
            return await endpoint(served, await server.body(request), arrived, fields)
        return await server.answer(request, f"v1_{verb if endpoint else 'unknown'}", run, name)

    async def v2_infer(request: Request):
        name = request.path_params["name"]

        async def run(fields):
            served = server.model(name)
            arrived = time.perf_counter()
            body = await server.body(request, binary_tensors=True)
            return await server.infer(served, body, arrived, fields)
        return await server.answer(request, "v2_infer", run, name)

    async def metrics(request: Request):
        async def run(fields):
            return Response(server.metrics.text(), media_type=CONTENT_TYPE)
        return await server.answer(request, "metrics", run)

    async def http_error(request: Request, exc: HTTPException):
        return error_response(exc.status_code, f"{exc.detail}: {request.method} "
                                               f"{request.url.path}", exc.headers)

    def root(request: Request, name: str):
        """The page for a browser (it asks for HTML), the health answer for everyone else."""
        if server.ui and "text/html" in request.headers.get("accept", ""):
            return Response(page.static("index.html"), media_type=page.FILES["index.html"],
                            headers={"Cache-Control": "no-cache"})
        return {"status": "alive"}

    def ui_file(request: Request, name: str):
        file = request.path_params["file"]
        if not server.ui:
            raise NotFound("the page is off (onnxviz serve --no-ui)")
        if file.startswith("samples/") and file.endswith(".png") and \
                file[8:-4] in page.SAMPLES:
            return Response(page.sample(file[8:-4]), media_type="image/png",
                            headers={"Cache-Control": "max-age=3600"})
        if file not in page.FILES:
            raise NotFound(f"no file {file!r} in the page")
        return Response(page.static(file), media_type=page.FILES[file],
                        headers={"Cache-Control": "no-cache"})

    names = list(server.models)
    methods = page.methods_info(server.methods, server.models, server.limits.caps)
    routes = [
        Route("/", simple("live", root)),
        Route("/ui/{file:path}", simple("ui", ui_file)),
        Route("/v1/methods", simple("v1_methods", lambda r, n: methods)),
        Route("/v1/models", simple("v1_models", lambda r, n: {"models": names})),
        Route("/v1/models/{spec:path}", v1_model, methods=["GET", "POST"]),
        Route("/v2", simple("v2_server", lambda r, n: {
            "name": "onnxviz", "version": __version__, "extensions": [binary.EXTENSION]})),
        Route("/v2/health/live", simple("v2_live", lambda r, n: {"live": True})),
        Route("/v2/health/ready", simple("v2_ready", lambda r, n: {"ready": True})),
        Route("/v2/models/{name}", simple("v2_metadata", lambda r, n: server.model(n).metadata(
            server.methods))),
        Route("/v2/models/{name}/ready", simple("v2_model_ready", lambda r, n: {
            "name": server.model(n).name, "ready": True})),
        Route("/v2/models/{name}/infer", v2_infer, methods=["POST"]),
        Route("/metrics", metrics),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app):
        log(server.log, "ready", host=server.address[0], port=server.address[1],
            url=f"http://{server.address[0]}:{server.address[1]}", models=names,
            methods=server.methods,
            limits={k: v for k, v in dataclasses.asdict(server.limits).items() if k != "caps"})
        yield
        server.batcher.close()

    return Starlette(routes=routes, exception_handlers={HTTPException: http_error},
                     lifespan=lifespan)
