"""Make ``docs/demo.png``, the README's picture of ``onnxviz demo``'s output.

    python tools/gen_demo_picture.py                    # runs the demo into a temporary folder
    python tools/gen_demo_picture.py --from onnxviz-demo  # uses an existing demo folder

Takes the demo's ``compare.png`` (the cat and every method's overlay, side by side) and stores it
as a 256-colour PNG (median-cut palette, Floyd-Steinberg dithering) so it stays under 500 KB.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "docs" / "demo.png"
LIMIT = 500_000


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="src", type=Path,
                    help="an existing `onnxviz demo` output folder")
    args = ap.parse_args(argv)
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        src = args.src
        if src is None:
            src = Path(tmp) / "demo"
            subprocess.run([sys.executable, "-m", "onnxviz.cli", "demo", "--out", str(src)],
                           check=True)
        img = Image.open(src / "compare.png").convert("RGB")
        palette = img.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        img.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG).save(OUT, optimize=True)
    size = OUT.stat().st_size
    print(f"{OUT} {img.width}x{img.height}, {size / 1000:.0f} KB")
    return 0 if size < LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
