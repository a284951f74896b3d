"""Writing files so that readers never see half of one: the one atomic-write helper every layer uses.

A file is written to a temporary name in its own folder and renamed over the target when complete, so a crash,
Ctrl-C or full disk leaves the old file (or none), never a truncated one. One permission policy: the file gets
the permissions of a plain `open(path, "w")` (0666 less the umask), whatever the writer, because model folders,
reports, exports and caches are all meant to be shared.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from traits.errors import PathError


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call write(tmp) on a temporary file beside path, then rename it to path; returns path.

    The temporary name ends in path's suffix, so writers that pick a format by suffix (PIL, pandas) work. On any
    error the temporary file is removed and the old path is left untouched. The folder must exist.
    """
    path = Path(path)
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    except OSError as exc:
        raise PathError(f"Cannot write {path} ({exc.strerror or exc}).",
                        "Pass a path in a folder you may write to.") from exc
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        # A full disk (or a folder gone meanwhile): say so instead of a traceback; the old file is untouched.
        raise PathError(f"Could not write {path} ({exc.strerror or exc}); nothing was changed.",
                        "Free some disk space (or write to another disk) and run the command again.") from exc
    except BaseException:  # Ctrl-C included: never leave the temporary file behind, then re-raise
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def strict_json(data: Any) -> Any:
    """A copy of data that strict JSON can hold: NaN and infinities (Python or NumPy floats) become None (null),
    NumPy numbers plain numbers, tuples lists; JSON readers other than Python's reject NaN."""
    if isinstance(data, dict):
        return {str(k) if not isinstance(k, str) else k: strict_json(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [strict_json(v) for v in data]
    if isinstance(data, bool) or data is None or isinstance(data, str):
        return data
    if hasattr(data, "item") and callable(data.item) and getattr(data, "shape", None) == ():
        data = data.item()  # a NumPy or torch scalar
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    return data


def dumps_strict(data: Any, indent: int | None = 2) -> str:
    """Strict JSON text (no NaN or Infinity: they are written as null); other objects as their str()."""
    return json.dumps(strict_json(data), indent=indent, default=str, allow_nan=False)


def write_json_atomic(path: str | os.PathLike, data: Any, indent: int | None = 2) -> Path:
    """Write JSON atomically (values JSON cannot hold are written as their str())."""
    return write_text_atomic(path, json.dumps(data, indent=indent, default=str))


def output_file(path: str | os.PathLike, option: str = "--out") -> Path:
    """path as a file to write: refused (ConfigError) when it is a folder or its folder does not exist."""
    path = Path(path)
    if path.is_dir():
        raise PathError(f"{path} is a folder.", f"Pass a file name for {option}, e.g. traits.csv.")
    if not path.parent.exists():
        raise PathError(f"The folder {path.parent} for {path.name} does not exist.",
                          f"Create it, or pass another {option}.")
    if not path.parent.is_dir():
        raise PathError(f"{path.parent} is a file, so {path.name} cannot be written inside it.",
                        f"Pass an {option} path in an existing folder.")
    return path


def make_folder(path: str | os.PathLike, what: str = "output folder", create: bool = True) -> Path:
    """mkdir -p with a clear PathError when a file stands where a folder must be (or it cannot be created).

    create=False only checks (nothing is left behind when a later step fails).
    """
    path = Path(path)
    try:
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    except OSError as exc:  # a name the OS refuses (too long, ...)
        raise PathError(f"The {what} {path} cannot be used ({exc.strerror or exc}).",
                        "Pass a shorter path in a folder you may write to.") from exc
    if blocker is not None:
        raise PathError(f"The {what} {path} cannot be created: {blocker} is a file, not a folder.",
                        "Pass another path, or move that file out of the way.")
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PathError(f"The {what} {path} cannot be created ({exc.strerror or exc}).",
                            "Pass a folder you may write to.") from exc
    return path
