"""Small helpers with no stylegan imports, shared by training, metrics and the CLI."""
from __future__ import annotations


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


__all__ = ["format_time"]
