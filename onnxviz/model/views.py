"""What a :class:`~onnxviz.model.Model` shows of its graph by name: its layers (friendly names,
token grids), any tensor by its tensor, node or layer name, and copies of the graph that also
output intermediate tensors.

Kept apart from :mod:`.core` as a mixin of ``Model`` (like :class:`.numeric.NumericForm`); it
reads the model's ``proto``, ``_shapes``, ``_lock``, ``_first_use`` and caches ``_exposed``,
``_layers``, ``_tensors`` and ``_names``, all set up by ``Model.__init__``.
"""

from __future__ import annotations

import onnx

from ..errors import LayerError, guard
from . import layers as _layers


class GraphViews:
    """Layers and tensors of a model's graph by name (mixed into ``Model``)."""

    def layers(self, grad: bool = False) -> list:
        """Every 4-D activation a node produces, and the token sequences ``[N, T, C]`` of vision
        transformers with their patch grid (``Layer.grid``, ``Layer.prefix``; see
        :mod:`onnxviz.model.tokens`), with friendly names (see :mod:`.layers`).

        Args:
            grad: also fill ``Layer.grad_reachable`` (whether gradients of the score reach the
                layer, from :func:`onnxviz.autodiff.reachable`; a graph walk, done once).
        """
        with self._first_use("_layers"):
            if self._layers is None:
                from . import tokens as _tokens

                # sizes static inference left open (TorchScript transformers) come from the probe
                shapes = {o: self.shape_of(o) for n in self.proto.graph.node for o in n.output
                          if o}
                found = _layers.collect(self.proto, shapes, keep=lambda shape:
                                        _tokens.token_grid(self, shape) is not None)
                self._layers = _tokens.with_grids(self, found)
            if grad and self._layers and self._layers[0].grad_reachable is None:
                from dataclasses import replace

                try:
                    from ..autodiff import reachable
                except ImportError:  # autodiff not available: leave the flags unknown
                    return list(self._layers)
                flows = reachable(self.proto, self.score_output)
                self._layers = [replace(lay, grad_reachable=bool(flows.get(lay.tensor, False)))
                                for lay in self._layers]
            return list(self._layers)

    @guard("layer")
    def layer(self, name: str):
        """The layer called ``name`` (friendly name, tensor name or node name).

        Raises:
            LayerError: unknown name; lists the closest layer names.
        """
        if self._tensors is None:
            self._tensors = _layers.collect(self.proto, self._shapes, all_tensors=True)
        try:
            return _layers.find(self.layers(), name)
        except LayerError:
            by_tensor = [lay for lay in self._tensors if lay.tensor == name or lay.name == name]
            if by_tensor:
                return by_tensor[0]
            raise

    def _with_outputs(self, names: tuple[str, ...], keep: bool = True) -> onnx.ModelProto:
        """A copy of the graph whose outputs also include ``names`` (cached unless not
        ``keep``)."""
        have = {o.name for o in self.proto.graph.output}
        extra = tuple(n for n in names if n not in have)
        if not extra:
            return self.proto
        key = tuple(sorted(extra))
        with self._lock:
            if keep and key in self._exposed:
                self._exposed.move_to_end(key)
                return self._exposed[key]
        known = {vi.name: vi for vi in self.proto.graph.value_info}
        proto = onnx.ModelProto()
        proto.CopyFrom(self.proto)
        for n in key:
            vi = onnx.ValueInfoProto()
            if n in known:
                vi.CopyFrom(known[n])
                shape = vi.type.tensor_type.shape
                if len(shape.dim):
                    shape.dim[0].Clear()
                    shape.dim[0].dim_param = "N"
            else:
                vi.name = n
            proto.graph.output.append(vi)
        if not keep:
            return proto
        with self._lock:
            self._exposed[key] = proto
            while len(self._exposed) > 8:
                self._exposed.popitem(last=False)
        return proto

    def _tensor_name(self, name: str) -> str:
        if name in self._all_tensor_names():
            return name
        return self.layer(name).tensor

    def _all_tensor_names(self) -> set[str]:
        if not hasattr(self, "_names"):
            g = self.proto.graph
            self._names = {o for n in g.node for o in n.output} | {i.name for i in g.input}
        return self._names
