"""Prometheus metrics and structured (JSON Lines) logs of the server.

Metrics, on ``GET /metrics`` in Prometheus' text format:

- ``onnxviz_requests_total{model, endpoint, code}``: answered requests;
- ``onnxviz_request_seconds{model, endpoint}``: latency, arrival to answer (histogram);
- ``onnxviz_batch_size{model, method}``: images per explainer or predict call (histogram);
- ``onnxviz_batch_seconds{model, method}``: time of one batch on its worker (histogram);
- ``onnxviz_queue_images``: images waiting for a batch (gauge);
- ``onnxviz_images_total{model, method}``: images explained or predicted.

Logs: one JSON object per line on stderr: ``{"ts", "level", "event", ...}``; a request's line
has its method, path, status, seconds, model, images and (for errors) the error.
"""

from __future__ import annotations

import json
import logging
import sys

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128)
_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """The server's metrics, in a registry of their own (several servers in one process, tests)."""

    def __init__(self):
        r = self.registry = CollectorRegistry()
        self.requests = Counter("onnxviz_requests", "Answered requests",
                                ("model", "endpoint", "code"), registry=r)
        self.latency = Histogram("onnxviz_request_seconds", "Request latency, arrival to answer",
                                 ("model", "endpoint"), buckets=_SECONDS_BUCKETS, registry=r)
        self.batch_size = Histogram("onnxviz_batch_size", "Images per explainer or predict call",
                                    ("model", "method"), buckets=_BATCH_BUCKETS, registry=r)
        self.batch_seconds = Histogram("onnxviz_batch_seconds", "Time of one batch on a worker",
                                       ("model", "method"), buckets=_SECONDS_BUCKETS, registry=r)
        self.queue = Gauge("onnxviz_queue_images", "Images waiting for a batch", registry=r)
        self.images = Counter("onnxviz_images", "Images explained or predicted",
                              ("model", "method"), registry=r)

    def request(self, model: str, endpoint: str, code: int, seconds: float) -> None:
        self.requests.labels(model, endpoint, str(code)).inc()
        self.latency.labels(model, endpoint).observe(seconds)

    def batch(self, model: str, method: str, size: int, seconds: float) -> None:
        self.batch_size.labels(model, method).observe(size)
        self.batch_seconds.labels(model, method).observe(seconds)
        self.images.labels(model, method).inc(size)

    def text(self) -> bytes:
        return generate_latest(self.registry)


class JsonFormatter(logging.Formatter):
    """A log record as one JSON line: time, level, event and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 3), "level": record.levelname.lower(),
               "event": record.getMessage()}
        out.update(getattr(record, "fields", {}))
        if record.exc_info:
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def logger(level: str = "info") -> logging.Logger:
    """The ``onnxviz.serve`` logger writing JSON lines to stderr."""
    log = logging.getLogger("onnxviz.serve")
    if not any(isinstance(h.formatter, JsonFormatter) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        log.addHandler(handler)
    log.setLevel(level.upper())
    log.propagate = False
    return log


def log(log_: logging.Logger, event: str, level: int = logging.INFO, exc_info=None,
        **fields) -> None:
    """Log ``event`` with ``fields`` as one JSON line."""
    log_.log(level, event, exc_info=exc_info, extra={"fields": fields})
