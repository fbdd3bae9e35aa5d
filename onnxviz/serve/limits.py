"""The server's limits: sizes, queue, time, batching and the caps on expensive method options.

Every limit has a command-line flag (``onnxviz serve --help``). The caps bound the options whose
cost grows without limit (occlusion at stride 1 runs the model once per pixel; LIME and RISE run it
once per sample): a request past a cap is a 400 naming the cap and the flag that raises it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import OptionError

#: ``{option: ("min" | "max", bound)}``: the default caps, by the registry's option names.
DEFAULT_CAPS: dict[str, tuple[str, float]] = {
    "stride": ("min", 4),           # occlusion: model runs grow with 1 / stride²
    "num_samples": ("max", 2000),   # LIME
    "num_masks": ("max", 8000),     # RISE
    "samples": ("max", 100),        # SmoothGrad
    "steps": ("max", 256),          # Integrated Gradients
    "batch_size": ("max", 64),      # images per ONNX Runtime call, i.e. memory
}

#: Options a request may not set, and why (checked before any value is converted).
REFUSED = {
    "progress": "progress bars are for the command line",
    "segments": "superpixels from a file on the server are for the command line; "
                "use segmentation and its options",
}


@dataclass(frozen=True)
class Limits:
    """What one server accepts and how it batches.

    Attributes:
        max_body: bytes of one request body.
        max_pixels: width x height of one image, read from its header before decoding.
        max_queue: images waiting for a batch; past it, 503 with ``Retry-After``.
        timeout: seconds a request may take from arrival to answer (504 after).
        max_batch: images per explainer call.
        max_wait: seconds the first image of a batch waits for others.
        workers: batches run at once (threads; ONNX Runtime releases the GIL).
        caps: ``{option: ("min" | "max", bound)}`` (see :data:`DEFAULT_CAPS`).
    """

    max_body: int = 32 * 2**20
    max_pixels: int = 25_000_000
    max_queue: int = 256
    timeout: float = 60.0
    max_batch: int = 16
    max_wait: float = 0.005
    workers: int = 1
    caps: dict = field(default_factory=lambda: dict(DEFAULT_CAPS))

    def __post_init__(self):
        for name in ("max_body", "max_pixels", "max_queue", "max_batch", "workers"):
            if int(getattr(self, name)) < 1:
                raise OptionError(f"--{name.replace('_', '-')} must be >= 1, "
                                  f"got {getattr(self, name)}")
        if not self.timeout > 0:
            raise OptionError(f"--timeout must be > 0 seconds, got {self.timeout}")
        if not 0 <= self.max_wait <= 10:
            raise OptionError(f"--max-wait-ms must be in [0, 10000], got {self.max_wait * 1000:g}")


def parse_caps(items: list[str] | None) -> dict[str, tuple[str, float]]:
    """The default caps with ``--cap OPTION=VALUE`` overrides applied."""
    caps = dict(DEFAULT_CAPS)
    for item in items or ():
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in caps:
            raise OptionError(f"--cap expects OPTION=VALUE with OPTION one of "
                              f"{', '.join(caps)}, got {item!r}")
        try:
            bound = float(value)
        except ValueError:
            raise OptionError(f"--cap {name}= expects a number, got {value!r}") from None
        if not bound > 0:
            raise OptionError(f"--cap {name}= must be > 0, got {value!r}")
        caps[name] = (caps[name][0], bound)
    return caps


def check_options(method: str, kwargs: dict, caps: dict) -> None:
    """Refuse converted option values past the caps (:class:`OptionError`)."""
    for opt, value in kwargs.items():
        if opt not in caps:
            continue
        kind, bound = caps[opt]
        values = value if isinstance(value, (tuple, list)) else (value,)
        for v in values:
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                continue  # not a number: the explainer says what it expects
            if (kind == "min" and v < bound) or (kind == "max" and v > bound):
                word = "at least" if kind == "min" else "at most"
                raise OptionError(f"{method} option {opt}={value!r} is past this server's cap: "
                                  f"{opt} must be {word} {bound:g} (onnxviz serve --cap "
                                  f"{opt}=N changes it)")
