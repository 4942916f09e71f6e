"""Detection data in COCO format: an image folder and an ``instances.json`` per split, read with
pycocotools into the task's :class:`Scenes` (images resized to the task's square size, boxes
scaled alike; crowd annotations left out, as COCO's own evaluation ignores them), cached by a
hash of the files. ``write_coco`` writes scenes out the same way (a rendered set, shared)."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import torch

from .. import cachefile
from .scenes import Scenes


def _load(annotations: Path):
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        return COCO(str(annotations))


def categories(annotations: str | Path) -> list[tuple[int, str]]:
    """The file's categories, ``(id, name)`` sorted by id: class ``k`` of the task is the k-th."""
    data = json.loads(Path(annotations).read_text())
    return sorted((int(c["id"]), str(c["name"])) for c in data.get("categories", []))


def files_hash(images: str | Path, annotations: str | Path) -> str:
    """What a COCO split is, cheaply: the annotations' bytes and the image files' names and sizes."""
    digest = hashlib.sha256(Path(annotations).read_bytes())
    for path in sorted(Path(images).rglob("*")):
        if path.is_file():
            digest.update(f"{path.relative_to(images)}:{path.stat().st_size}".encode())
    return digest.hexdigest()[:16]


def read_coco(images: str | Path, annotations: str | Path, *, size: int, class_ids: list[int]) -> Scenes:
    """Every image of the annotations file, in image-id order, at ``size`` x ``size``."""
    from PIL import Image

    coco = _load(Path(annotations))
    index = {category: k for k, category in enumerate(class_ids)}
    ids = sorted(coco.getImgIds())
    per_image = []
    for image_id in ids:
        info = coco.loadImgs(image_id)[0]
        path = Path(images) / info["file_name"]
        if not path.is_file():
            raise ValueError(f"task.coco: image {info['file_name']!r} of {annotations} is not in {images}")
        with Image.open(path) as image:
            width, height = image.size
            pixels = np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR))
        sx, sy = size / width, size / height
        boxes, labels = [], []
        for a in coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=False)):
            if a["category_id"] not in index:
                raise ValueError(f"task.coco: {annotations} uses category {a['category_id']}, which is not among "
                                 f"the training split's {class_ids}")
            x, y, w, h = a["bbox"]
            if w > 0 and h > 0:
                boxes.append([x * sx, y * sy, (x + w) * sx, (y + h) * sy])
                labels.append(index[a["category_id"]])
        per_image.append((pixels, boxes, labels))
    most = max([len(labels) for _, _, labels in per_image] + [1])
    out = Scenes(torch.zeros(len(ids), 3, size, size, dtype=torch.uint8), torch.zeros(len(ids), most, 4),
                 torch.full((len(ids), most), -1, dtype=torch.long))
    for i, (pixels, boxes, labels) in enumerate(per_image):
        out.images[i] = torch.from_numpy(pixels.copy()).permute(2, 0, 1)
        if labels:
            out.boxes[i, :len(boxes)] = torch.tensor(boxes)
            out.labels[i, :len(labels)] = torch.tensor(labels)
    return out


def cached_coco(images: str | Path, annotations: str | Path, *, size: int, class_ids: list[int],
                cache_dir: str | Path) -> Scenes:
    """:func:`read_coco`, from a verified cache file once read (trials only read the cache)."""
    key = hashlib.sha256(json.dumps([files_hash(images, annotations), size, class_ids]).encode()).hexdigest()[:16]
    path = Path(cache_dir) / "coco" / f"{key}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    return cachefile.rendered(path, lambda: read_coco(images, annotations, size=size, class_ids=class_ids),
                              save=lambda scenes, to: torch.save({"images": scenes.images, "boxes": scenes.boxes,
                                                                  "labels": scenes.labels}, to),
                              load=lambda at: Scenes(**torch.load(at, weights_only=True)))


def write_coco(scenes: Scenes, folder: str | Path, classes: list[str], *, first_id: int = 1) -> Path:
    """``folder/images/<n>.png`` and ``folder/instances.json`` for ``scenes``; category ids
    start at ``first_id`` (COCO's own start at 1). Returns the annotations file."""
    from PIL import Image

    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(len(scenes)):
        name = f"{i:06d}.png"
        Image.fromarray(scenes.images[i].permute(1, 2, 0).numpy()).save(folder / "images" / name)
        height, width = scenes.images.shape[-2:]
        images.append({"id": i + 1, "file_name": name, "width": int(width), "height": int(height)})
        for box, label in zip(*scenes.objects(i)):
            x1, y1, x2, y2 = box.tolist()
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": int(label) + first_id,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    categories = [{"id": k + first_id, "name": name} for k, name in enumerate(classes)]
    path = folder / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path
