"""The gradient mode of an int8 file from the command line: ``--gradients`` and what it reports."""

from __future__ import annotations

import json

import numpy as np

from tests.cli.viz_cli_helpers import cli as _run


def test_gradients_flag_picks_the_mode_and_the_json_says_which(shapes_files, shapes_data,
                                                               tmp_path, capsys):
    import cv2

    images = shapes_data[0]
    img = tmp_path / "rect.png"
    cv2.imwrite(str(img), np.ascontiguousarray(images[0][..., ::-1]))
    qdq = shapes_files["qdq"]
    for mode in ("ste", "ste-logit", "surrogate"):
        code, out, err = _run(["explain", qdq, img, "-m", "saliency", "--gradients", mode,
                               "-o", tmp_path / mode, "--json"], capsys)
        assert code == 0, err
        (rec,) = [json.loads(line) for line in out.splitlines()]
        assert rec["extras"]["gradients"] == mode
    code, out, err = _run(["explain", shapes_files["qoperator"], img, "-m", "saliency",
                           "--gradients", "ste", "-o", tmp_path / "q"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "ste" in err
