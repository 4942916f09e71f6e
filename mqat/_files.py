"""Files written whole or not at all."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(path: str | Path, write: Callable[[IO[Any]], Any], *, text: bool = False) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``:
    readers see the old file or the new one, never a part. If ``write`` fails the temporary
    file is removed and the error raised; ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.NamedTemporaryFile("w" if text else "wb", dir=path.parent, delete=False,
                                      prefix=f".{path.name}.", suffix=".part")
    try:
        with tmp:
            write(tmp)
        os.replace(tmp.name, path)
    except BaseException:
        Path(tmp.name).unlink(missing_ok=True)
        raise
    return path
