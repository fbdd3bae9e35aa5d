"""Rendering: colormaps, overlays on the original image, masks, LIME superpixels, grids,
side-by-side comparisons and the self-contained HTML report. Pure functions on numpy arrays;
images are RGB ``uint8`` (H, W, 3) throughout.
"""

from __future__ import annotations

from .boxes import box_grid, draw_box
from .colormaps import COLORMAPS, apply_colormap, colorbar, colormap_lut, normalize
from .compare import compare
from .grids import activation_grid, caption, filter_grid, tile
from .lime import chosen_superpixels, lime_image, resize_segments
from .masks import apply_mask, heatmap_mask
from .overlay import overlay, resize_heatmap
from .png import data_uri, encode_png, write_png
from .report import ReportImage, method_picture, render_report, superpixels_of, write_report

__all__ = [
    "COLORMAPS", "ReportImage", "activation_grid", "apply_colormap", "apply_mask", "box_grid",
    "caption",
    "chosen_superpixels", "colorbar", "colormap_lut", "compare", "data_uri", "draw_box",
    "encode_png",
    "filter_grid", "heatmap_mask", "lime_image", "method_picture", "normalize", "overlay",
    "render_report", "resize_heatmap", "resize_segments", "superpixels_of", "tile", "write_png",
    "write_report",
]
