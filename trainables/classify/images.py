"""An image folder read into tensors: ``root/<class>/<image>`` (one folder, split by seed) or
``root/train|val|test/<class>/<image>``; classes are the sorted subfolder names, as in
torchvision's ``ImageFolder``. Read with Pillow, resized, cached as one uint8 tensor per split."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import cachefile

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
SPLITS = ("train", "val", "test")


@dataclass
class Images:
    """A split: images (N, C, H, W) uint8 and their class indices."""

    images: torch.Tensor
    labels: torch.Tensor


def _files(folder: Path) -> dict[str, list[Path]]:
    """Class name -> its image files, both sorted; ValueError where there are none."""
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    found = {c.name: sorted(f for f in c.rglob("*") if f.suffix.lower() in EXTENSIONS) for c in classes}
    found = {name: files for name, files in found.items() if files}
    if len(found) < 2:
        raise ValueError(f"task.data: {folder} needs a subfolder per class holding images ({sorted(EXTENSIONS)}), "
                         f"but {len(found)} such subfolder(s) were found")
    return found


def layout(root: Path) -> dict[str, Path] | None:
    """The split folders where ``root`` has ``train/``, ``val/`` and ``test/``; None where it is
    one folder of classes (split by seed); ValueError where only some split folders exist."""
    present = [s for s in SPLITS if (root / s).is_dir()]
    if not present:
        return None
    if len(present) < len(SPLITS):
        raise ValueError(f"task.data: {root} has {present} but not {[s for s in SPLITS if s not in present]}: "
                         "give all three split folders, or one folder of class subfolders to split by seed")
    return {s: root / s for s in SPLITS}


def listing(root: Path | str) -> dict[str, list[tuple[str, int]]]:
    """What the images are, cheaply: each split's (or the one folder's) files with their sizes."""
    root = Path(root)
    folders = layout(root) or {"all": root}
    return {name: [(str(f.relative_to(root)), f.stat().st_size) for files in _files(folder).values() for f in files]
            for name, folder in folders.items()}


def listing_hash(root: Path | str) -> str:
    return hashlib.sha256(json.dumps(listing(root), sort_keys=True).encode()).hexdigest()[:16]


def _read(files: dict[str, list[Path]], classes: list[str], size: int, channels: int) -> Images:
    from PIL import Image

    mode = "L" if channels == 1 else "RGB"
    images, labels = [], []
    for name, paths in files.items():
        if name not in classes:
            raise ValueError(f"task.data: class {name!r} is in one split folder but not in train/")
        for path in paths:
            try:
                with Image.open(path) as image:
                    pixels = np.asarray(image.convert(mode).resize((size, size), Image.BILINEAR))
            except OSError as err:  # a truncated or non-image file: bad input, named
                raise ValueError(f"task.data: cannot read {path}: {err}") from None
            images.append(pixels.reshape(size, size, channels))
            labels.append(classes.index(name))
    stacked = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return Images(stacked, torch.tensor(labels))


def _split_by_seed(data: Images, *, val: float, test: float, seed: int) -> dict[str, Images]:
    order = torch.randperm(len(data.labels), generator=torch.Generator().manual_seed(seed))
    n_test, n_val = round(test * len(order)), round(val * len(order))
    parts = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
    return {s: Images(data.images[i], data.labels[i]) for s, i in parts.items()}


def read_folder(root: Path | str, *, size: int, channels: int, val: float, test: float, seed: int,
                cache_dir: Path) -> tuple[dict[str, Images], list[str]]:
    """Every split of the folder and the class names, from a verified cache once read."""
    root = Path(root)
    key = hashlib.sha256(json.dumps({"listing": listing_hash(root), "size": size, "channels": channels,
                                     "val": val, "test": test, "seed": seed}).encode()).hexdigest()[:16]
    folders = layout(root)
    classes = sorted(_files(folders["train"] if folders else root))

    def read() -> dict:
        if folders:
            splits = {s: _read(_files(f), classes, size, channels) for s, f in folders.items()}
        else:
            splits = _split_by_seed(_read(_files(root), classes, size, channels), val=val, test=test, seed=seed)
        return {s: (d.images, d.labels) for s, d in splits.items()}

    path = Path(cache_dir) / "classify" / f"{root.name}-{key}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    saved = cachefile.rendered(path, read, save=lambda data, p: torch.save(data, p),
                               load=lambda p: torch.load(p, weights_only=True))
    return {s: Images(*saved[s]) for s in SPLITS}, classes
