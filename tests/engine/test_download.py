"""Downloads against a real HTTP server on 127.0.0.1: resume, restart, checksum, cancel."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.download import KNOWN_SOURCES, DownloadError, download, file_name_from_url
from engine.errors import BadInputError
from engine.model_store import ModelStore, main
from tests.conftest import make_tiny_biggan

pytestmark = pytest.mark.timeout(60)

PAYLOAD = np.random.default_rng(0).bytes(200_000)
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
FAST = {"chunk_bytes": 16 * 1024, "timeout_seconds": 5.0, "retry_delay_seconds": 0.0}


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files``; honours ``Range`` unless told not to; can break a transfer."""

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        server = self.server
        data = server.files.get(self.path)
        range_header = self.headers.get("Range")
        server.requests.append((self.path, range_header))
        if data is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
        if match and not server.ignore_range:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Type", server.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.drops_left > 0 and server.drop_after < len(body):
            # Promise the whole body, send part of it, hang up: a broken connection.
            server.drops_left -= 1
            self.wfile.write(body[: server.drop_after])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.files = {"/G_ema_128.pth": PAYLOAD}
    httpd.requests = []
    httpd.ignore_range = False
    httpd.drops_left = 0
    httpd.drop_after = 0
    httpd.content_type = "application/octet-stream"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.url = lambda path="/G_ema_128.pth": f"http://127.0.0.1:{httpd.server_address[1]}{path}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def run(generator):
    """All events of a download and its return value."""
    events = []
    while True:
        try:
            events.append(next(generator))
        except StopIteration as stop:
            return events, stop.value


def test_a_download_lands_verified_with_byte_progress(server, tmp_path):
    dest = tmp_path / "sub" / "G.pth"
    events, finished = run(download(server.url(), dest, expected_sha256=PAYLOAD_SHA256.upper(), **FAST))
    assert finished is True
    assert dest.read_bytes() == PAYLOAD and not Path(f"{dest}.part").exists()
    done = [event.done for event in events]
    assert done == sorted(done) and done[-1] == len(PAYLOAD)
    assert all(event.total == len(PAYLOAD) for event in events)
    assert len(events) >= len(PAYLOAD) // FAST["chunk_bytes"]
    assert events[-1].detail == "G.pth verified" and events[0].extra["url"] == server.url()
    # A second call finds the verified file and downloads nothing.
    again, finished = run(download(server.url(), dest, expected_sha256=PAYLOAD_SHA256, **FAST))
    assert finished and len(again) == 1 and len(server.requests) == 1


def test_a_broken_connection_is_resumed_with_a_range_request(server, tmp_path):
    server.drops_left, server.drop_after = 1, 70_000
    dest = tmp_path / "G.pth"
    events, finished = run(download(server.url(), dest, expected_sha256=PAYLOAD_SHA256, **FAST))
    assert finished and dest.read_bytes() == PAYLOAD
    assert [range_header for _, range_header in server.requests] == [None, "bytes=70000-"]
    assert any(event.extra.get("resumed_from") == 70_000 for event in events)


def test_a_partial_file_from_an_earlier_call_is_resumed(server, tmp_path):
    dest = tmp_path / "G.pth"
    Path(f"{dest}.part").write_bytes(PAYLOAD[:50_000])
    _, finished = run(download(server.url(), dest, expected_sha256=PAYLOAD_SHA256, **FAST))
    assert finished and dest.read_bytes() == PAYLOAD
    assert server.requests == [("/G_ema_128.pth", "bytes=50000-")]


def test_a_complete_partial_file_is_finished_after_a_416(server, tmp_path):
    dest = tmp_path / "G.pth"
    Path(f"{dest}.part").write_bytes(PAYLOAD)
    _, finished = run(download(server.url(), dest, expected_sha256=PAYLOAD_SHA256, **FAST))
    assert finished and dest.read_bytes() == PAYLOAD


def test_a_server_that_ignores_range_restarts_the_file_cleanly(server, tmp_path):
    server.ignore_range = True
    dest = tmp_path / "G.pth"
    Path(f"{dest}.part").write_bytes(b"\xff" * 50_000)        # would corrupt the file if appended to
    events, finished = run(download(server.url(), dest, expected_sha256=PAYLOAD_SHA256, **FAST))
    assert finished and dest.read_bytes() == PAYLOAD
    assert server.requests == [("/G_ema_128.pth", "bytes=50000-")]
    assert events[0].extra["resumed_from"] == 0 and events[0].done == 0


def test_a_wrong_checksum_deletes_the_file_and_names_the_url(server, tmp_path):
    dest = tmp_path / "G.pth"
    wrong = hashlib.sha256(b"another file").hexdigest()
    with pytest.raises(DownloadError, match=re.escape(server.url()) + ".*SHA-256") as raised:
        run(download(server.url(), dest, expected_sha256=wrong, **FAST))
    assert isinstance(raised.value, BadInputError)
    assert not dest.exists() and not Path(f"{dest}.part").exists()


def test_cancel_leaves_no_partial_file(server, tmp_path):
    dest = tmp_path / "G.pth"
    stop = threading.Event()
    generator = download(server.url(), dest, expected_sha256=PAYLOAD_SHA256, should_stop=stop, **FAST)
    events = []
    for event in generator:
        events.append(event)
        if event.done > 0:
            assert Path(f"{dest}.part").exists()
            stop.set()
    assert 0 < events[-1].done < len(PAYLOAD)
    assert not dest.exists() and not Path(f"{dest}.part").exists()


def test_abandoning_the_generator_counts_as_cancel(server, tmp_path):
    dest = tmp_path / "G.pth"
    generator = download(server.url(), dest, expected_sha256=None, **FAST)
    for event in generator:
        if event.done > 0:
            break
    generator.close()
    assert not dest.exists() and not Path(f"{dest}.part").exists()


def test_errors_a_retry_cannot_fix_fail_at_once(server, tmp_path):
    with pytest.raises(DownloadError, match=r"/missing.pth: the server answered HTTP 404"):
        run(download(server.url("/missing.pth"), tmp_path / "x.pth", expected_sha256=None, **FAST))
    server.content_type = "text/html; charset=utf-8"
    with pytest.raises(DownloadError, match="web page"):
        run(download(server.url(), tmp_path / "y.pth", expected_sha256=None, **FAST))
    with pytest.raises(DownloadError, match="only http"):
        run(download("file:///etc/passwd", tmp_path / "z.pth", expected_sha256=None, **FAST))
    (tmp_path / "exists.pth").write_bytes(b"x")
    with pytest.raises(DownloadError, match="already exists"):
        run(download(server.url(), tmp_path / "exists.pth", expected_sha256=None, **FAST))
    assert len(server.requests) == 2


def test_a_download_that_keeps_breaking_gives_up_and_keeps_the_part(server, tmp_path):
    server.ignore_range = True
    server.drops_left, server.drop_after = 100, 30_000
    dest = tmp_path / "G.pth"
    with pytest.raises(DownloadError, match="failed 3 times in a row"):
        run(download(server.url(), dest, expected_sha256=PAYLOAD_SHA256, max_attempts=3, **FAST))
    assert len(server.requests) == 4        # one that got further, then three without new bytes
    assert Path(f"{dest}.part").stat().st_size == 30_000 and not dest.exists()


def test_refused_connections_are_retried_then_reported(tmp_path):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/G.pth"
    with pytest.raises(DownloadError, match=re.escape(url) + ".*failed 2 times"):
        run(download(url, tmp_path / "G.pth", expected_sha256=None, max_attempts=2, **FAST))


def test_known_sources_are_the_released_file_names(checkpoint_manifests):
    expected = checkpoint_manifests["_meta"]["download"]["expected_files"]
    assert [source.file_name for source in KNOWN_SOURCES] == expected
    for source in KNOWN_SOURCES:
        assert source.sha256 is None and source.url is None and "URL" in source.note
    for source in KNOWN_SOURCES:
        assert checkpoint_manifests[source.release]["files"][source.role] == source.file_name


def test_file_names_from_urls():
    assert file_name_from_url("https://h/x/G_ema_128.pth?dl=1") == "G_ema_128.pth"
    assert file_name_from_url("https://h/x/D%5F128.pth") == "D_128.pth"
    assert file_name_from_url("https://h/", fallback="G.pth") == "G.pth"
    assert file_name_from_url("https://h/..%2Fetc%2Fpasswd", fallback="G.pth") == "G.pth"


# -- through the store and the command line ----------------------------------------


@pytest.fixture
def served_pair(server):
    generator, discriminator = make_tiny_biggan()
    import io

    files = {}
    for name, module in (("/G_ema_32.pth", generator), ("/D_32.pth", discriminator)):
        buffer = io.BytesIO()
        torch.save(module.state_dict(), buffer)
        files[name] = buffer.getvalue()
    server.files.update(files)
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def test_cli_download_imports_a_verified_pair(server, served_pair, tmp_path, capsys):
    root = tmp_path / "models"
    argv = ["--root", str(root), "download", server.url("/G_ema_32.pth"), server.url("/D_32.pth"),
            "--sha256", served_pair["/G_ema_32.pth"], "--sha256", served_pair["/D_32.pth"], "--name", "tiny"]
    assert main(argv) == 0
    model_id = capsys.readouterr().out.strip()
    model = ModelStore(root).get(model_id)
    assert model.kind == "BigGAN-32 ch4" and model.has_discriminator and model.name == "tiny"
    assert sorted(record["name"] for record in model.card["files"].values()) == ["D_32.pth", "G_ema_32.pth"]
    assert model.card["files"]["G"]["original"] == server.url("/G_ema_32.pth")
    assert model.card["files"]["D"]["sha256"] == served_pair["/D_32.pth"]
    assert json.loads((model.folder / "model.json").read_text())["source"].startswith("http://127.0.0.1")
    assert not any((root / ".downloads").rglob("*"))


def test_cli_download_with_a_wrong_checksum_stores_nothing(server, served_pair, tmp_path, capsys):
    root = tmp_path / "models"
    wrong = "0" * 64
    assert main(["--root", str(root), "download", server.url("/G_ema_32.pth"), "--sha256", wrong]) == 2
    err = capsys.readouterr().err
    assert "SHA-256" in err and server.url("/G_ema_32.pth") in err
    assert ModelStore(root).list().ids[1:] == [] and not any((root / ".downloads").rglob("*.pth*"))


def test_download_and_import_can_be_cancelled(server, served_pair, tmp_path):
    store = ModelStore(tmp_path / "models")
    stop = threading.Event()
    result = store.download_and_import(
        [server.url("/G_ema_32.pth")], [served_pair["/G_ema_32.pth"]], should_stop=stop,
        on_progress=lambda event: stop.set(), **FAST,
    )
    assert result is None
    assert not any((store.root / ".downloads").rglob("*.pth*"))
    assert [model.id for model in store.list() if not model.builtin] == []
