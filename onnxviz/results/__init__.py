"""The results room: one record per image x method, and the writers every door shares.

An :class:`~onnxviz.Explanation` becomes one :class:`Record` (:mod:`.record`): the same fields,
under the same names, whichever door writes it — the JSON Lines of ``onnxviz explain --json``, the
rows of the Ray engine's Parquet tables, the server's answers, the gate's baseline manifest. The
pictures of a record (coloured heatmap, overlay, mask, LIME's superpixels) and the file names they
are written under come from :mod:`.files`; which images a list of arguments names (files, folders,
URIs) from :mod:`.images`.

This room stands on the library (explainers, viz) and below every door (``cli``, ``serve``,
``distributed``, ``gate``): the doors import it, never each other (docs/internals.md).
"""

from __future__ import annotations

from .files import (PICTURES, PNGS, Render, base_stem, out_dir, pictures, safe_stem, shared_stems,
                    stem_of, stems, target_stem, write_box_grid, write_explanation_pngs)
from .images import IMAGE_SUFFIXES, expand_images, folder_images, printable
from .record import EXPLANATION_FIELDS, FIELDS, Record, dumps, strict_json, table

__all__ = ["EXPLANATION_FIELDS", "FIELDS", "IMAGE_SUFFIXES", "PICTURES", "PNGS", "Record", "Render",
           "base_stem", "dumps", "expand_images", "folder_images", "out_dir", "pictures",
           "printable", "safe_stem", "shared_stems", "stem_of", "stems", "strict_json", "table",
           "target_stem", "write_box_grid", "write_explanation_pngs"]
