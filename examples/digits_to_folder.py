"""Write scikit-learn's bundled handwritten digits (1,797 real 8x8 scans) as an image folder.

    python examples/digits_to_folder.py data/digits

makes ``data/digits/<0-9>/<index>.png``: one folder of class subfolders, the layout the
built-in ``classify`` task reads (it splits it by seed into train, val and test; a folder with
``train/``, ``val/`` and ``test/`` of its own is read as it is).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def write_digits(folder: Path) -> int:
    """The digits as 8-bit grey PNGs (their 0-16 levels scaled to 0-255); returns how many."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for index, (image, label) in enumerate(zip(digits.images, digits.target)):
        path = folder / str(label) / f"{index:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(image * 255 / 16).astype(np.uint8), mode="L").save(path)
    return len(digits.target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="where to write the class subfolders")
    folder = parser.parse_args().folder
    print(f"{write_digits(folder)} digits written under {folder}")


if __name__ == "__main__":
    main()
