"""Import NVIDIA's official network pickles safely, with numerically identical results.

Accepted files (see docs/official.md):

* PyTorch snapshots of stylegan2-ada-pytorch (`network-snapshot-*.pkl`) and of the stylegan3
  repository, holding StyleGAN2 networks or StyleGAN3 generators (configs T and R, beside their
  StyleGAN2 discriminator) (`pytorch`);
* TensorFlow StyleGAN2 pickles (`(G, D, Gs)` tuples of `dnnlib.tflib.network.Network`, `tf`) and
  TensorFlow StyleGAN (v1) pickles of the same form (`tf1`).

This module is the one dispatcher: it opens the file with the restricted unpickler (`unpickler`,
the security boundary), looks at what came out and hands it to the matching reader. Layering,
lowest first: common < records < unpickler; common, records < pytorch, tf_common < tf, tf1 < here.
"""
from __future__ import annotations

import pickle
import struct
from pathlib import Path
import torch
from torch import nn

from .common import OfficialFormatError, ForeignNetwork, ForeignFile, write_converted
from .pytorch import (discriminator_config_from_kwargs, generator_config_from_kwargs, official_to_ours_state,
                      read_pytorch_pickle, stylegan3_config_from_kwargs)
from .records import PersistentObject, TFNetwork
from .tf import tf_network
from .tf1 import V1_BUILD_FUNCS, tf1_network
from .unpickler import LEGACY_MAGIC, RestrictedUnpickler

__all__ = ["OfficialFormatError", "ForeignNetwork", "ForeignFile", "read_official", "load_official",
           "convert_official", "generator_config_from_kwargs", "discriminator_config_from_kwargs",
           "stylegan3_config_from_kwargs", "official_to_ours_state"]


def _read_tensorflow(path: Path, nets: dict[str, TFNetwork]) -> ForeignFile:
    result = ForeignFile(path, "tensorflow", {})
    for name, net in nets.items():
        reader = tf1_network if net.build_func_name in V1_BUILD_FUNCS else tf_network
        result.networks[name] = reader(path, name, net)
    result.info["networks"] = {k: v.source_class for k, v in result.networks.items()}
    return result


def read_official(path: str | Path) -> ForeignFile:
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
    if data == LEGACY_MAGIC:
        raise OfficialFormatError(f"{path} is a legacy torch.save file, not an official network pickle")
    if isinstance(data, dict) and any(isinstance(v, PersistentObject) for v in data.values()):
        return read_pytorch_pickle(path, data)
    if isinstance(data, PersistentObject) and data.short_class in ("Generator", "Discriminator"):
        name = "G_ema" if data.short_class == "Generator" else "D"
        return read_pytorch_pickle(path, {name: data})
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


def convert_official(src: str | Path, dest: str | Path) -> dict:
    """Convert an official pickle into our checkpoint with all its networks (G, D, G_ema).

    Returns a summary: {"source_format", "networks": {name: {...}}, "info", "notes"}.
    """
    return write_converted(read_official(src), dest)
