"""A minimal PLY reader and writer for triangle meshes (ASCII and binary little-endian)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
          "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
          "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}


def _header(raw: bytes, path: Path):
    end = raw.find(b"end_header")
    if not raw.startswith(b"ply") or end < 0:
        raise ValueError(f"{path} is not a PLY file")
    lines = raw[:end].decode("ascii", "replace").splitlines()
    body = raw[raw.index(b"\n", end) + 1:]
    fmt, elements = None, []
    for line in lines:
        words = line.split()
        if not words:
            continue
        if words[0] == "format":
            fmt = words[1]
        elif words[0] == "element":
            elements.append({"name": words[1], "count": int(words[2]), "props": []})
        elif words[0] == "property":
            elements[-1]["props"].append(words[1:])
    if fmt not in ("ascii", "binary_little_endian"):
        raise ValueError(f"{path}: PLY format {fmt!r} is not supported (ascii or binary_little_endian)")
    return fmt, elements, body


def read_ply(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) as float64 and triangles (F, 3) of a PLY mesh."""
    path = Path(path)
    fmt, elements, body = _header(path.read_bytes(), path)
    vertices = faces = None
    if fmt == "ascii":
        rows = iter(body.decode("ascii").split("\n"))
        for el in elements:
            data = [next(rows).split() for _ in range(el["count"])]
            if el["name"] == "vertex":
                names = [p[-1] for p in el["props"]]
                table = np.array(data, dtype=float)
                vertices = table[:, [names.index(a) for a in "xyz"]]
            elif el["name"] == "face":
                faces = np.array([[int(v) for v in row[1:4]] for row in data])
    else:
        offset = 0
        for el in elements:
            if el["name"] == "face":
                count_t, index_t = (_TYPES[t] for t in el["props"][0][1:3])
                dtype = np.dtype([("n", "<" + count_t), ("i", "<" + index_t, 3)])
                table = np.frombuffer(body, dtype=dtype, count=el["count"], offset=offset)
                if (table["n"] != 3).any():
                    raise ValueError(f"{path}: only triangle meshes are supported")
                faces = table["i"].astype(np.int64)
                offset += dtype.itemsize * el["count"]
                continue
            dtype = np.dtype([(p[-1], "<" + _TYPES[p[0]]) for p in el["props"]])
            table = np.frombuffer(body, dtype=dtype, count=el["count"], offset=offset)
            offset += dtype.itemsize * el["count"]
            if el["name"] == "vertex":
                vertices = np.stack([table[a].astype(np.float64) for a in "xyz"], axis=1)
    if vertices is None or faces is None:
        raise ValueError(f"{path} has no vertex or face element")
    return vertices, faces


def write_ply(path: str | Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write an ASCII PLY triangle mesh."""
    lines = ["ply", "format ascii 1.0", f"element vertex {len(vertices)}",
             "property float x", "property float y", "property float z",
             f"element face {len(faces)}", "property list uchar int vertex_indices", "end_header"]
    lines += [" ".join(f"{c:.6f}" for c in v) for v in vertices]
    lines += ["3 " + " ".join(str(int(i)) for i in f) for f in faces]
    Path(path).write_text("\n".join(lines) + "\n")
