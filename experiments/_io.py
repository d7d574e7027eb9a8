"""Atomic output: write to a temporary file in the target folder, then rename over the target.

An interrupted run therefore never leaves a half-written figure or JSON, and a file that existed
before the run is either fully replaced or left as it was. The temporary file is created private
(mode 0600); before the rename it gets the mode an ordinary ``open()`` would give a new file
(0666 minus the process umask, so 0644 under the usual umask 022).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def to_jsonable(obj: Any) -> Any:
    """Convert arrays and NumPy/JAX scalars to plain JSON types (``±inf`` stay ``±Infinity``)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "__array__") and not isinstance(obj, (str, bytes)):
        arr = np.asarray(obj)
        if arr.dtype == bool:
            return arr.tolist()
        if np.issubdtype(arr.dtype, np.integer):
            return arr.astype(np.int64).tolist()
        if np.issubdtype(arr.dtype, np.floating):
            return arr.astype(np.float64).tolist()
        return arr.tolist()
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, float) and math.isnan(obj):
        raise ValueError("refusing to write NaN to an experiment's JSON: a result must be a number")
    return obj


def _umask() -> int:
    """The process umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: Path, data: dict) -> None:
    text = json.dumps(to_jsonable(data), indent=1, allow_nan=True) + "\n"
    _atomic(Path(path), lambda h: h.write(text.encode()))


def write_figure(path: Path, fig: Any) -> None:
    _atomic(Path(path), lambda h: fig.savefig(h, format="png"))
