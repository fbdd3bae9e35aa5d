"""What a request did wrong, with the HTTP status it earns.

Each is an :class:`~onnxviz.errors.OnnxvizError`, so the library's own errors (a bad option, an
unknown layer or target, an unreadable image) and the server's (a body too large, a full queue)
reach the client the same way: one line of JSON, ``{"error": "..."}``, and a 4xx or 503 status.
"""

from __future__ import annotations

from ..errors import OnnxvizError


class RequestError(OnnxvizError):
    """A request the server cannot act on (400 unless a subclass says otherwise)."""

    status = 400


class NotFound(RequestError):
    """An unknown model or path."""

    status = 404


class MethodNotAllowed(RequestError):
    """A path that exists, asked with the wrong HTTP method (``GET NAME:explain``); ``allow``
    lists the methods it takes (the ``Allow`` header)."""

    status = 405

    def __init__(self, message: str, allow: str = "POST"):
        super().__init__(message)
        self.allow = allow


class TooLarge(RequestError):
    """A body past ``--max-body-mb`` or an image past ``--max-pixels``."""

    status = 413


class Unauthorized(RequestError):
    """A missing or wrong bearer token (with ``--token-file``)."""

    status = 401


class Busy(RequestError):
    """The queue is full; the client should retry after ``retry_after`` seconds."""

    status = 503

    def __init__(self, message: str, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class Timeout(RequestError):
    """The explanation did not finish within ``--timeout``."""

    status = 504


class ServeUnavailable(OnnxvizError):
    """The server's packages (the ``serve`` extra) are not installed."""


def status_of(error: BaseException) -> int:
    """The HTTP status of ``error``: its own for request errors, 400 for any other user error
    (the library's), 500 for a bug."""
    if isinstance(error, RequestError):
        return error.status
    if isinstance(error, OnnxvizError):
        return 400
    return 500


def one_line(error: BaseException) -> str:
    """``str(error)`` on one line (the error body is a single JSON line)."""
    text = " ".join(str(error).split())
    return text or type(error).__name__
