"""Network files named by URL: downloaded once into the cache, atomically, checked where known.

NVIDIA's tools take ``--network`` / ``--resume`` as a path or an http(s) URL
(``dnnlib.util.open_url``: downloaded into ``~/.cache/dnnlib/downloads``, then read from there),
and stylegan2-ada-pytorch's ``train.py`` maps five ``--resume`` names (ffhq256, ffhq512,
ffhq1024, celebahq256, lsundog256) to its transfer-learning networks. Here the same happens with
the standard library alone (``urllib``), and :mod:`stylegan.io.load` calls :func:`resolve_path`
first, so every command that reads a network file accepts a URL.

* **Cache.** ``$STYLEGAN_CACHE/downloads`` (default ``~/.cache/stylegan/downloads``), one file
  per URL, named ``<sha256(url)[:16]>_<file name>``: a second use makes no request at all.
* **Atomic.** The body is streamed into a hidden ``.part`` file beside the entry and renamed onto
  it only when complete (length as announced, checksum as expected, flushed to disk). A cut
  connection, an error or Ctrl-C deletes the ``.part`` file, so no entry exists and the next run
  downloads afresh. (``urllib`` returns a short body, not an error, when a server closes early:
  the length is checked here.) Two processes fetching at once write separate ``.part`` files and
  the rename makes either result the entry.
* **Checksums.** A URL may pin its sha256 as ``URL#sha256=<hex>`` (pip's convention), else
  :data:`KNOWN_FILES` gives it. A mismatch deletes the download and is an error; a cached entry
  is checked again when a checksum is given (hashing is local, no request). NVIDIA publishes no
  checksums for these files, and none could be found that we could trust, so every entry of
  :data:`KNOWN_FILES` has ``sha256=None`` for now: the table records names and what they hold.
* **Errors** are one line, :class:`RemoteError` (a :class:`~stylegan.io.checkpoint.CheckpointError`,
  so every command already prints it without a traceback), naming the URL: offline, HTTP status,
  cut off after N of M bytes, checksum mismatch.
* **Progress** is a tqdm bar on stderr (bytes, rate, ETA).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.client
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from tqdm import tqdm

from ..version import __version__
from .checkpoint import CheckpointError

__all__ = ["KNOWN_FILES", "RESUME_SHORTCUTS", "KnownFile", "RemoteError", "cache_path", "cache_root",
           "expected_sha256", "fetch", "is_url", "resolve_path", "resume_url", "sha256_file"]

ENV_CACHE = "STYLEGAN_CACHE"
DOWNLOADS = "downloads"
CHUNK = 1 << 20
TIMEOUT_S = 60.0  # per socket operation (connect, each read), not for the whole download
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class RemoteError(CheckpointError):
    """A network file given by URL could not be downloaded or failed its checksum."""


@dataclasses.dataclass(frozen=True)
class KnownFile:
    """An official published file: what it holds and, when one is known, its sha256."""

    what: str
    sha256: str | None = None  # None: NVIDIA publishes none, and we found none to trust


_ADA = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/"
_TRANSFER = _ADA + "transfer-learning-source-nets/"
_NGC_SG2 = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files/"

# stylegan2-ada-pytorch train.py, `resume_specs`: the names --resume accepts besides paths and URLs.
RESUME_SHORTCUTS: Mapping[str, str] = MappingProxyType({
    "ffhq256": _TRANSFER + "ffhq-res256-mirror-paper256-noaug.pkl",
    "ffhq512": _TRANSFER + "ffhq-res512-mirror-stylegan2-noaug.pkl",
    "ffhq1024": _TRANSFER + "ffhq-res1024-mirror-stylegan2-noaug.pkl",
    "celebahq256": _TRANSFER + "celebahq-res256-mirror-paper256-kimg100000-ada-target0.5.pkl",
    "lsundog256": _TRANSFER + "lsundog-res256-paper256-kimg100000-noaug.pkl",
})


def _known() -> dict[str, KnownFile]:
    """The StyleGAN2 network pickles of stylegan2-ada-pytorch's README and train.py and of
    stylegan3's README (its StyleGAN2 list; StyleGAN3 networks are not StyleGAN2 and not read)."""
    files = {url: KnownFile(f"--resume {name}: transfer-learning source network")
             for name, url in RESUME_SHORTCUTS.items()}
    for name, what in (("ffhq", "FFHQ 1024, StyleGAN2"), ("metfaces", "MetFaces 1024, ADA from FFHQ"),
                       ("afhqcat", "AFHQ Cat 512, ADA"), ("afhqdog", "AFHQ Dog 512, ADA"),
                       ("afhqwild", "AFHQ Wild 512, ADA"), ("brecahad", "BreCaHAD 512, ADA"),
                       ("cifar10", "CIFAR-10 32, class-conditional")):
        files[f"{_ADA}{name}.pkl"] = KnownFile(what)
    for name in ("ffhq-1024x1024", "ffhq-512x512", "ffhq-256x256", "ffhqu-1024x1024", "ffhqu-256x256",
                 "metfaces-1024x1024", "metfacesu-1024x1024", "afhqv2-512x512", "afhqcat-512x512",
                 "afhqdog-512x512", "afhqwild-512x512", "brecahad-512x512", "cifar10-32x32",
                 "celebahq-256x256", "lsundog-256x256"):
        files[f"{_NGC_SG2}stylegan2-{name}.pkl"] = KnownFile(f"StyleGAN2 {name} (stylegan3 repository)")
    return files


KNOWN_FILES: Mapping[str, KnownFile] = MappingProxyType(_known())


# ================================================================================ names


def is_url(path: str | os.PathLike) -> bool:
    """True for http(s) URLs (what is downloaded); everything else is a local path."""
    return isinstance(path, str) and path.lower().startswith(("http://", "https://"))


def cache_root() -> Path:
    """``$STYLEGAN_CACHE``, else ``~/.cache/stylegan`` (read at call time: no global state)."""
    env = os.environ.get(ENV_CACHE)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "stylegan"


def _split(url: str) -> tuple[str, str | None]:
    """``URL#sha256=HEX`` -> (URL, hex); other fragments are dropped (they never reach a server)."""
    base, _, fragment = url.partition("#")
    key, _, value = fragment.partition("=")
    if key == "sha256":
        if not _SHA256.match(value.lower()):
            raise RemoteError(f"{url}: '#sha256=' must be followed by 64 hex digits")
        return base, value.lower()
    return base, None


def expected_sha256(url: str) -> str | None:
    """The sha256 a URL must have: its ``#sha256=`` fragment, else :data:`KNOWN_FILES`'."""
    base, pinned = _split(url)
    known = KNOWN_FILES.get(base)
    return pinned or (known.sha256 if known else None)


def cache_path(url: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where ``url`` is (or will be) cached: ``<cache>/downloads/<sha256(url)[:16]>_<name>``."""
    base, _ = _split(url)
    name = Path(urllib.parse.unquote(urllib.parse.urlsplit(base).path)).name or "download"
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name)[-100:]
    root = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    return root / DOWNLOADS / f"{hashlib.sha256(base.encode()).hexdigest()[:16]}_{name}"


def resume_url(spec: str) -> str | None:
    """The URL a ``--resume`` value names: an official shortcut's, or the value if it is a URL.

    An existing local path of the same name wins over a shortcut (the official ``train.py``
    checks the names first; a run directory called ``ffhq256`` should not start a download)."""
    if is_url(spec):
        return spec
    if spec in RESUME_SHORTCUTS and not os.path.exists(spec):
        return RESUME_SHORTCUTS[spec]
    return None


# ============================================================================= download


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _mismatch(url: str, got: str, want: str) -> RemoteError:
    return RemoteError(f"{url}: the download's sha256 is {got}, expected {want}; it was not kept "
                       f"(a changed or damaged file)")


def _stream(url: str, tmp: Path, name: str, progress: bool, timeout: float) -> tuple[int, str]:
    """Write the body of ``url`` into ``tmp`` -> (bytes, sha256). Raises what urllib raises."""
    request = urllib.request.Request(url, headers={"User-Agent": f"stylegan/{__version__}"})
    with urllib.request.urlopen(request, timeout=timeout) as resp, open(tmp, "xb") as f:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        h, n = hashlib.sha256(), 0
        bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                   desc=f"downloading {name}",
                   disable=not progress, dynamic_ncols=True)
        with bar:
            while chunk := resp.read(CHUNK):
                f.write(chunk)
                h.update(chunk)
                n += len(chunk)
                bar.update(len(chunk))
        if total is not None and n != total:  # urllib ends a cut body quietly; say so here
            raise RemoteError(f"{url}: the download was cut off after {n} of {total} bytes; nothing "
                              f"was cached, run again to retry")
        if n == 0:
            raise RemoteError(f"{url}: the server sent no data")
        f.flush()
        os.fsync(f.fileno())
    return n, h.hexdigest()


def _download(url: str, target: Path, want: str | None, progress: bool, timeout: float) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.part")
    try:
        try:
            _, got = _stream(url, tmp, target.name.split("_", 1)[-1], progress, timeout)
        except urllib.error.HTTPError as e:
            raise RemoteError(f"cannot download {url}: HTTP {e.code} {e.reason}") from None
        except urllib.error.URLError as e:
            raise RemoteError(f"cannot download {url}: {e.reason} (offline? a URL is downloaded once "
                              f"into {target.parent}; or give a local file)") from None
        except (OSError, http.client.HTTPException) as e:  # reset, timeout, chunked body cut short
            raise RemoteError(f"{url}: the download failed ({type(e).__name__}: {e}); nothing was "
                              f"cached, run again to retry") from None
        if want is not None and got != want:
            raise _mismatch(url, got, want)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def fetch(url: str, *, cache_dir: str | os.PathLike | None = None, progress: bool = True,
          timeout: float = TIMEOUT_S) -> Path:
    """The cached file of ``url``, downloaded first if it is not cached (see the module docstring)."""
    base, _ = _split(url)
    want = expected_sha256(url)
    target = cache_path(url, cache_dir)
    if target.is_file():
        if want is None:
            return target
        got = sha256_file(target)
        if got == want:
            return target
        target.unlink()  # pinned to another checksum than what was cached: fetch it again
    _download(base, target, want, progress, timeout)
    return target


def resolve_path(path: str | os.PathLike, *, progress: bool = True) -> Path:
    """A local path as it is; an http(s) URL as its cached download; ``file://`` URLs as paths."""
    if is_url(path):
        return fetch(os.fspath(path), progress=progress)
    if isinstance(path, str) and path.startswith("file://"):
        return Path(urllib.request.url2pathname(urllib.parse.urlsplit(path).path))
    return Path(path)
