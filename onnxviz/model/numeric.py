"""What a :class:`~onnxviz.model.Model` knows of its tensors' sizes and number formats.

Kept apart from :mod:`.core` as a mixin of ``Model``: the sizes the probe of :mod:`.shapes` fills
in where static inference stops, and the precision (float32, float16, int8 forms) that decides how
gradients are defined (:mod:`.precision`). Both are computed on first use, by one thread when
several ask at once, and cached on the model.
"""

from __future__ import annotations

import onnx

from ..errors import ResourceError

#: The largest batch an option or ``forward(..., batch_size=)`` may ask for (the methods' range
#: of ``batch_size``, :data:`onnxviz.explainers.ranges.RANGES`, is read from here).
MAX_BATCH = 4096


def check_batch_size(value) -> None:
    """Refuse a ``batch_size`` that is not an integer in [1, :data:`MAX_BATCH`]."""
    import numpy as np

    from ..errors import OptionError

    if not isinstance(value, (bool, np.bool_)) and not isinstance(value, (int, np.integer)):
        raise OptionError(f"batch_size must be an integer in [1, {MAX_BATCH}], got "
                          f"{type(value).__name__} {value!r}"[:300])
    if isinstance(value, (bool, np.bool_)) or not 1 <= value <= MAX_BATCH:
        raise OptionError(f"batch_size must be an integer in [1, {MAX_BATCH}], got {value!r}")


class NumericForm:
    """Sizes and number formats of a model's tensors (mixed into ``Model``)."""

    def shape_of(self, tensor: str) -> tuple:
        """Shape of a tensor (batch first), () when unknown.

        Static inference first; where it leaves a size open (TorchScript transformers compute
        token counts from ``Shape``), the probe of :meth:`shape_facts` fills it: ints, ``"N"``
        for the batch, ``"k*N"`` for a multiple of it.
        """
        s = self._shapes.get(tensor, ())
        if s and all(isinstance(d, int) for d in s[1:]) and (
                isinstance(s[0], int) or s[0] == self.input.batch):
            return s
        if tensor not in self._shapes and not self._produced(tensor):
            return s
        try:
            found = self.shape_facts().symbols.get(tensor)
        except ResourceError:  # the probe would not fit the memory budget: what inference knows
            return s
        return tuple(found) if found is not None else s

    def _produced(self, tensor: str) -> bool:
        names = self.__dict__.get("_node_outputs")
        if names is None:
            names = {o for n in self.proto.graph.node for o in n.output if o}
            self.__dict__["_node_outputs"] = names
        return tensor in names

    def shape_facts(self):
        """Sizes and integer values static inference left open, read by a probe run (cached).

        See :mod:`onnxviz.model.shapes`: every size except those following the batch is static
        for an image model, and the gradient rules use these facts.
        """
        facts = self.__dict__.get("_shape_facts")
        if facts is None:
            from .shapes import shape_facts

            with self._first_use("_shape_facts"):  # one probe, however many threads ask
                facts = self.__dict__.get("_shape_facts")
                if facts is None:
                    try:
                        facts = shape_facts(self.proto, self.input.name, self.input.shape,
                                            self.input.dtype, fixed_batch=self.fixed_batch)
                    except ResourceError as e:  # refused before running: again, unsized
                        facts = e
                    self.__dict__["_shape_facts"] = facts
        if isinstance(facts, ResourceError):
            raise ResourceError(str(facts))
        return facts

    @property
    def precision(self):
        """The :class:`~onnxviz.model.precision.Precision` of the file: float32/float16/mixed/
        int8, the quantization form, and the gradient mode gradient methods use."""
        found = self.__dict__.get("_precision")
        if found is None:
            from .precision import detect

            with self._first_use("_precision"):
                found = self.__dict__.get("_precision")
                if found is None:
                    found = detect(self.proto, self.input.dtype,
                                   self.__dict__.get("_gradient_option"))
                    self.__dict__["_precision"] = found
        return found

    @property
    def gradient_mode(self) -> str:
        """How gradients are defined: ``"exact"``, ``"upcast"`` (float16), ``"ste-logit"``,
        ``"ste"`` or ``"surrogate"`` (int8). Set it to one of the last three or None (the
        default)."""
        return self.precision.gradients

    @gradient_mode.setter
    def gradient_mode(self, mode: str | None) -> None:
        from .precision import detect

        found = detect(self.proto, self.input.dtype, mode)  # raises PrecisionError
        with self._lock:
            self.__dict__.update(_gradient_option=mode, _precision=found)
            self.__dict__.pop("_gradient_cache", None)
            self.__dict__.pop("_gradient_source", None)
            self.__dict__.pop("_gradient_of", None)

    def gradient_of(self) -> str:
        """The tensor gradient methods differentiate for the score: ``score_output``, or in
        mode ``"ste-logit"`` the logit before the quantizers that round and clip the file's
        output (:func:`onnxviz.model.saturation.before_output_quantizers`)."""
        of = self.__dict__.get("_gradient_of")
        if of is None:
            of = self.score_output
            if self.gradient_mode == "ste-logit":
                from .saturation import before_output_quantizers

                of, _ = before_output_quantizers(self.gradient_source(), of)
            self.__dict__["_gradient_of"] = of
        return of

    def gradient_source(self) -> onnx.ModelProto:
        """The graph gradient methods differentiate (``proto`` itself for float32 models)."""
        src = self.__dict__.get("_gradient_source")
        if src is None:
            from .precision import gradient_source

            with self._first_use("_gradient_source"):
                src = self.__dict__.get("_gradient_source")
                if src is None:
                    src = gradient_source(self.proto, self.precision)
                    self.__dict__["_gradient_source"] = src
        return src

    def sample_bytes(self, grad: bool = False) -> int:
        """Estimated memory one image needs in a run (bytes), from the static tensor sizes:
        ONNX Runtime reuses buffers, so a forward run holds about the input plus a few of the
        largest tensors; a gradient run keeps every activation and its gradient."""
        key = "_sample_bytes"
        est = self.__dict__.get(key)
        if est is None:
            import numpy as np

            sizes = []
            for vi in list(self.proto.graph.value_info) + list(self.proto.graph.output):
                dims = vi.type.tensor_type.shape.dim
                if len(dims) < 2:
                    continue
                per = 1
                for d in list(dims)[1:]:
                    per *= d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1
                sizes.append(per * 4)
            inp = int(np.prod(self.input.shape)) * 4
            biggest = max(sizes, default=inp * 4)
            est = (inp + 4 * biggest, 2 * (inp + max(sum(sizes), 4 * biggest)))
            self.__dict__[key] = est
        return est[1] if grad else est[0]

    def fit_batch(self, requested: int | None, grad: bool = False, what: str = "a batch") -> int:
        """``requested`` (default the model's batch size) cut to what the memory budget holds
        (:func:`onnxviz.limits.fit_batch`); refuses when one image does not fit."""
        from .. import limits

        if requested is not None:
            check_batch_size(requested)
        requested = int(requested or self.batch_size or 32)
        return limits.fit_batch(requested, self.sample_bytes(grad),
                                what=f"{what} of {self.input.shape} inputs")
