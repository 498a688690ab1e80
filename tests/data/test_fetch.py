"""Tests for ``distjudge_eval.data.fetch`` against a local HTTP server.

The server serves the real data dir under ``/<dest>``, so a clean fetch through it proves that
the hashes pinned in ``SOURCES`` are those of the real files (and the layout matches).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import socket
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

import pytest

from distjudge_eval.data.fetch import (
    SOURCES,
    ChecksumError,
    FetchError,
    RemoteFile,
    StructureError,
    VerificationError,
    fetch,
)
from distjudge_eval.errors import UserError

PINNED = ("snli", "summeval", "mt_bench", "chaosnli")
MNLI_KEY = "mnli/multinli_1.0.zip"
MATCHED = "multinli_1.0/multinli_1.0_dev_matched.jsonl"
MISMATCHED = "multinli_1.0/multinli_1.0_dev_mismatched.jsonl"


def _key(rf: RemoteFile) -> str:
    """Path on the test server for ``rf.url``: its dest, or ``<dataset>/<zip name>``."""
    if rf.member is None:
        return rf.dest
    return f"{rf.dataset}/{PurePosixPath(urlparse(rf.url).path).name}"


URL_KEYS = {rf.url: _key(rf) for files in SOURCES.values() for rf in files}


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _Server:
    """Threaded http.server on 127.0.0.1 serving an in-memory ``files`` dict."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.truncated: dict[str, bytes] = {}  # served with a Content-Length that lies
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                key = unquote(urlparse(self.path).path).lstrip("/")
                server.requests.append(key)
                if key in server.files:
                    body = server.files[key]
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif key in server.truncated:
                    body = server.truncated[key]
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body) + 100))
                    self.end_headers()
                    self.wfile.write(body)
                    self.close_connection = True
                else:
                    self.send_error(404, "not found")

            def log_message(self, *_args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def rewrite(self, url: str) -> str:
        return f"{self.base}/{URL_KEYS[url]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="session")
def real_files(data_dir: Path) -> dict[str, bytes]:
    """Bytes of every pinned file in the real data dir, keyed by dest."""
    return {rf.dest: (data_dir / rf.dest).read_bytes() for name in PINNED for rf in SOURCES[name]}


@pytest.fixture
def server(real_files: dict[str, bytes]) -> Iterator[_Server]:
    srv = _Server()
    srv.files.update(real_files)
    try:
        yield srv
    finally:
        srv.close()


def _dests(*names: str) -> list[str]:
    return [rf.dest for name in names for rf in SOURCES[name]]


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".part")]


def _saved(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


# --------------------------------------------------------------------------- SOURCES


def test_sources_cover_the_real_layout(data_dir: Path) -> None:
    assert list(SOURCES) == ["snli", "summeval", "mt_bench", "mnli", "chaosnli"]
    assert [len(SOURCES[k]) for k in SOURCES] == [1, 12, 10, 2, 3]
    dests = [rf.dest for files in SOURCES.values() for rf in files]
    assert len(dests) == len(set(dests))
    for name, files in SOURCES.items():
        for rf in files:
            assert rf.dataset == name
            assert rf.dest.startswith(f"{name}/")
            if name == "mnli":
                assert (rf.checksum_kind, rf.checksum) == ("none", None)
                assert rf.member is not None
                continue
            parts = urlparse(rf.url)
            assert (parts.scheme, parts.netloc) == ("https", "raw.githubusercontent.com")
            commit = parts.path.split("/")[3]
            assert len(commit) == 40
            assert set(commit) <= set("0123456789abcdef"), commit
            width = {"git_blob_sha1": 40, "md5": 32}[rf.checksum_kind]
            assert rf.checksum is not None
            assert len(rf.checksum) == width
    on_disk = {
        p.relative_to(data_dir).as_posix()
        for name in PINNED
        for p in (data_dir / name).rglob("*")
        if p.is_file() and p.name != "SOURCE.md"
    }
    assert on_disk == set(_dests(*PINNED))


# --------------------------------------------------------------------------- pinned files


def test_fetch_real_files_then_nothing_to_do(
    tmp_path: Path, server: _Server, real_files: dict[str, bytes]
) -> None:
    report = fetch(tmp_path, PINNED, url_rewrite=server.rewrite)
    assert report.downloaded == _dests(*PINNED)
    assert report.skipped_present == []
    assert report.replaced == []
    assert report.error is None
    assert _saved(tmp_path) == set(real_files)
    for dest, data in real_files.items():
        assert (tmp_path / dest).read_bytes() == data, dest
    assert "26 downloaded" in report.summary()

    server.requests.clear()
    again = fetch(tmp_path, PINNED, url_rewrite=server.rewrite)
    assert again.downloaded == []
    assert again.skipped_present == _dests(*PINNED)
    assert server.requests == []


def test_present_mismatch_is_replaced_and_force_redownloads(
    tmp_path: Path, server: _Server, real_files: dict[str, bytes]
) -> None:
    dest = "snli/snli_1.0_dev.jsonl.gz"
    (tmp_path / "snli").mkdir()
    (tmp_path / dest).write_bytes(b"stale")
    report = fetch(tmp_path, "snli", url_rewrite=server.rewrite)
    assert report.downloaded == [dest]
    assert report.replaced == [dest]
    assert (tmp_path / dest).read_bytes() == real_files[dest]

    forced = fetch(tmp_path, ["snli"], url_rewrite=server.rewrite, force=True)
    assert forced.downloaded == [dest]
    assert forced.replaced == []
    assert server.requests.count(dest) == 2


def test_flipped_byte_raises_and_keeps_finished_files(
    tmp_path: Path, server: _Server, real_files: dict[str, bytes]
) -> None:
    files = SOURCES["mt_bench"]
    bad = files[2]
    data = bytearray(real_files[bad.dest])
    data[len(data) // 2] ^= 0x01
    server.files[bad.dest] = bytes(data)

    with pytest.raises(ChecksumError) as info:
        fetch(tmp_path, ["mt_bench"], url_rewrite=server.rewrite)
    err = info.value
    assert isinstance(err, ValueError)
    msg = str(err)
    assert bad.dest in msg
    assert bad.checksum is not None
    assert bad.checksum in msg
    assert _git_blob_sha1(bytes(data)) in msg
    assert (err.expected, err.actual) == (bad.checksum, _git_blob_sha1(bytes(data)))

    assert not (tmp_path / bad.dest).exists()
    assert _leftovers(tmp_path) == []
    finished = [rf.dest for rf in files[:2]]
    assert _saved(tmp_path) == set(finished)
    for dest in finished:
        assert (tmp_path / dest).read_bytes() == real_files[dest]
    assert err.report is not None
    assert err.report.downloaded == finished
    assert bad.dest in err.report.summary()


def test_unknown_dataset_lists_valid_names(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"'nope'.*valid: snli, summeval, mt_bench, mnli, chaosnli"):
        fetch(tmp_path, ["snli", "nope"])
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- network errors


def test_http_404_names_the_url(tmp_path: Path, server: _Server) -> None:
    dest = "summeval/M13_outputs_annotations.jsonl"
    del server.files[dest]
    with pytest.raises(FetchError, match="HTTP 404") as info:
        fetch(tmp_path, ["summeval"], url_rewrite=server.rewrite)
    url = f"{server.base}/{dest}"
    assert url in str(info.value)
    assert info.value.url == url
    (original,) = [rf.url for rf in SOURCES["summeval"] if rf.dest == dest]
    assert original in str(info.value)
    assert _leftovers(tmp_path) == []
    assert info.value.report is not None
    assert info.value.report.downloaded == _dests("summeval")[:5]


def test_closed_port_names_the_url(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/snli/snli_1.0_dev.jsonl.gz"
    with pytest.raises(FetchError) as info:
        fetch(tmp_path, ["snli"], url_rewrite=lambda _: url, timeout=5)
    assert url in str(info.value)
    assert _saved(tmp_path) == set()


def test_truncated_body_is_a_fetch_error(
    tmp_path: Path, server: _Server, real_files: dict[str, bytes]
) -> None:
    dest = "snli/snli_1.0_dev.jsonl.gz"
    server.truncated[dest] = server.files.pop(dest)[:1000]
    with pytest.raises(FetchError, match="truncated"):
        fetch(tmp_path, ["snli"], url_rewrite=server.rewrite)
    assert _saved(tmp_path) == set()


# --------------------------------------------------------------------------- MNLI


def _nli_rows(data_dir: Path, n: int) -> bytes:
    """The first ``n`` real SNLI lines: same row shape as MultiNLI's jsonl."""
    with gzip.open(data_dir / "snli" / "snli_1.0_dev.jsonl.gz", "rb") as fh:
        return b"".join(fh.readline() for _ in range(n))


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("multinli_1.0/README.txt", "readme")
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_mnli_extracts_and_verifies_structurally(
    tmp_path: Path, server: _Server, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    matched, mismatched = _nli_rows(data_dir, 12), _nli_rows(data_dir, 30)
    server.files[MNLI_KEY] = _zip({MATCHED: matched, MISMATCHED: mismatched})

    report = fetch(tmp_path, ["mnli"], url_rewrite=server.rewrite)
    m_dest, mm_dest = _dests("mnli")
    assert report.downloaded == [m_dest, mm_dest]
    assert (tmp_path / m_dest).read_bytes() == matched
    assert (tmp_path / mm_dest).read_bytes() == mismatched
    assert _saved(tmp_path) == {m_dest, mm_dest}  # the zip itself is not kept
    assert server.requests.count(MNLI_KEY) == 1  # one download serves both entries
    sha = {
        m_dest: hashlib.sha256(matched).hexdigest(),
        mm_dest: hashlib.sha256(mismatched).hexdigest(),
    }
    assert report.unpinned_sha256 == sha

    out = capsys.readouterr().out
    for dest, digest in sha.items():
        assert f"{dest}: verified STRUCTURALLY only, NOT by a pinned checksum" in out
        assert digest in out
    summary = report.summary()
    assert "no pinned checksum" in summary
    assert all(d in summary for d in sha.values())

    server.requests.clear()
    again = fetch(tmp_path, ["mnli"], url_rewrite=server.rewrite)
    assert again.downloaded == []
    assert again.skipped_present == [m_dest, mm_dest]
    assert again.unpinned_sha256 == sha
    assert server.requests == []


@pytest.mark.parametrize(
    ("case", "pattern", "kept"),
    [
        ("not_a_zip", "not a valid zip archive", 0),
        ("missing_member", "no entry 'multinli_1.0/multinli_1.0_dev_mismatched.jsonl'", 1),
        (
            "row_without_labels",
            r"mnli/multinli_1.0_dev_matched.jsonl: line 3 .*annotator_labels",
            0,
        ),
        ("not_json", r"line 2 is not valid JSON", 0),
        ("html_page", r"line 1 is not valid JSON", 0),
    ],
)
def test_mnli_malformed_fails_clearly(
    tmp_path: Path, server: _Server, data_dir: Path, case: str, pattern: str, kept: int
) -> None:
    good = _nli_rows(data_dir, 5)
    lines = good.splitlines(keepends=True)
    if case == "not_a_zip":
        body = b"PK\x03\x04 this is not really a zip"
    elif case == "missing_member":
        body = _zip({MATCHED: good})
    elif case == "row_without_labels":
        lines[2] = lines[2].replace(b'"annotator_labels"', b'"labels"')
        body = _zip({MATCHED: b"".join(lines), MISMATCHED: good})
    elif case == "not_json":
        lines[1] = lines[1][:-10] + b"\n"
        body = _zip({MATCHED: b"".join(lines), MISMATCHED: good})
    else:
        body = _zip({MATCHED: b"<html><body>Moved</body></html>\n", MISMATCHED: good})
    server.files[MNLI_KEY] = body

    with pytest.raises(StructureError, match=pattern) as info:
        fetch(tmp_path, ["mnli"], url_rewrite=server.rewrite)
    assert isinstance(info.value, VerificationError)
    assert isinstance(info.value, ValueError)
    assert _leftovers(tmp_path) == []
    assert _saved(tmp_path) == set(_dests("mnli")[:kept])
