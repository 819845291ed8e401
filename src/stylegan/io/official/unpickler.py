"""The restricted unpickler: the security boundary for official network pickles.

`RestrictedUnpickler.find_class` resolves only a fixed table of globals (`_ALLOWED`, built once at
import and never changed), and every entry is either inert data (OrderedDict, numpy dtype/ndarray
reconstruction, torch dtypes) or a stand-in that only records what it is given (`records`).
`_reconstruct_persistent_obj` becomes a `PersistentObject`, which keeps `module_src` as an
uninspected string: nothing from the file is imported, compiled or executed. Tensors pickle as
`torch._utils._rebuild_tensor_v2` / `_rebuild_parameter` over storages serialised by
`torch.storage._load_from_bytes(bytes)`, the bytes being a legacy (non-zip) `torch.save` stream;
that stream is parsed here by hand (same unpickler for its small pickles, raw bytes for the data).
Any other global is refused with an `OfficialFormatError` naming it, before anything from it is
looked up.

This module holds only what runs while a pickle is being read; what the records mean (networks,
configs, weights) is the readers' business (`pytorch`, `tf`, `tf1`).
"""
from __future__ import annotations

import collections
import io
import pickle
import struct
from typing import Any

import numpy as np
import torch

from .common import OfficialFormatError
from .records import TORCH_CONTAINER_CLASSES, EasyDict, PersistentObject, StandIn, TFNetwork

__all__ = ["RestrictedUnpickler", "safe_load", "LEGACY_MAGIC"]


class _TensorTypeMarker(StandIn):
    """What `torch.Tensor` / `torch.nn.Parameter` resolve to: a name, not the class."""

    def __init__(self, name: str):
        self.name = name


class _StorageType(StandIn):
    """What `torch.FloatStorage` & co. resolve to inside a legacy storage stream: just a dtype."""

    def __init__(self, name: str, dtype: torch.dtype):
        self.name, self.dtype = name, dtype


class _Storage:
    """A typed storage read from a legacy torch.save stream: `numel` elements of `dtype`."""

    def __init__(self, dtype: torch.dtype, numel: int):
        self.dtype, self.numel = dtype, numel
        self.data: torch.Tensor | None = None

    def fill(self, raw: bytes) -> None:
        if self.numel == 0:
            self.data = torch.empty(0, dtype=self.dtype)
        else:
            self.data = torch.frombuffer(bytearray(raw), dtype=self.dtype)

    def flat(self) -> torch.Tensor:
        if self.data is None:
            raise OfficialFormatError("a tensor refers to storage data that the file never provides")
        return self.data


class _StorageView:
    def __init__(self, root: _Storage, offset: int, numel: int):
        self.root, self.offset, self.numel = root, offset, numel

    @property
    def dtype(self) -> torch.dtype:
        return self.root.dtype

    def flat(self) -> torch.Tensor:
        data = self.root.flat()
        if self.offset < 0 or self.offset + self.numel > data.numel():
            raise OfficialFormatError("storage view out of bounds")
        return data[self.offset:self.offset + self.numel].clone()


# =========================================================================================
# Safe replacements for the callables official pickles reference.
# =========================================================================================

def _reconstruct_persistent_obj(meta: Any) -> PersistentObject:
    """Stand-in for torch_utils.persistence._reconstruct_persistent_obj: record, never import."""
    if not isinstance(meta, dict):
        raise OfficialFormatError("persistent object: meta is not a dict")
    if meta.get("type") != "class":
        raise OfficialFormatError(f"persistent object of type {meta.get('type')!r}; only 'class' exists")
    class_name, src, state = meta.get("class_name"), meta.get("module_src"), meta.get("state")
    if not isinstance(class_name, str) or not isinstance(src, str):
        raise OfficialFormatError("persistent object: class_name / module_src missing")
    if state is None:
        state = {}
    if not isinstance(state, dict):
        raise OfficialFormatError(f"persistent object {class_name!r}: state is not a dict")
    return PersistentObject(class_name, src, meta.get("version"), state)


def _ints(v: Any, what: str) -> tuple[int, ...]:
    if not isinstance(v, (tuple, list)) or not all(isinstance(i, int) and not isinstance(i, bool) for i in v):
        raise OfficialFormatError(f"tensor {what} must be a tuple of ints, got {v!r}")
    return tuple(v)


def _storage_flat(storage: Any) -> torch.Tensor:
    if not isinstance(storage, (_Storage, _StorageView)):
        raise OfficialFormatError(f"tensor storage is a {type(storage).__name__}, not a storage")
    return storage.flat()


def _strided(flat: torch.Tensor, offset: Any, size: Any, stride: Any) -> torch.Tensor:
    size, stride = _ints(size, "size"), _ints(stride, "stride")
    if not isinstance(offset, int) or offset < 0 or len(size) != len(stride):
        raise OfficialFormatError("malformed tensor layout")
    if any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise OfficialFormatError("negative tensor size or stride")
    if all(s > 0 for s in size):
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= flat.numel():
            raise OfficialFormatError(f"tensor of size {size} reaches past its storage ({flat.numel()} elements)")
    return flat.as_strided(size, stride, offset)


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any) -> torch.Tensor:
    return _strided(_storage_flat(storage), storage_offset, size, stride)


def _rebuild_tensor_v2(storage: Any, storage_offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                       backward_hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    return _strided(_storage_flat(storage), storage_offset, size, stride)


def _rebuild_tensor_v3(storage: Any, storage_offset: Any, size: Any, stride: Any, requires_grad: Any,
                       backward_hooks: Any, dtype: Any, metadata: Any = None) -> torch.Tensor:
    flat = _storage_flat(storage)
    if not isinstance(dtype, torch.dtype):
        raise OfficialFormatError("tensor dtype is not a torch dtype")
    if flat.dtype != dtype:
        if flat.dtype != torch.uint8 or flat.numel() % dtype.itemsize:
            raise OfficialFormatError("tensor dtype does not fit its storage")
        flat = flat.view(dtype)
    return _strided(flat, storage_offset, size, stride)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise OfficialFormatError("parameter data is not a tensor")
    return data


def _rebuild_parameter_with_state(data: Any, requires_grad: Any, backward_hooks: Any, state: Any) -> torch.Tensor:
    return _rebuild_parameter(data)


_REBUILD_FUNCS = (_rebuild_tensor, _rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter,
                  _rebuild_parameter_with_state)


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> torch.Tensor:
    if func not in _REBUILD_FUNCS or not isinstance(args, tuple):
        raise OfficialFormatError("tensor subclass rebuild with an unexpected function")
    return func(*args)


def _latin1_encode(text: Any, encoding: str = "utf-8") -> bytes:
    """`_codecs.encode`, which protocol-2 pickles use to store bytes; only latin-1 is accepted."""
    if not isinstance(text, str) or encoding.replace("-", "").lower() != "latin1":
        raise OfficialFormatError("refused _codecs.encode with an unexpected encoding")
    return text.encode("latin-1")


def _safe_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """copyreg._reconstructor (protocol 0/1 objects), limited to the stand-in classes."""
    if not (isinstance(cls, type) and issubclass(cls, (StandIn, EasyDict))):
        raise OfficialFormatError(f"refused copyreg._reconstructor for {cls!r}")
    obj = cls.__new__(cls)
    if isinstance(obj, dict) and isinstance(state, dict):
        obj.update(state)
    return obj


def _np_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any = "C") -> np.ndarray:
    """numpy's protocol-5 array reconstruction, for inert dtypes only."""
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        raise OfficialFormatError("refused an object-dtype numpy buffer")
    return np.frombuffer(bytes(buf), dtype=dtype).reshape(_ints(tuple(shape), "shape"), order=order).copy()


try:  # numpy >= 2 keeps its internals in numpy._core; pickles from numpy 1.x say numpy.core
    from numpy._core import multiarray as _np_multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _np_multiarray  # type: ignore[no-redef]

_TORCH_DTYPES = {name: getattr(torch, name) for name in (
    "float16", "float32", "float64", "bfloat16", "half", "float", "double", "uint8", "int8", "int16",
    "int32", "int64", "short", "int", "long", "bool", "complex64", "complex128")}

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool, "ComplexFloatStorage": torch.complex64,
    "ComplexDoubleStorage": torch.complex128, "UntypedStorage": torch.uint8,
}


def _build_allowed() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "dict"): dict,
        ("builtins", "list"): list,
        ("builtins", "tuple"): tuple,
        ("builtins", "complex"): complex,
        ("builtins", "bytearray"): bytearray,
        ("builtins", "slice"): slice,
        ("builtins", "object"): object,
        ("_codecs", "encode"): _latin1_encode,
        ("copyreg", "_reconstructor"): _safe_reconstructor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
        ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
        ("torch.storage", "_load_from_bytes"): _load_storage_bytes,
        ("torch", "Size"): torch.Size,
        ("torch", "device"): torch.device,
        ("torch", "Tensor"): _TensorTypeMarker("torch.Tensor"),
        ("torch.nn.parameter", "Parameter"): _TensorTypeMarker("torch.nn.Parameter"),
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
        ("dnnlib.util", "EasyDict"): EasyDict,
        ("dnnlib", "EasyDict"): EasyDict,
        ("dnnlib.tflib.network", "Network"): TFNetwork,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = _np_multiarray._reconstruct
        allowed[(mod, "scalar")] = _np_multiarray.scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(mod, "_frombuffer")] = _np_frombuffer
    for name, dtype in _TORCH_DTYPES.items():
        allowed[("torch", name)] = dtype
    for name, dtype in _STORAGE_DTYPES.items():
        allowed[("torch", name)] = _StorageType(name, dtype)
        allowed[("torch.cuda", name)] = _StorageType(name, dtype)  # loaded onto the CPU regardless
    for name, cls in TORCH_CONTAINER_CLASSES.items():
        allowed[("torch.nn.modules.container", name)] = cls
    return allowed


_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


# =========================================================================================
# The restricted unpickler.
# =========================================================================================

class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only the globals in a fixed allow-list (see module docstring).

    `storages`: when given, persistent ids of the legacy torch.save format ('storage' tuples)
    are accepted and recorded there (used inside `torch.storage._load_from_bytes` streams);
    otherwise any persistent id is refused.
    """

    def __init__(self, file, *, storages: dict[str, _Storage] | None = None):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        module = _PY2_MODULES.get(module, module)
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            pass
        raise OfficialFormatError(
            f"refused to load: the pickle references the global '{module}.{name}', which an official "
            f"network pickle never needs; it was not imported or called. Only NVIDIA's StyleGAN3 and StyleGAN2 "
            f"(PyTorch), StyleGAN2 (TensorFlow) and StyleGAN (TensorFlow) network pickles are accepted")

    def persistent_load(self, pid: Any) -> Any:
        if self._storages is None:
            raise OfficialFormatError("refused to load: unexpected persistent id in the pickle")
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise OfficialFormatError(f"refused to load: unknown persistent id kind {str(pid)[:60]!r}")
        stype, key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) > 5 else None
        if not isinstance(stype, _StorageType):
            raise OfficialFormatError("storage of an unknown type")
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise OfficialFormatError("malformed storage record")
        root = self._storages.get(key)
        if root is None:
            root = self._storages[key] = _Storage(stype.dtype, numel)
        if view is not None:
            if not (isinstance(view, tuple) and len(view) == 3 and all(isinstance(v, int) for v in view[1:])):
                raise OfficialFormatError("malformed storage view record")
            return _StorageView(root, view[1], view[2])
        return root


def safe_load(file) -> Any:
    """Unpickle one object from a binary file object with the restricted unpickler."""
    return RestrictedUnpickler(file).load()


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


def _load_storage_bytes(data: Any) -> _Storage | _StorageView:
    """Stand-in for torch.storage._load_from_bytes: parse a legacy torch.save stream of a storage.

    Layout: pickle(magic), pickle(1001), pickle(sys_info), pickle(obj with 'storage' persistent
    ids), pickle(sorted storage keys), then per key: int64 element count + raw little-endian data.
    """
    if not isinstance(data, (bytes, bytearray)):
        raise OfficialFormatError("tensor storage bytes missing")
    f = io.BytesIO(data)
    try:
        magic = safe_load(f)
        if magic != LEGACY_MAGIC:
            raise OfficialFormatError("tensor storage is not a legacy torch.save stream (bad magic number)")
        if safe_load(f) != _LEGACY_PROTOCOL:
            raise OfficialFormatError("tensor storage uses an unknown torch.save protocol")
        sys_info = safe_load(f)
        if not isinstance(sys_info, dict) or not sys_info.get("little_endian", True):
            raise OfficialFormatError("big-endian tensor storage is not supported")
        storages: dict[str, _Storage] = {}
        obj = RestrictedUnpickler(f, storages=storages).load()
        keys = safe_load(f)
    except (EOFError, pickle.UnpicklingError, struct.error) as e:
        raise OfficialFormatError(f"damaged tensor storage record ({e})") from None
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise OfficialFormatError("damaged tensor storage record (bad key list)")
    for key in keys:
        st = storages.get(key)
        if st is None:
            raise OfficialFormatError(f"tensor storage data for an undeclared key {key!r}")
        head = f.read(8)
        if len(head) < 8:
            raise OfficialFormatError("tensor storage data is truncated")
        (numel,) = struct.unpack("<q", head)
        if numel != st.numel:
            raise OfficialFormatError(f"tensor storage size mismatch ({numel} vs {st.numel})")
        nbytes = numel * st.dtype.itemsize
        raw = f.read(nbytes)
        if len(raw) < nbytes:
            raise OfficialFormatError("tensor storage data is truncated")
        st.fill(raw)
    if not isinstance(obj, (_Storage, _StorageView)):
        raise OfficialFormatError("tensor storage record holds something other than a storage")
    return obj


# Built once, after every stand-in it names is defined; read-only from here on.
_ALLOWED: dict[tuple[str, str], Any] = _build_allowed()
