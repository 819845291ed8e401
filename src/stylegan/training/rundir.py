"""Run directories (`runs/00003-mnist-cpu-.../`), the tee'd log, time / memory formatting."""
from __future__ import annotations

import os
import re
import resource
import sys
import time
from pathlib import Path
from typing import IO, Optional

_RUN_ID = re.compile(r"^(\d+)")


def next_run_dir(outdir: str | os.PathLike, desc: str) -> Path:
    """Create and return `outdir/NNNNN-desc` with NNNNN one more than the highest existing id.

    Safe against a concurrent caller picking the same number (mkdir is atomic; we retry).
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    desc = re.sub(r"[^A-Za-z0-9._+=-]+", "_", desc).strip("_") or "run"
    while True:
        ids = [int(m.group(1)) for m in (_RUN_ID.match(p.name) for p in outdir.iterdir()) if m]
        run_id = max(ids, default=-1) + 1
        path = outdir / f"{run_id:05d}-{desc}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


class Tee:
    """Copies everything written to stdout / stderr into a log file while active."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._file: Optional[IO[str]] = None
        self._stdout = self._stderr = None

    def __enter__(self) -> "Tee":
        self._file = open(self.path, "a", encoding="utf-8")
        self._stdout, self._stderr = sys.stdout, sys.stderr
        sys.stdout = _TeeStream(self._stdout, self._file)
        sys.stderr = _TeeStream(self._stderr, self._file)
        return self

    def __exit__(self, *exc) -> None:
        sys.stdout, sys.stderr = self._stdout, self._stderr
        if self._file is not None:
            self._file.close()
            self._file = None


class _TeeStream:
    def __init__(self, stream, file):
        self._stream, self._file = stream, file

    def write(self, text: str) -> int:
        self._file.write(text)
        self._file.flush()
        return self._stream.write(text)

    def flush(self) -> None:
        self._file.flush()
        self._stream.flush()

    def __getattr__(self, name):
        return getattr(self._stream, name)


def format_time(seconds: float) -> str:
    """12s, 3m 05s, 2h 07m, 1d 04h (as the official tick lines)."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {(s // 60) % 60:02d}m"
    return f"{s // 86400}d {(s // 3600) % 24:02d}h"


def cpu_memory_gb() -> float:
    """Resident set size of this process in GiB (peak when the current value is unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 30
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return peak / (2 ** 30 if sys.platform == "darwin" else 2 ** 20)


def now() -> float:
    return time.time()


__all__ = ["next_run_dir", "Tee", "format_time", "cpu_memory_gb"]
