"""One record per image x method: the same fields, values and order in every writer.

The record is built from an :class:`~onnxviz.Explanation` made by hand (no model needed) and
followed through each door's writer: the JSON Lines text of ``onnxviz explain --json``, a row of
the Ray engine's Parquet table, the server's v1 answer and v2 tensors. Each is read back and
compared with the record, and the record with the explanation it came from.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from onnxviz.explainers.base import Explanation
from onnxviz.results import EXPLANATION_FIELDS, FIELDS, Record, dumps


def _explanation() -> Explanation:
    return Explanation(
        heatmap=np.arange(12, dtype=np.float32).reshape(3, 4) / 11, raw=None,
        target=np.int64(3), label="tabby", score=np.float32(0.625), method="occlusion",
        params={"patch": (4, 4), "score": "probability", "seed": np.int64(7)},
        timings={"forward": 0.0123456789, "total": 0.5}, extras={"worst": [1, 2], "r2": 0.5})


def test_record_has_the_fields_in_order():
    e = _explanation()
    rec = Record.of("photos/cat.png", e, {"overlay": "out/cat.occlusion.overlay.png"})
    d = rec.to_dict()
    assert tuple(d) == FIELDS == ("image", "method", "target", "label", "score", "score_kind",
                                  "box", "region", "params", "outputs", "timings", "extras")
    assert d["box"] is None and d["region"] is None  # a classifier's class
    assert d == {**e.to_dict(), "image": "photos/cat.png",
                 "outputs": {"overlay": "out/cat.occlusion.overlay.png"}}
    assert d["target"] == 3 and type(d["target"]) is int and d["score"] == 0.625
    assert d["score_kind"] == "probability" and d["params"]["patch"] == [4, 4]
    assert d["timings"]["forward"] == 0.012346


def test_json_lines_round_trip():
    rec = Record.of("a.png", _explanation(), {"heatmap": "a.heatmap.png"})
    line = dumps(rec)
    assert "\n" not in line and list(json.loads(line)) == list(FIELDS)
    assert Record.from_dict(json.loads(line)) == rec


def test_nan_is_null_in_json():
    e = _explanation()
    e.score = np.float32("nan")
    assert json.loads(dumps(Record.of("a.png", e)))["score"] is None


def test_parquet_row_round_trip():
    pytest.importorskip("pyarrow")
    from onnxviz.distributed.store import explanation_table

    e = _explanation()
    recs = [Record.of("a.png", e, {"mask": "a.mask.png"}), Record.of("b.png", e)]
    table = explanation_table(recs, [e.heatmap, e.heatmap])
    assert table.column_names[:6] == ["image", "method", "target", "label", "score", "score_kind"]
    assert [Record.from_dict(row) for row in table.to_pylist()] == recs
    np.testing.assert_array_equal(table["heatmap"].combine_chunks().to_numpy_ndarray()[0],
                                  e.heatmap)


def test_server_answers_are_the_record():
    from onnxviz.serve.engine import Result
    from onnxviz.serve.protocol import v1_explanation, v2_response

    e = _explanation()
    rec = Record.of(None, e)
    answer = v1_explanation(Result(e, {"heatmap_png": "x"}), with_heatmap=False)
    assert answer == {**rec.to_dict(EXPLANATION_FIELDS), "heatmap_png": "x"}
    assert list(answer)[:len(EXPLANATION_FIELDS)] == list(EXPLANATION_FIELDS)
    v2 = v2_response("m", None, "occlusion", [Result(e, {})], ("target", "label", "score"))
    assert [t["data"] for t in v2["outputs"]] == [[rec.target], [rec.label], [rec.score]]
