"""hub: registry, verified downloads from a real local HTTP server, and safe archive extraction."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import os
import random
import socket
import stat
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bertnli_helpers import hub
from bertnli_helpers.errors import (
    BertNLIError,
    ChecksumError,
    DownloadError,
    UnknownResourceError,
    UnsafeArchiveError,
)


@pytest.fixture(autouse=True)
def _private_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Names registered by a test must not leak into other tests."""
    monkeypatch.setattr(hub, "REGISTRY", dict(hub.REGISTRY))


def _payload(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    """Temporary files or folders a download or extraction might have left behind."""
    return sorted(
        p.name for p in folder.iterdir() if p.name.endswith((".part", ".partial", ".old"))
    )


def _closed_port_url(name: str = "file.bin") -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class _Truncating(_Handler):
    """Promises 1000 bytes, sends 10, then closes the connection."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"x" * 10)


class _Unavailable(_Handler):
    def do_GET(self) -> None:
        self.send_error(503, "Service Unavailable")


@contextlib.contextmanager
def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


# --------------------------------------------------------------------------------------------
# registry, cache folder, hashing


def test_registry_holds_the_books_resources() -> None:
    snli = hub.resource("SNLI")
    assert snli.url == "https://nlp.stanford.edu/projects/snli/snli_1.0.zip"
    assert snli.sha1 == "9fcde07509c7e87ec61c640c1b2753d9041758e4"
    assert snli.folder == "snli_1.0"
    assert snli.file_name == "snli_1.0.zip"
    base = hub.resource("bert.base")
    assert base.url == "http://d2l-data.s3-accelerate.amazonaws.com/bert.base.torch.zip"
    assert base.sha1 == "225d66f04cae318b841a13d32af3acc165f253ac"
    assert base.folder == "bert.base.torch"
    small = hub.resource("bert.small")
    assert small.url == "http://d2l-data.s3-accelerate.amazonaws.com/bert.small.torch.zip"
    assert small.sha1 == "c72329e68a732bef0452e4b96a1c341c8910f81f"
    assert small.folder == "bert.small.torch"
    with pytest.raises(AttributeError):
        snli.url = "http://elsewhere/"  # type: ignore[misc]


def test_unknown_resource_names_the_known_ones() -> None:
    with pytest.raises(KeyError) as info:
        hub.resource("bert.huge")
    assert isinstance(info.value, UnknownResourceError)
    message = str(info.value)
    assert "'bert.huge'" in message
    for known in ("SNLI", "bert.base", "bert.small"):
        assert known in message
    with pytest.raises(UnknownResourceError, match=r"bert\.small"):
        hub.download("bert.huge")
    with pytest.raises(UnknownResourceError, match=r"bert\.small"):
        hub.download_extract("bert.huge")


def test_register_adds_and_replaces_and_checks_the_hash() -> None:
    entry = hub.register("toy", "http://127.0.0.1:1/toy.zip", "A" * 40, folder="toy")
    assert hub.resource("toy") == entry
    assert entry.sha1 == "a" * 40  # stored in the form hexdigest() gives
    replaced = hub.register("toy", "http://127.0.0.1:1/other.zip", "b" * 40)
    assert hub.resource("toy") == replaced and replaced.folder is None
    with pytest.raises(ValueError, match="40 hexadecimal"):
        hub.register("bad", "http://127.0.0.1:1/x.zip", "not-a-hash")


def test_cache_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "a" / "b"
    monkeypatch.setenv("BERTNLI_CACHE_DIR", str(target))
    assert hub.cache_dir() == target and target.is_dir()
    monkeypatch.delenv("BERTNLI_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    default = hub.cache_dir()
    assert default == tmp_path / "home" / ".cache" / "bertnli" and default.is_dir()


def test_sha1_of_matches_hashlib_across_chunk_boundaries(tmp_path: Path) -> None:
    data = _payload(3 * hub.CHUNK_SIZE + 7)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert hub.sha1_of(path) == _sha1(data)
    (tmp_path / "empty").write_bytes(b"")
    assert hub.sha1_of(tmp_path / "empty") == _sha1(b"")


# --------------------------------------------------------------------------------------------
# download


def test_download_verifies_then_reuses_the_cache_without_network(http_server) -> None:
    data = _payload(2 * hub.CHUNK_SIZE + 123)
    (http_server.root / "toy.bin").write_bytes(data)
    hub.register("toy", http_server.url("toy.bin"), _sha1(data))

    path = hub.download("toy", progress=False)
    assert path == hub.cache_dir() / "toy.bin"
    assert path.read_bytes() == data
    assert _leftovers(hub.cache_dir()) == []
    stamp = path.stat().st_mtime_ns

    http_server.close()  # from here on, any network access would fail
    again = hub.download("toy", progress=False)
    assert again == path and again.read_bytes() == data
    assert again.stat().st_mtime_ns == stamp


def test_wrong_checksum_is_an_error_and_leaves_no_file(http_server) -> None:
    data = b"not what was registered"
    (http_server.root / "toy.zip").write_bytes(data)
    wrong = "0123456789abcdef0123456789abcdef01234567"
    hub.register("toy", http_server.url("toy.zip"), wrong)

    with pytest.raises(ChecksumError) as info:
        hub.download("toy", progress=False)
    message = str(info.value)
    final = hub.cache_dir() / "toy.zip"
    assert wrong in message
    assert _sha1(data) in message
    assert http_server.url("toy.zip") in message
    assert str(final) in message and "BERTNLI_CACHE_DIR" in message
    assert not final.exists()
    assert list(hub.cache_dir().iterdir()) == []


def test_truncated_download_is_an_error_and_leaves_no_file() -> None:
    with _serve(_Truncating) as base:
        hub.register("toy", base + "toy.zip", _sha1(b"x" * 1000))
        with pytest.raises(DownloadError, match="truncated: got 10 of 1000 bytes"):
            hub.download("toy", progress=False)
    assert not (hub.cache_dir() / "toy.zip").exists()
    assert list(hub.cache_dir().iterdir()) == []


def test_server_down_says_which_url_and_where_to_put_the_file() -> None:
    url = _closed_port_url("snli_1.0.zip")
    sha1 = hub.resource("SNLI").sha1
    hub.register("SNLI", url, sha1, folder="snli_1.0")
    with pytest.raises(DownloadError) as info:
        hub.download("SNLI", progress=False)
    message = str(info.value)
    final = hub.cache_dir() / "snli_1.0.zip"
    assert url in message
    assert "offline" in message
    assert str(final) in message and sha1 in message
    assert "BERTNLI_CACHE_DIR" in message
    assert isinstance(info.value, OSError)
    assert list(hub.cache_dir().iterdir()) == []


def test_file_placed_by_hand_is_used_offline() -> None:
    data = b"a file copied from another machine"
    hub.register("toy", _closed_port_url("toy.bin"), _sha1(data))
    (hub.cache_dir() / "toy.bin").write_bytes(data)
    assert hub.download("toy", progress=False).read_bytes() == data


def test_http_404_is_a_download_error(http_server) -> None:
    url = http_server.url("missing.zip")
    hub.register("toy", url, "a" * 40)
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        hub.download("toy", progress=False)
    assert url in str(info.value)
    assert list(hub.cache_dir().iterdir()) == []


def test_http_503_is_a_download_error() -> None:
    with _serve(_Unavailable) as base, pytest.raises(DownloadError, match="HTTP 503"):
        hub.register("toy", base + "toy.zip", "a" * 40)
        hub.download("toy", progress=False)
    assert list(hub.cache_dir().iterdir()) == []


def test_a_silent_server_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub, "TIMEOUT", 0.3)
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/toy.zip"
        hub.register("toy", url, "a" * 40)
        with pytest.raises(DownloadError, match="timed out") as info:
            hub.download("toy", progress=False)
    assert url in str(info.value)
    assert list(hub.cache_dir().iterdir()) == []


def test_corrupted_cached_file_is_replaced_by_a_good_download(http_server) -> None:
    data = _payload(5000, seed=1)
    (http_server.root / "toy.bin").write_bytes(data)
    hub.register("toy", http_server.url("toy.bin"), _sha1(data))
    cached = hub.cache_dir() / "toy.bin"
    cached.write_bytes(data[:-1] + b"!")  # one byte off

    path = hub.download("toy", progress=False)
    assert path == cached and path.read_bytes() == data
    assert _leftovers(hub.cache_dir()) == []


def test_failed_redownload_leaves_the_cached_file_alone(http_server) -> None:
    good = b"the registered content"
    hub.register("toy", http_server.url("toy.bin"), _sha1(good))
    cached = hub.cache_dir() / "toy.bin"
    cached.write_bytes(b"stale bytes")

    (http_server.root / "toy.bin").write_bytes(b"something else entirely")
    with pytest.raises(ChecksumError):
        hub.download("toy", progress=False)
    assert cached.read_bytes() == b"stale bytes"

    http_server.close()
    with pytest.raises(DownloadError) as info:
        hub.download("toy", progress=False)
    assert cached.read_bytes() == b"stale bytes"
    assert _sha1(b"stale bytes") in str(info.value)  # says why the cached file was not used
    assert _leftovers(hub.cache_dir()) == []


def test_progress_bar_only_when_asked(http_server, capsys: pytest.CaptureFixture[str]) -> None:
    data = _payload(10_000, seed=2)
    (http_server.root / "quiet.bin").write_bytes(data)
    (http_server.root / "loud.bin").write_bytes(data)
    hub.register("quiet", http_server.url("quiet.bin"), _sha1(data))
    hub.register("loud", http_server.url("loud.bin"), _sha1(data))
    hub.download("quiet", progress=False)
    assert capsys.readouterr().err == ""
    hub.download("loud", progress=True)
    assert "loud.bin" in capsys.readouterr().err


def test_url_without_a_file_name_is_refused() -> None:
    with pytest.raises(ValueError, match="file name"):
        hub.register("toy", "http://127.0.0.1:1/", "a" * 40)
    assert "toy" not in hub.REGISTRY


# --------------------------------------------------------------------------------------------
# extraction


def _make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize(
    "bad", ["../evil", "/abs/evil", "sub/../../evil", "..\\evil", "C:/evil", "a/./../../evil"]
)
def test_zip_member_escaping_the_target_is_refused(tmp_path: Path, bad: str) -> None:
    archive = _make_zip(tmp_path / "bad.zip", {"ok.txt": b"fine", bad: b"pwned"})
    parent = tmp_path / "out"
    target = parent / "target"
    with pytest.raises(UnsafeArchiveError) as info:
        hub.extract(archive, target)
    assert repr(bad) in str(info.value)
    assert not target.exists()
    assert list(parent.iterdir()) == []  # no partial folder either
    assert not any(p.name == "evil" for p in tmp_path.rglob("*"))
    assert not Path("/abs/evil").exists()


def test_zip_member_with_harmless_dotdot_is_extracted(tmp_path: Path) -> None:
    archive = _make_zip(tmp_path / "ok.zip", {"a/../b.txt": b"b", "./c/d.txt": b"d", "e/": b""})
    out = hub.extract(archive, tmp_path / "out")
    assert (out / "b.txt").read_bytes() == b"b"
    assert (out / "c" / "d.txt").read_bytes() == b"d"
    assert (out / "e").is_dir()
    assert not (out / "a").exists()  # '..' is applied, not silently dropped


def test_zip_symlink_member_is_written_as_a_plain_file(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    link = zipfile.ZipInfo("toy/link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16  # how zip stores a symbolic link
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(link, "../../outside")
    out = hub.extract(archive, tmp_path / "out")
    assert not (out / "toy" / "link").is_symlink()
    assert (out / "toy" / "link").read_bytes() == b"../../outside"


def test_extract_reuses_a_complete_folder_and_redoes_a_stale_one(tmp_path: Path) -> None:
    archive = _make_zip(tmp_path / "toy.zip", {"toy/a.txt": b"a"})
    target = tmp_path / "toy"
    assert hub.extract(archive, target) == target
    assert (target / hub.MARKER).read_text().strip() == hub.sha1_of(archive)

    (target / "sentinel").write_text("kept")
    hub.extract(archive, target)
    assert (target / "sentinel").exists()  # re-used, not extracted again

    (target / hub.MARKER).write_text("f" * 40)  # from some other archive
    (target / "toy" / "a.txt").write_bytes(b"edited")
    hub.extract(archive, target)
    assert not (target / "sentinel").exists()
    assert (target / "toy" / "a.txt").read_bytes() == b"a"

    (target / hub.MARKER).unlink()  # a folder without a marker is never trusted
    (target / "sentinel").write_text("stale")
    hub.extract(archive, target)
    assert not (target / "sentinel").exists()
    assert _leftovers(tmp_path) == []


def test_extract_refuses_unknown_formats(tmp_path: Path) -> None:
    (tmp_path / "data.rar").write_bytes(b"Rar!")
    with pytest.raises(ValueError, match=r"\.zip"):
        hub.extract(tmp_path / "data.rar", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_download_extract_of_a_registered_zip(http_server) -> None:
    members = {
        "toy/vocab.json": b'["<unk>", "<pad>"]',
        "toy/sub/pretrained.params": _payload(3000, seed=3),
        "__MACOSX/toy/._vocab.json": b"mac junk",
    }
    archive = _make_zip(http_server.root / "toy.zip", members)
    hub.register("toy", http_server.url("toy.zip"), hub.sha1_of(archive), folder="toy")

    folder = hub.download_extract("toy", progress=False)
    assert folder == hub.cache_dir() / "toy" / "toy"
    assert (folder / "vocab.json").read_bytes() == members["toy/vocab.json"]
    assert (folder / "sub" / "pretrained.params").read_bytes() == members[
        "toy/sub/pretrained.params"
    ]
    assert _leftovers(hub.cache_dir()) == []

    # offline, and even without the archive, the verified folder is re-used
    http_server.close()
    (hub.cache_dir() / "toy.zip").unlink()
    assert hub.download_extract("toy", progress=False) == folder
    assert (folder / "vocab.json").exists()


def test_download_extract_without_a_folder_returns_the_archive_stem(http_server) -> None:
    archive = _make_zip(http_server.root / "bundle.zip", {"README": b"read me"})
    hub.register("bundle", http_server.url("bundle.zip"), hub.sha1_of(archive))
    folder = hub.download_extract("bundle", progress=False)
    assert folder == hub.cache_dir() / "bundle"
    assert (folder / "README").read_bytes() == b"read me"


def test_download_extract_names_a_missing_folder(http_server) -> None:
    archive = _make_zip(http_server.root / "toy.zip", {"other/a.txt": b"a"})
    hub.register("toy", http_server.url("toy.zip"), hub.sha1_of(archive), folder="toy")
    with pytest.raises(FileNotFoundError, match="other"):
        hub.download_extract("toy", progress=False)


def test_download_extract_refuses_an_unsafe_archive(http_server) -> None:
    archive = _make_zip(http_server.root / "toy.zip", {"toy/a.txt": b"a", "../evil": b"x"})
    hub.register("toy", http_server.url("toy.zip"), hub.sha1_of(archive), folder="toy")
    with pytest.raises(UnsafeArchiveError, match="evil"):
        hub.download_extract("toy", progress=False)
    cache = hub.cache_dir()
    assert not (cache / "toy").exists()
    assert not (cache.parent / "evil").exists()
    assert _leftovers(cache) == []
    assert os.listdir(cache) == ["toy.zip"]  # the verified archive stays; nothing else


# --------------------------------------------------------------------------------------------
# how much an archive may unpack to


def test_an_archive_that_unpacks_far_beyond_its_size_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", bytes(20 * 1024 * 1024))  # 20 MB of zeros: ~20 KB zipped
    with pytest.raises(UnsafeArchiveError, match=r"bomb\.zip.*times its size"):
        hub.extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []


def test_an_archive_over_the_size_limit_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(hub, "MAX_UNPACKED_BYTES", 1024 * 1024)
    archive = _make_zip(tmp_path / "big.zip", {"big/data.bin": _payload(2 * 1024 * 1024)})
    with pytest.raises(UnsafeArchiveError, match=r"big\.zip.*2\.0 MiB.*1\.0 MiB"):
        hub.extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_zip_that_lies_about_its_sizes_is_stopped_while_unpacking(tmp_path: Path) -> None:
    archive = tmp_path / "liar.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data.bin", _payload(64 * 1024))
    raw = bytearray(archive.read_bytes())
    declared = (64 * 1024).to_bytes(4, "little")
    raw[:] = raw.replace(declared, (10).to_bytes(4, "little"))  # local and central headers
    archive.write_bytes(bytes(raw))
    with pytest.raises(BertNLIError, match="liar.zip"):
        hub.extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
