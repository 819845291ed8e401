"""Network files by URL (io.remote): against an HTTP server this test starts on 127.0.0.1.

Cache hit (the second load makes no request), an interrupted download (no cache entry, the next
run succeeds), a wrong checksum (not kept), offline (connection refused: one line naming the URL),
HTTP errors, the official --resume names, and every entry point: stylegan.load, `stylegan
generate --network`, `stylegan info`, `stylegan convert`, training's find_snapshot.
"""
from __future__ import annotations

import hashlib
import http.server
import socket
import threading

import pytest
import torch
from click.testing import CliRunner

import stylegan
from stylegan.cli import main
from stylegan.io import remote
from stylegan.io.checkpoint import save_checkpoint
from stylegan.io.remote import RemoteError, cache_path, fetch
from stylegan.models import Generator, GeneratorConfig, MappingConfig
from stylegan.training.errors import TrainingSetupError
from stylegan.training.plan import find_snapshot


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        srv = self.server
        srv.hits.append(self.path)
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        cut = srv.cut.pop(self.path, None)  # once: send this many bytes, then close
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body if cut is None else body[:cut])
        self.wfile.flush()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch, tmp_path):
    """(base URL, server): `server.files[path] = bytes`, `server.hits` lists requested paths,
    `server.cut[path] = n` makes the next response stop after n bytes. Private cache, no proxy."""
    monkeypatch.setenv("STYLEGAN_CACHE", str(tmp_path / "cache"))
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.files, srv.hits, srv.cut = {}, [], {}
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", srv
    srv.shutdown()
    srv.server_close()


def _closed_port_url(name: str = "net.pkl") -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"  # nothing listens there now: connection refused


def _downloads(tmp_path):
    d = tmp_path / "cache" / "downloads"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def _checkpoint_bytes(tmp_path) -> bytes:
    G = Generator(GeneratorConfig(z_dim=8, w_dim=8, img_resolution=8, channel_base=64, channel_max=8,
                                  mapping=MappingConfig(num_layers=2)))
    path = tmp_path / "G.safetensors"
    save_checkpoint(path, {"G_ema": G})
    return path.read_bytes()


def test_load_by_url_downloads_once_then_reads_the_cache(server, tmp_path, one_thread):
    base, srv = server
    srv.files["/nets/G.safetensors"] = _checkpoint_bytes(tmp_path)
    url = base + "/nets/G.safetensors"
    G = stylegan.load(url)
    assert srv.hits == ["/nets/G.safetensors"]
    assert cache_path(url).read_bytes() == srv.files["/nets/G.safetensors"]
    assert cache_path(url).name.endswith("_G.safetensors")
    G2 = stylegan.load(url)  # cache hit: no second request
    assert srv.hits == ["/nets/G.safetensors"]
    z = torch.randn(2, 8)
    torch.testing.assert_close(G(z, None), G2(z, None), rtol=0, atol=0)
    local = stylegan.load(tmp_path / "G.safetensors")
    torch.testing.assert_close(G(z, None), local(z, None), rtol=0, atol=0)
    assert _downloads(tmp_path) == [cache_path(url).name]  # no temporary files left


def test_interrupted_download_leaves_nothing_and_the_next_run_succeeds(server, tmp_path):
    base, srv = server
    body = bytes(range(256)) * 4000  # 1 MB
    srv.files["/big.pkl"] = body
    srv.cut["/big.pkl"] = len(body) // 3
    with pytest.raises(RemoteError) as e:
        fetch(base + "/big.pkl", progress=False)
    msg = str(e.value)
    assert "\n" not in msg and base + "/big.pkl" in msg
    assert f"cut off after {len(body) // 3} of {len(body)} bytes" in msg and "run again" in msg
    assert _downloads(tmp_path) == []  # no entry, no .part file
    path = fetch(base + "/big.pkl", progress=False)
    assert path.read_bytes() == body and len(srv.hits) == 2


def test_a_wrong_checksum_is_an_error_and_the_file_is_not_kept(server, tmp_path, monkeypatch):
    base, srv = server
    body = b"\x80\x02not really a network" * 100
    srv.files["/net.pkl"] = body
    good = hashlib.sha256(body).hexdigest()
    with pytest.raises(RemoteError, match=rf"sha256 is {good}, expected {'0' * 64}; it was not kept"):
        fetch(base + "/net.pkl#sha256=" + "0" * 64, progress=False)
    assert _downloads(tmp_path) == []
    assert fetch(base + "/net.pkl#sha256=" + good, progress=False).read_bytes() == body
    hits = len(srv.hits)
    assert fetch(base + "/net.pkl#sha256=" + good, progress=False).is_file() and len(srv.hits) == hits

    # A known official file is checked against the table, in the cache as well.
    monkeypatch.setattr(remote, "KNOWN_FILES", {base + "/net.pkl": remote.KnownFile("test", "1" * 64)})
    with pytest.raises(RemoteError, match="expected 1111"):
        fetch(base + "/net.pkl", progress=False)  # the cached copy fails, is refetched, fails
    assert _downloads(tmp_path) == []
    with pytest.raises(RemoteError, match="64 hex digits"):
        fetch(base + "/net.pkl#sha256=abc", progress=False)


def test_offline_and_http_errors_are_one_line_naming_the_url(server, tmp_path):
    base, srv = server
    url = _closed_port_url()
    with pytest.raises(RemoteError) as e:
        fetch(url, progress=False)
    assert str(e.value).startswith(f"cannot download {url}: ") and "offline?" in str(e.value)
    assert "\n" not in str(e.value) and _downloads(tmp_path) == []
    with pytest.raises(RemoteError, match=rf"cannot download {base}/missing.pkl: HTTP 404"):
        fetch(base + "/missing.pkl", progress=False)

    runner = CliRunner()
    for args in (["generate", "--network", url, "--seeds", "0", "--outdir", str(tmp_path / "out")],
                 ["info", url], ["convert", url, str(tmp_path / "x.safetensors")]):
        result = runner.invoke(main, args)
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and f"cannot download {url}" in errors[0], result.output


def test_every_network_option_and_convert_accept_a_url(server, tmp_path, one_thread):
    base, srv = server
    srv.files["/G.safetensors"] = _checkpoint_bytes(tmp_path)
    url = base + "/G.safetensors"
    runner = CliRunner()
    result = runner.invoke(main, ["generate", "--network", url, "--seeds", "0-1", "--outdir", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "downloading G.safetensors" in result.output  # the progress bar (stderr)
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["seed0000.png", "seed0001.png"]
    info = runner.invoke(main, ["info", url])
    assert info.exit_code == 0 and "stylegan safetensors" in info.output, info.output
    conv = runner.invoke(main, ["convert", url, str(tmp_path / "c.pt"), "--to", "rosinality", "--custom-channels"])
    assert conv.exit_code == 0 and (tmp_path / "c.pt").is_file(), conv.output
    assert srv.hits == ["/G.safetensors"]  # one download served all three commands


def test_resume_takes_urls_and_the_official_names(server, tmp_path, monkeypatch):
    base, srv = server
    assert dict(remote.RESUME_SHORTCUTS) == {  # stylegan2-ada-pytorch train.py, resume_specs
        name: "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/transfer-learning-source-nets/" + f
        for name, f in {
            "ffhq256": "ffhq-res256-mirror-paper256-noaug.pkl",
            "ffhq512": "ffhq-res512-mirror-stylegan2-noaug.pkl",
            "ffhq1024": "ffhq-res1024-mirror-stylegan2-noaug.pkl",
            "celebahq256": "celebahq-res256-mirror-paper256-kimg100000-ada-target0.5.pkl",
            "lsundog256": "lsundog-res256-paper256-kimg100000-noaug.pkl",
        }.items()}
    assert all(u in remote.KNOWN_FILES for u in remote.RESUME_SHORTCUTS.values())
    assert remote.resume_url("ffhq256") == remote.RESUME_SHORTCUTS["ffhq256"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ffhq256").mkdir()  # a local run directory of that name wins over the shortcut
    assert remote.resume_url("ffhq256") is None and remote.resume_url("runs/x") is None

    srv.files["/snap.safetensors"] = b"snapshot bytes"
    path, notes = find_snapshot(base + "/snap.safetensors")
    assert path == cache_path(base + "/snap.safetensors") and path.read_bytes() == b"snapshot bytes"
    assert notes and base + "/snap.safetensors" in notes[0]
    with pytest.raises(TrainingSetupError, match=r"--resume http://127\.0\.0\.1:\d+/net\.pkl: cannot download"):
        find_snapshot(_closed_port_url())
    # The shortcut downloads from its URL (here sent to the closed port: no internet in tests).
    monkeypatch.setattr(remote, "RESUME_SHORTCUTS", {"lsundog256": _closed_port_url("lsundog.pkl")})
    with pytest.raises(TrainingSetupError, match=r"--resume lsundog256: cannot download http://127"):
        find_snapshot("lsundog256")


def test_progress_bar_goes_to_stderr(server, capsys):
    base, srv = server
    srv.files["/p.pkl"] = b"x" * 5000
    fetch(base + "/p.pkl")
    out = capsys.readouterr()
    assert "downloading p.pkl" in out.err and "downloading" not in out.out


def test_file_urls_and_paths_pass_through(tmp_path):
    f = tmp_path / "a b.pkl"
    f.write_bytes(b"x")
    assert remote.resolve_path(f) == f and remote.resolve_path(str(f)) == f
    assert remote.resolve_path(f.as_uri()) == f
    assert not remote.is_url(str(f)) and remote.is_url("HTTPS://x/y.pkl")
