"""What the restricted unpickler builds instead of the official classes: inert records.

Objects of these classes only hold the data the unpickler hands them (`__setstate__` / the
constructor stores it); none of them imports, compiles or runs anything from the file. The readers
(`pytorch`, `tf`, `tf1`) inspect these records; `unpickler` is the only module that creates them.
"""
from __future__ import annotations

from typing import Any

from .common import OfficialFormatError

class StandIn:
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


class PersistentObject(StandIn):
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


class TorchModuleObject(StandIn):
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


class TFNetwork(StandIn):
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


TORCH_CONTAINERS = ("ModuleList", "ModuleDict", "Sequential", "ParameterList", "ParameterDict")

# torch.nn.modules.container.<name> -> a TorchModuleObject subclass that remembers that name.
TORCH_CONTAINER_CLASSES: dict[str, type] = {
    name: type(name, (TorchModuleObject,), {"torch_class": f"torch.nn.modules.container.{name}"})
    for name in TORCH_CONTAINERS
}


