"""Import NVIDIA's official network pickles safely, with numerically identical results.

Accepted files (see docs/official.md):

* PyTorch snapshots of stylegan2-ada-pytorch (`network-snapshot-*.pkl`) and of the stylegan3
  repository when they hold StyleGAN2 networks: `pickle.dump` of a dict {'G', 'D', 'G_ema',
  'augment_pipe', 'training_set_kwargs'} whose modules are `torch_utils.persistence` objects.
  Each pickles as `torch_utils.persistence._reconstruct_persistent_obj(meta)` with
  meta = {type: 'class', version, module_src (the Python source of the defining module),
  class_name (bare, e.g. 'Generator'), state (the module's __dict__: _parameters, _buffers,
  _modules, _init_kwargs, ...)}. Tensors pickle as `torch._utils._rebuild_tensor_v2` /
  `_rebuild_parameter` over storages serialised by `torch.storage._load_from_bytes(bytes)`, the
  bytes being a legacy (non-zip) `torch.save` stream.
* TensorFlow StyleGAN2 pickles (`(G, D, Gs)` tuples of `dnnlib.tflib.network.Network`), mapped by
  `official_tf`; TensorFlow StyleGAN (v1) pickles of the same form, mapped by `official_tf1`.

Safety: `RestrictedUnpickler.find_class` resolves only a fixed table of globals, and every entry
is either inert data (OrderedDict, numpy dtype/ndarray reconstruction, torch dtypes) or a stand-in
written here that only records what it is given. `_reconstruct_persistent_obj` becomes
`PersistentObject`, which keeps `module_src` as an uninspected string: nothing from the file is
imported, compiled or executed. The legacy storage stream is parsed by hand (same restricted
unpickler for its small pickles, raw bytes for the data). Any other global is refused with an
`OfficialFormatError` naming it, before anything from it is looked up.

Mapping: our StyleGAN2 modules use the official state-dict names except the noise input
(official `convN.noise_const` / `convN.noise_strength` are ours `convN.noise.const` /
`convN.noise.strength`). Configs are built from the official constructor kwargs; every official
tensor must be consumed exactly once and every tensor of ours filled, or the error lists both.
"""
from __future__ import annotations

import collections
import hashlib
import io
import math
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
from torch import nn

from .checkpoint import CheckpointError

if TYPE_CHECKING:  # annotations only; the models import lazily where configs are built
    from ..models.config import DiscriminatorConfig, GeneratorConfig

__all__ = [
    "OfficialFormatError", "RestrictedUnpickler", "safe_load", "PersistentObject", "TorchModuleObject",
    "TFNetwork", "EasyDict", "OfficialNetwork", "OfficialPickle", "read_official", "load_official",
    "convert_official", "generator_config_from_kwargs", "discriminator_config_from_kwargs",
    "official_key_to_ours", "official_to_ours_state", "persistent_state_dict",
]


class OfficialFormatError(CheckpointError):
    """An official pickle is refused (unsafe, unsupported, damaged) or does not fit our networks."""


# =========================================================================================
# Stand-ins: what the restricted unpickler builds instead of the official classes.
# =========================================================================================

class _StandIn:
    """Marker base: objects of these classes only record data handed to them by the unpickler."""


class EasyDict(dict):
    """Stand-in for dnnlib.util.EasyDict: a plain dict (attribute access for convenience)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setstate__(self, state: Any) -> None:  # EasyDict keeps no instance attributes
        pass


class PersistentObject(_StandIn):
    """Stand-in for a torch_utils.persistence object: the recorded meta, never the live class.

    `module_src` is kept as an opaque string; nothing here compiles or runs it.
    """

    def __init__(self, class_name: str, module_src: str, version: Any, state: dict):
        self.class_name = class_name
        self.module_src = module_src
        self.version = version
        self.state = state

    @property
    def short_class(self) -> str:
        return self.class_name.rsplit(".", 1)[-1]

    def __repr__(self) -> str:
        return f"PersistentObject({self.class_name!r})"


class TorchModuleObject(_StandIn):
    """Stand-in for a plain torch.nn container module pickled inside an official network.

    The unpickler creates it without running torch code (NEWOBJ) and hands it the module's
    __dict__ (BUILD), which is recorded as `state`.
    """

    torch_class = "torch.nn.Module"
    state: dict = {}  # replaced by __setstate__; read-only default when the pickle gives none

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise OfficialFormatError(f"{self.torch_class}: module state must be a dict")
        self.state = state

    @property
    def class_name(self) -> str:
        return self.torch_class

    @property
    def short_class(self) -> str:
        return self.torch_class.rsplit(".", 1)[-1]

    def __repr__(self) -> str:
        return f"TorchModuleObject({self.torch_class!r})"


class TFNetwork(_StandIn):
    """Stand-in for dnnlib.tflib.network.Network: records the pickled state dict.

    state: version, name, static_kwargs, components {name: Network}, build_module_src (kept as an
    opaque string), build_func_name, variables [(name, ndarray)], input/output shapes and names.
    """

    state: dict = {}  # replaced by __setstate__; read-only default when the pickle gives none

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise OfficialFormatError("TensorFlow network state must be a dict")
        self.state = state

    @property
    def name(self) -> str:
        return str(self.state.get("name", "?"))

    @property
    def build_func_name(self) -> str:
        return str(self.state.get("build_func_name", "?"))

    @property
    def static_kwargs(self) -> dict:
        kw = self.state.get("static_kwargs") or {}
        if not isinstance(kw, dict):
            raise OfficialFormatError(f"TensorFlow network {self.name!r}: static_kwargs is not a dict")
        return dict(kw)

    @property
    def components(self) -> dict:
        comps = self.state.get("components") or {}
        if not isinstance(comps, dict):
            raise OfficialFormatError(f"TensorFlow network {self.name!r}: components is not a dict")
        return dict(comps)

    def __repr__(self) -> str:
        return f"TFNetwork({self.name!r}, {self.build_func_name!r})"


_TORCH_CONTAINERS = ("ModuleList", "ModuleDict", "Sequential", "ParameterList", "ParameterDict")
_torch_module_classes: dict[str, type] = {}


def _torch_module_class(qualname: str) -> type:
    if qualname not in _torch_module_classes:
        _torch_module_classes[qualname] = type(qualname.rsplit(".", 1)[-1], (TorchModuleObject,),
                                               {"torch_class": qualname})
    return _torch_module_classes[qualname]


class _TensorTypeMarker(_StandIn):
    """What `torch.Tensor` / `torch.nn.Parameter` resolve to: a name, not the class."""

    def __init__(self, name: str):
        self.name = name


class _StorageType(_StandIn):
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
    if not (isinstance(cls, type) and issubclass(cls, (_StandIn, EasyDict))):
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
    for name in _TORCH_CONTAINERS:
        qual = f"torch.nn.modules.container.{name}"
        allowed[("torch.nn.modules.container", name)] = _torch_module_class(qual)
    return allowed


_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}
_ALLOWED: dict[tuple[str, str], Any] | None = None


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
        global _ALLOWED
        if _ALLOWED is None:
            _ALLOWED = _build_allowed()
        module = _PY2_MODULES.get(module, module)
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            pass
        raise OfficialFormatError(
            f"refused to load: the pickle references the global '{module}.{name}', which an official "
            f"network pickle never needs; it was not imported or called. Only NVIDIA's StyleGAN2 "
            f"(PyTorch or TensorFlow) and StyleGAN (TensorFlow) network pickles are accepted")

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


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
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
        if magic != _LEGACY_MAGIC:
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


# =========================================================================================
# Official PyTorch modules -> state dict, configs.
# =========================================================================================

_MODULE_TYPES = (PersistentObject, TorchModuleObject)


def persistent_state_dict(obj: PersistentObject | TorchModuleObject, prefix: str = "") -> dict[str, torch.Tensor]:
    """The official module's state_dict() rebuilt from the recorded __dict__ trees.

    Parameters, then persistent buffers, then children (nn.Module.state_dict's order).
    """
    st = obj.state
    out: dict[str, torch.Tensor] = {}
    params = st.get("_parameters") or {}
    buffers = st.get("_buffers") or {}
    modules = st.get("_modules") or {}
    skip = st.get("_non_persistent_buffers_set") or set()
    for group, what in ((params, "parameter"), (buffers, "buffer")):
        if not isinstance(group, dict):
            raise OfficialFormatError(f"{prefix or obj.class_name}: {what}s are not a dict")
        for name, t in group.items():
            if t is None or (what == "buffer" and name in skip):
                continue
            if not isinstance(t, torch.Tensor):
                raise OfficialFormatError(f"{prefix}{name}: {what} is a {type(t).__name__}, not a tensor")
            out[f"{prefix}{name}"] = t
    if not isinstance(modules, dict):
        raise OfficialFormatError(f"{prefix or obj.class_name}: submodules are not a dict")
    for name, child in modules.items():
        if child is None:
            continue
        if not isinstance(child, _MODULE_TYPES):
            raise OfficialFormatError(f"{prefix}{name}: submodule is a {type(child).__name__}")
        out.update(persistent_state_dict(child, f"{prefix}{name}."))
    return out


def _tree_classes(obj: PersistentObject | TorchModuleObject) -> set[str]:
    names = {obj.short_class}
    for child in (obj.state.get("_modules") or {}).values():
        if isinstance(child, _MODULE_TYPES):
            names |= _tree_classes(child)
    return names


_G_CLASSES = {"Generator", "MappingNetwork", "SynthesisNetwork", "SynthesisBlock", "SynthesisLayer",
              "ToRGBLayer", "FullyConnectedLayer", "Conv2dLayer"}
_D_CLASSES = {"Discriminator", "DiscriminatorBlock", "DiscriminatorEpilogue", "MinibatchStdLayer",
              "Conv2dLayer", "FullyConnectedLayer", "MappingNetwork"}
_SG3_MARKERS = ("SynthesisInput",)


def _is_stylegan3(obj: PersistentObject) -> bool:
    if "stylegan3" in obj.class_name:
        return True
    if any(m in _tree_classes(obj) for m in _SG3_MARKERS):
        return True
    # The embedded source is only searched as text, never compiled.
    return any(f"class {m}" in obj.module_src for m in _SG3_MARKERS)


def official_key_to_ours(key: str) -> str:
    """Official state-dict key -> ours (the noise input is a submodule here)."""
    for official, ours in ((".noise_const", ".noise.const"), (".noise_strength", ".noise.strength")):
        if key.endswith(official):
            return key[: -len(official)] + ours
    return key


def _fit_state(module: nn.Module, state: dict[str, torch.Tensor], origin: dict[str, str], what: str) -> dict[str, torch.Tensor]:
    """Check `state` (our key names) against `module`: completeness, shapes, dtypes, finiteness.

    origin maps our key -> the source name, for errors in the file's own terms.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unused = [origin.get(k, k) for k in state if k not in own]
    shapes = [f"{origin.get(k, k)} {tuple(v.shape)} vs ours {k} {tuple(own[k].shape)}"
              for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if missing or unused or shapes:
        parts = []
        if unused:
            parts.append(f"{len(unused)} official tensor(s) not used: {unused[:6]}")
        if missing:
            parts.append(f"{len(missing)} tensor(s) of ours not filled: {missing[:6]}")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatch(es): {shapes[:4]}")
        raise OfficialFormatError(f"{what}: the official weights do not fit the network built from "
                                  f"its kwargs: " + "; ".join(parts))
    out = {}
    for k, v in state.items():
        ref = own[k]
        if v.dtype != ref.dtype:
            if not (v.is_floating_point() and ref.is_floating_point()):
                raise OfficialFormatError(f"{what}: {origin.get(k, k)} has dtype {v.dtype}, expected {ref.dtype}")
            v = v.to(ref.dtype)
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise OfficialFormatError(f"{what}: {origin.get(k, k)} contains NaN/Inf")
        out[k] = v
    return out


def official_to_ours_state(official: dict[str, torch.Tensor], module: nn.Module, what: str = "network") -> dict[str, torch.Tensor]:
    """Official PyTorch state dict -> ours for `module`; every key consumed once, every one filled."""
    state: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    for key, value in official.items():
        ours = official_key_to_ours(key)
        if ours in state:
            raise OfficialFormatError(f"{what}: official keys {origin[ours]!r} and {key!r} both map to {ours!r}")
        state[ours] = value
        origin[ours] = key
    return _fit_state(module, state, origin, what)


# ----------------------------------------------------------------------------- kwargs -> configs

class _Kwargs:
    """Consume a kwargs dict key by key; leftovers are errors, except known harmless ones."""

    def __init__(self, kwargs: Any, where: str, notes: list[str]):
        if kwargs is None:
            kwargs = {}
        if not isinstance(kwargs, dict):
            raise OfficialFormatError(f"{where} must be a dict, got {type(kwargs).__name__}")
        self.kw, self.where, self.notes = dict(kwargs), where, notes

    def take(self, key: str, default: Any = None) -> Any:
        return self.kw.pop(key, default)

    def require(self, key: str, expected: Any, why: str) -> None:
        if key in self.kw:
            value = self.kw.pop(key)
            if value != expected:
                raise OfficialFormatError(f"{self.where}.{key}={value!r} is not supported ({why}; "
                                          f"only {expected!r} is implemented)")

    def harmless(self, key: str, why: str) -> None:
        if key in self.kw:
            self.notes.append(f"ignored {self.where}.{key}={self.kw.pop(key)!r} ({why})")

    def finish(self) -> None:
        if self.kw:
            raise OfficialFormatError(f"unknown {self.where} {sorted(self.kw)}: they may change the "
                                      f"architecture, so the network is refused rather than guessed")


def _int(v: Any, what: str, minimum: int = 0) -> int:
    if isinstance(v, (np.integer,)):
        v = int(v)
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise OfficialFormatError(f"{what} must be an integer >= {minimum}, got {v!r}")
    return v


def _opt_int(v: Any, what: str, minimum: int = 0) -> int | None:
    return None if v is None else _int(v, what, minimum)


def _float(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
        raise OfficialFormatError(f"{what} must be a number, got {v!r}")
    return float(v)


def _opt_float(v: Any, what: str) -> float | None:
    return None if v is None else _float(v, what)


def _filter(v: Any, what: str) -> tuple[int, ...]:
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if not isinstance(v, (list, tuple)) or not v:
        raise OfficialFormatError(f"{what} must be a list of taps, got {v!r}")
    return tuple(_int(t, what) for t in v)


def _arch(v: Any, what: str) -> str:
    if v not in ("orig", "skip", "resnet"):
        raise OfficialFormatError(f"{what}={v!r} is not one of 'orig', 'skip', 'resnet'")
    return v


def _merge_args(args: Any, kwargs: Any, order: list[str], where: str) -> dict:
    args = tuple(args or ())
    kwargs = dict(kwargs or {})
    if len(args) > len(order):
        raise OfficialFormatError(f"{where}: {len(args)} positional arguments, at most {len(order)} known")
    for name, value in zip(order, args):
        if name in kwargs:
            raise OfficialFormatError(f"{where}: {name} given twice")
        kwargs[name] = value
    return kwargs


_HARMLESS_G = {
    "fp16_channels_last": "memory layout only",
    "channels_last": "memory layout only",
    "fused_modconv_default": "fused and unfused modulated convolutions compute the same result",
}


def generator_config_from_kwargs(kwargs: dict, args: tuple = ()) -> tuple["GeneratorConfig", list[str]]:
    """Official StyleGAN2 Generator constructor kwargs -> our GeneratorConfig (+ notes).

    Accepts both layouts: stylegan2-ada-pytorch (`synthesis_kwargs={...}`) and the stylegan3
    repository (synthesis kwargs at the top level).
    """
    from ..models import GeneratorConfig, MappingConfig

    notes: list[str] = []
    kwargs = _merge_args(args, kwargs, ["z_dim", "c_dim", "w_dim", "img_resolution", "img_channels",
                                        "mapping_kwargs", "synthesis_kwargs"], "Generator")
    top = _Kwargs(kwargs, "G kwargs", notes)
    missing = [k for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels") if k not in top.kw]
    if missing:
        raise OfficialFormatError(f"Generator kwargs lack {missing}")
    z_dim = _int(top.take("z_dim"), "z_dim")
    c_dim = _int(top.take("c_dim"), "c_dim")
    w_dim = _int(top.take("w_dim"), "w_dim", 1)
    res = _int(top.take("img_resolution"), "img_resolution", 4)
    channels = _int(top.take("img_channels"), "img_channels", 1)
    mapping = _Kwargs(top.take("mapping_kwargs", {}), "G mapping_kwargs", notes)
    synth_kw = dict(top.take("synthesis_kwargs", {}) or {})
    overlap = set(synth_kw) & set(top.kw)
    if overlap:
        raise OfficialFormatError(f"Generator kwargs give {sorted(overlap)} twice")
    synth = _Kwargs({**synth_kw, **top.kw}, "G synthesis kwargs", notes)
    top.kw.clear()

    mcfg = MappingConfig(
        num_layers=_int(mapping.take("num_layers", 8), "mapping num_layers"),
        lr_multiplier=_float(mapping.take("lr_multiplier", 0.01), "mapping lr_multiplier"),
        w_avg_beta=_opt_float(mapping.take("w_avg_beta", 0.995), "mapping w_avg_beta"),
        embed_features=_opt_int(mapping.take("embed_features"), "mapping embed_features", 1),
        layer_features=_opt_int(mapping.take("layer_features"), "mapping layer_features", 1),
    )
    mapping.require("activation", "lrelu", "the mapping activation")
    mapping.finish()

    fields = dict(
        channel_base=_int(synth.take("channel_base", 32768), "channel_base", 1),
        channel_max=_int(synth.take("channel_max", 512), "channel_max", 1),
        num_fp16_res=_int(synth.take("num_fp16_res", 0), "num_fp16_res"),
        architecture=_arch(synth.take("architecture", "skip"), "architecture"),
        resample_filter=_filter(synth.take("resample_filter", [1, 3, 3, 1]), "resample_filter"),
        conv_clamp=_opt_float(synth.take("conv_clamp"), "conv_clamp"),
        use_noise=bool(synth.take("use_noise", True)),
    )
    synth.require("kernel_size", 3, "the synthesis kernel size")
    synth.require("activation", "lrelu", "the synthesis activation")
    for key, why in _HARMLESS_G.items():
        synth.harmless(key, why)
    synth.finish()
    try:
        cfg = GeneratorConfig(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=res, img_channels=channels,
                              mapping=mcfg, version=2, **fields)
    except (TypeError, ValueError) as e:
        raise OfficialFormatError(f"Generator kwargs: {e}") from None
    return cfg, notes


def discriminator_config_from_kwargs(kwargs: dict, args: tuple = ()) -> tuple["DiscriminatorConfig", list[str]]:
    """Official StyleGAN2 Discriminator constructor kwargs -> our DiscriminatorConfig (+ notes)."""
    from ..models import DiscriminatorConfig, MappingConfig

    notes: list[str] = []
    kwargs = _merge_args(args, kwargs, ["c_dim", "img_resolution", "img_channels", "architecture", "channel_base",
                                        "channel_max", "num_fp16_res", "conv_clamp", "cmap_dim", "block_kwargs",
                                        "mapping_kwargs", "epilogue_kwargs"], "Discriminator")
    top = _Kwargs(kwargs, "D kwargs", notes)
    missing = [k for k in ("c_dim", "img_resolution", "img_channels") if k not in top.kw]
    if missing:
        raise OfficialFormatError(f"Discriminator kwargs lack {missing}")
    block = _Kwargs(top.take("block_kwargs", {}), "D block_kwargs", notes)
    mapping = _Kwargs(top.take("mapping_kwargs", {}), "D mapping_kwargs", notes)
    epi = _Kwargs(top.take("epilogue_kwargs", {}), "D epilogue_kwargs", notes)

    resample_filter = _filter(block.take("resample_filter", [1, 3, 3, 1]), "resample_filter")
    block.require("activation", "lrelu", "the discriminator activation")
    block.harmless("fp16_channels_last", "memory layout only")
    block.harmless("freeze_layers", "affects training only")
    block.finish()
    mcfg = MappingConfig(
        num_layers=_int(mapping.take("num_layers", 8), "D mapping num_layers"),
        lr_multiplier=_float(mapping.take("lr_multiplier", 0.01), "D mapping lr_multiplier"),
        w_avg_beta=None,
        embed_features=_opt_int(mapping.take("embed_features"), "D mapping embed_features", 1),
        layer_features=_opt_int(mapping.take("layer_features"), "D mapping layer_features", 1),
    )
    mapping.require("activation", "lrelu", "the label mapping activation")
    mapping.finish()
    mbstd_group = epi.take("mbstd_group_size", 4)
    fields = dict(
        mbstd_group_size=None if mbstd_group is None else _int(mbstd_group, "mbstd_group_size", 1),
        mbstd_num_channels=_int(epi.take("mbstd_num_channels", 1), "mbstd_num_channels"),
    )
    epi.require("activation", "lrelu", "the epilogue activation")
    epi.finish()
    try:
        cfg = DiscriminatorConfig(
            c_dim=_int(top.take("c_dim"), "c_dim"),
            img_resolution=_int(top.take("img_resolution"), "img_resolution", 4),
            img_channels=_int(top.take("img_channels"), "img_channels", 1),
            version=2,
            architecture=_arch(top.take("architecture", "resnet"), "architecture"),
            channel_base=_int(top.take("channel_base", 32768), "channel_base", 1),
            channel_max=_int(top.take("channel_max", 512), "channel_max", 1),
            num_fp16_res=_int(top.take("num_fp16_res", 0), "num_fp16_res"),
            conv_clamp=_opt_float(top.take("conv_clamp"), "conv_clamp"),
            cmap_dim=_opt_int(top.take("cmap_dim"), "cmap_dim", 1),
            resample_filter=resample_filter,
            mapping=mcfg,
            **fields,
        )
    except (TypeError, ValueError) as e:
        raise OfficialFormatError(f"Discriminator kwargs: {e}") from None
    top.finish()
    return cfg, notes


def _cross_check(obj: PersistentObject, cfg: Any, names: tuple[str, ...]) -> None:
    """Attributes the official constructor stored must agree with the config built from its kwargs."""
    for name in names:
        if name in obj.state:
            value = obj.state[name]
            if isinstance(value, (int, np.integer)) and int(value) != getattr(cfg, name):
                raise OfficialFormatError(f"{obj.short_class}.{name}={value} contradicts its init kwargs "
                                          f"({getattr(cfg, name)})")


# Exceptions that malformed (not merely refused) records raise deep in the validation code.
_MALFORMED = (TypeError, ValueError, AttributeError, KeyError, IndexError, RecursionError)


# =========================================================================================
# Reading whole files.
# =========================================================================================

@dataclass
class OfficialNetwork:
    """One network found in an official pickle, ready to build as our module."""

    name: str  # 'G', 'D', 'G_ema'
    kind: str  # 'generator' | 'discriminator'
    source_class: str  # official class (PyTorch) or build function (TensorFlow)
    cfg: Any = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None  # why it cannot be imported (raised when it is asked for)
    state_fn: Callable[[nn.Module], dict[str, torch.Tensor]] | None = None

    def build(self, device: torch.device | str = "cpu") -> nn.Module:
        from ..models import Generator, build_discriminator

        if self.error is not None:
            raise OfficialFormatError(self.error)
        try:
            module = Generator(self.cfg) if self.kind == "generator" else build_discriminator(self.cfg)
        except (ValueError, TypeError) as e:
            raise OfficialFormatError(f"{self.name}: cannot build the network its kwargs describe: {e}") from None
        state = self.state_fn(module)
        module.load_state_dict(state, strict=True)
        return module.to(device).eval().requires_grad_(False)


@dataclass
class OfficialPickle:
    path: Path
    source_format: str  # 'pytorch' | 'tensorflow'
    networks: dict[str, OfficialNetwork]
    info: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def network(self, which: str | None) -> OfficialNetwork:
        if which is None:
            which = next((n for n in ("G_ema", "G") if n in self.networks), None)
            if which is None:
                raise OfficialFormatError(f"{self.path}: holds no generator (networks: {sorted(self.networks)})")
        which = {"Gs": "G_ema"}.get(which, which)
        if which not in self.networks:
            raise OfficialFormatError(f"{self.path}: has no network {which!r} (it has {sorted(self.networks)})")
        return self.networks[which]


def _jsonable(v: Any, depth: int = 0) -> Any:
    if depth > 8:
        return None
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(float(v)) else None
    if isinstance(v, dict):
        return {str(k): _jsonable(x, depth + 1) for k, x in v.items() if isinstance(k, str)}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x, depth + 1) for x in v]
    return repr(v)[:200]


def _pytorch_network(path: Path, name: str, obj: PersistentObject) -> OfficialNetwork:
    kind = {"Generator": "generator", "Discriminator": "discriminator"}[obj.short_class]
    net = OfficialNetwork(name, kind, obj.class_name)
    what = f"{path.name} [{name}]"
    try:
        if _is_stylegan3(obj):
            raise OfficialFormatError(
                "is a StyleGAN3 (alias-free, networks_stylegan3) network; only StyleGAN2 networks "
                "(stylegan2-ada-pytorch, or networks_stylegan2 in the stylegan3 repository) are supported")
        expected = _G_CLASSES if kind == "generator" else _D_CLASSES
        unknown = sorted(_tree_classes(obj) - expected)
        if unknown:
            raise OfficialFormatError(
                f"contains modules of classes {unknown} that the official StyleGAN2 {obj.short_class} does not "
                f"have (a modified fork?); refused rather than guessed")
        init_kwargs = obj.state.get("_init_kwargs", {})
        init_args = obj.state.get("_init_args", ())
        if kind == "generator":
            net.cfg, net.notes = generator_config_from_kwargs(init_kwargs, init_args)
            _cross_check(obj, net.cfg, ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"))
        else:
            net.cfg, net.notes = discriminator_config_from_kwargs(init_kwargs, init_args)
            _cross_check(obj, net.cfg, ("c_dim", "img_resolution", "img_channels"))
        official = persistent_state_dict(obj)
    except OfficialFormatError as e:
        net.error = f"{what}: {e}"
        return net
    except _MALFORMED as e:
        net.error = f"{what}: malformed network record ({type(e).__name__}: {e})"
        return net
    net.state_fn = lambda module: official_to_ours_state(official, module, what)
    return net


def _read_pytorch(path: Path, data: dict) -> OfficialPickle:
    result = OfficialPickle(path, "pytorch", {})
    for key, value in data.items():
        if not isinstance(key, str):
            continue
        if isinstance(value, PersistentObject) and value.short_class in ("Generator", "Discriminator"):
            result.networks[key] = _pytorch_network(path, key, value)
        elif isinstance(value, PersistentObject) and value.short_class == "AugmentPipe":
            p = (value.state.get("_buffers") or {}).get("p")
            if isinstance(p, torch.Tensor) and p.numel() == 1:
                result.info["augment_pipe_p"] = float(p.reshape(()))
        elif key == "training_set_kwargs" and isinstance(value, dict):
            result.info["training_set_kwargs"] = _jsonable(value)
        elif value is not None:
            result.notes.append(f"ignored entry {key!r} ({getattr(value, 'class_name', type(value).__name__)})")
    result.info["networks"] = {k: v.source_class for k, v in result.networks.items()}
    return result


def _read_tensorflow(path: Path, nets: dict[str, TFNetwork]) -> OfficialPickle:
    from . import official_tf

    result = OfficialPickle(path, "tensorflow", {})
    for name, net in nets.items():
        result.networks[name] = official_tf.tf_network(path, name, net)
    result.info["networks"] = {k: v.source_class for k, v in result.networks.items()}
    return result


def read_official(path: str | Path) -> OfficialPickle:
    """Parse an official pickle with the restricted unpickler and describe what it holds."""
    path = Path(path)
    if not path.is_file():
        raise OfficialFormatError(f"no such file: {path}")
    with open(path, "rb") as f:
        head = f.read(9)
        if head[:2] == b"PK":
            raise OfficialFormatError(f"{path} is a zip archive (a torch.save file?), not an official "
                                      f"NVIDIA network pickle")
        if head[:1] != b"\x80" or head[1:2] not in (b"\x02", b"\x03", b"\x04", b"\x05"):
            kind = "a safetensors file" if head[8:9] == b"{" else "not a pickle file"
            raise OfficialFormatError(f"{path} is {kind}, not an official network pickle")
        f.seek(0)
        try:
            data = RestrictedUnpickler(f).load()
        except OfficialFormatError as e:
            raise OfficialFormatError(f"{path}: {e}") from None
        except (EOFError, pickle.UnpicklingError, struct.error, MemoryError) as e:
            raise OfficialFormatError(f"{path} is truncated or damaged ({type(e).__name__}: {e})") from None
        except (ValueError, TypeError, AttributeError, IndexError, KeyError, RuntimeError, RecursionError) as e:
            raise OfficialFormatError(f"{path} is damaged or not an official network pickle "
                                      f"({type(e).__name__}: {e})") from None
    if data == _LEGACY_MAGIC:
        raise OfficialFormatError(f"{path} is a legacy torch.save file, not an official network pickle")
    if isinstance(data, dict) and any(isinstance(v, PersistentObject) for v in data.values()):
        return _read_pytorch(path, data)
    if isinstance(data, PersistentObject) and data.short_class in ("Generator", "Discriminator"):
        name = "G_ema" if data.short_class == "Generator" else "D"
        return _read_pytorch(path, {name: data})
    if isinstance(data, tuple) and len(data) == 3 and all(isinstance(n, TFNetwork) for n in data):
        return _read_tensorflow(path, dict(zip(("G", "D", "G_ema"), data)))
    if isinstance(data, TFNetwork):
        return _read_tensorflow(path, {"G_ema": data})
    desc = type(data).__name__
    if isinstance(data, dict):
        desc += f" with keys {sorted(map(str, data))[:8]}"
    raise OfficialFormatError(f"{path} is a pickle but not an official network pickle: expected a dict of "
                              f"torch_utils.persistence networks (G, D, G_ema) or a TensorFlow (G, D, Gs) "
                              f"tuple, found a {desc}")


def load_official(path: str | Path, which: str | None = None, device: torch.device | str = "cpu") -> nn.Module:
    """One network from an official pickle as our module (eval mode, requires_grad False).

    which: 'G_ema' (default when present), 'G' or 'D'. Nothing from the file is executed.
    """
    return read_official(path).network(which).build(device)


def _count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def convert_official(src: str | Path, dest: str | Path) -> dict:
    """Convert an official pickle into our checkpoint with all its networks (G, D, G_ema).

    Returns a summary: {"source_format", "networks": {name: {...}}, "info", "notes"}.
    """
    from .. import __version__
    from .checkpoint import save_checkpoint

    src, dest = Path(src), Path(dest)
    pkl = read_official(src)
    names = [n for n in ("G", "D", "G_ema") if n in pkl.networks]
    if not names:
        raise OfficialFormatError(f"{src}: holds no networks")
    modules: dict[str, nn.Module] = {}
    summary: dict[str, Any] = {"source_format": pkl.source_format, "networks": {}, "notes": list(pkl.notes)}
    for name in names:
        net = pkl.networks[name]
        module = net.build("cpu")
        modules[name] = module
        cfg = net.cfg
        summary["networks"][name] = {
            "kind": net.kind, "source_class": net.source_class, "resolution": cfg.img_resolution,
            "channels": cfg.img_channels, "c_dim": cfg.c_dim, "architecture": cfg.architecture,
            "params": _count_params(module),
        }
        summary["notes"] += [f"{name}: {n}" for n in net.notes]
    h = hashlib.sha256()
    with open(src, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    info = {"source": src.name, "source_sha256": h.hexdigest(), "source_format": pkl.source_format,
            "converted_by": f"stylegan {__version__}", **{k: v for k, v in pkl.info.items() if k != "networks"}}
    save_checkpoint(dest, modules, info=info)
    summary["info"] = info
    return summary
