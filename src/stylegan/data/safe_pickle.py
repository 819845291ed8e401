"""A restricted unpickler for data pickles: plain containers and numpy arrays, nothing else.

CIFAR-10's python archive stores its batches as pickles, and NVIDIA's ``dataset_tool.py`` reads
them with ``pickle.load(file, encoding='latin1')``, which imports and calls whatever a (doctored)
file names. Here :meth:`DataUnpickler.find_class` resolves only numpy's array and dtype
reconstruction (``_reconstruct``, ``ndarray``, ``dtype``, ``scalar``) and ``OrderedDict``; dicts,
lists, tuples, strings and numbers need no global at all. Anything else is refused, before it is
looked up, with an :class:`UnsafePickleError` naming it; persistent ids are refused too.

Why not :class:`stylegan.io.official.unpickler.RestrictedUnpickler`: that one is the boundary
for network pickles (it also admits torch rebuild functions and record stand-ins, which a data
pickle never needs) and it decodes Python 2 strings as ASCII, while the CIFAR batches are Python
2 pickles whose array bytes are ``str`` objects that only ``latin1`` maps back to bytes (the
official tool's ``encoding='latin1'``; numpy's ``ndarray.__setstate__`` accepts them in that form).
The entries of the table are inert: an ndarray of a non-object dtype holds bytes only, and an
object array can hold only what the pickle itself built, i.e. more of the same.
"""

from __future__ import annotations

import collections
import pickle
from typing import IO, Any

import numpy as np

try:  # numpy >= 2 keeps its internals in numpy._core; older pickles say numpy.core
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]

__all__ = ["DataUnpickler", "UnsafePickleError", "load_data_pickle"]


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global (or a persistent id) outside the allow-list; nothing was run."""


def _allowed() -> dict[tuple[str, str], Any]:
    table: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("collections", "OrderedDict"): collections.OrderedDict,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(mod, "_reconstruct")] = _multiarray._reconstruct
        table[(mod, "scalar")] = _multiarray.scalar
    return table


_ALLOWED: dict[tuple[str, str], Any] = _allowed()  # built once; read-only from here on


class DataUnpickler(pickle.Unpickler):
    """Unpickles plain data (see the module docstring); Python 2 ``str`` decoded as latin1."""

    def __init__(self, file: IO[bytes]) -> None:
        super().__init__(file, encoding="latin1")

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            pass
        raise UnsafePickleError(
            f"refused the global '{module}.{name}' (a data pickle holds only containers and "
            f"numpy arrays; nothing was imported or called)"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refused a persistent id (a data pickle has none)")


def load_data_pickle(file: IO[bytes]) -> Any:
    """One object from ``file`` through :class:`DataUnpickler`."""
    return DataUnpickler(file).load()
