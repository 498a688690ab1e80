"""Download the original public data files and verify each one before it is kept.

The evaluation reads its data from a data dir laid out like ``/work/shared/data``
(``snli/``, ``summeval/``, ``mt_bench/``, ``mnli/``). That copy was assembled offline; this
module lets a user with internet rebuild the same layout from the original sources, pinned to
the commits and hashes recorded in each dataset's ``SOURCE.md``, so that results computed on a
fresh machine are computed on byte-identical inputs.

Every file is streamed into a temporary file in its destination folder, verified, and only then
moved into place with :func:`os.replace`, so an interrupted or corrupted download never leaves a
file under its final name. MNLI has no pinned hash (no verified copy was available when the
others were pinned); its files are checked structurally instead and their sha256 is printed so a
user can pin it.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import ssl
import sys
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path, PurePosixPath
from typing import Literal

from tqdm import tqdm

from distjudge_eval.errors import UserError

__all__ = [
    "SOURCES",
    "ChecksumError",
    "FetchError",
    "FetchReport",
    "RemoteFile",
    "StructureError",
    "VerificationError",
    "fetch",
]

ChecksumKind = Literal["git_blob_sha1", "md5", "none"]

_CHUNK = 1 << 20
_USER_AGENT = "distjudge-eval-fetch/1 (+urllib)"


@dataclass(frozen=True)
class RemoteFile:
    """One file of the data dir and where its original copy lives.

    ``dest`` is a POSIX path relative to the data dir. ``checksum_kind`` says how the downloaded
    bytes are checked: ``git_blob_sha1`` (the git object id, so it can be compared with the
    repository's tree), ``md5``, or ``none`` (no pinned hash: checked structurally). ``member``
    is set when ``url`` is a zip archive and the file is one entry of it.
    """

    dataset: str
    dest: str
    url: str
    checksum_kind: ChecksumKind
    checksum: str | None
    member: str | None = None


class FetchError(RuntimeError):
    """A download failed (network, HTTP status, truncated body); the message names the URL."""

    def __init__(self, message: str, url: str) -> None:
        super().__init__(message)
        self.url = url
        self.report: FetchReport | None = None


class VerificationError(ValueError):
    """Downloaded content failed verification; nothing was saved under the final name."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.report: FetchReport | None = None


class ChecksumError(VerificationError):
    """Downloaded bytes do not match the pinned hash (corrupted or changed upstream)."""

    def __init__(self, dest: str, kind: str, expected: str, actual: str, url: str) -> None:
        super().__init__(
            f"checksum mismatch for {dest}: expected {kind} {expected}, got {actual} "
            f"(downloaded from {url}); the download was discarded"
        )
        self.dest = dest
        self.kind = kind
        self.expected = expected
        self.actual = actual
        self.url = url


class StructureError(VerificationError):
    """A file without a pinned hash (or its archive) is not shaped as expected."""


@dataclass
class FetchReport:
    """What :func:`fetch` did, file by file (paths are ``RemoteFile.dest``, relative to ``dest``).

    Attached as ``.report`` to a raised :class:`FetchError` / :class:`VerificationError` too, so
    the caller knows which files were finished (and kept) before the failure.
    """

    dest: Path | None = None
    downloaded: list[str] = field(default_factory=list)
    skipped_present: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unpinned_sha256: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    def summary(self) -> str:
        """Human-readable account, one line per fact, for the CLI to print."""
        where = f" into {self.dest}" if self.dest is not None else ""
        head = (
            f"fetch{where}: {len(self.downloaded)} downloaded, "
            f"{len(self.skipped_present)} already present and verified"
        )
        lines = [head]
        lines += [f"  downloaded: {d}" for d in self.downloaded]
        lines += [f"  replaced (present copy failed verification): {d}" for d in self.replaced]
        lines += [f"  present: {d}" for d in self.skipped_present]
        for dest, digest in self.unpinned_sha256.items():
            lines.append(
                f"  {dest}: verified STRUCTURALLY only, no pinned checksum exists; "
                f"sha256 {digest} (pin this value)"
            )
        if self.error is not None:
            lines.append(f"  STOPPED: {self.error}")
            lines.append("  files listed above as downloaded/present were finished and kept")
        return "\n".join(lines)


def _raw(owner_repo: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{owner_repo}/{commit}/{path}"


def _build_sources() -> dict[str, list[RemoteFile]]:
    """Pinned origins: repo, commit, path and hash as recorded in each dataset's SOURCE.md."""
    snli = [
        RemoteFile(
            "snli",
            "snli/snli_1.0_dev.jsonl.gz",
            _raw(
                "uclnlp/inferbeddings",
                "80492a7aebcdcac21e758514c8af403d77e8594a",
                "data/snli/snli_1.0_dev.jsonl.gz",
            ),
            "git_blob_sha1",
            "4ac1c5d03832761eeeac9a3782a573db616f1fd5",
        )
    ]

    summeval_blobs = {
        8: "9fddaec14af68d730e3d72d5543a1f6f2aec0787",
        9: "9143a063e751d227d3f5d8d10a89ad5d12ed5269",
        10: "efb99af99a400f5edbe5fc139b658bf5e3f10904",
        11: "85d136b85d997cbef84f275a742b801e8f7caea0",
        12: "3aa1762295ec317cf38825b062c8a6a5ed53c3d0",
        13: "1f47d6eaebe712ff70806b6a9e12291e9dd55e71",
        14: "26546e01f92c03af6866c480d699d2b48f0cada5",
        15: "74c2bcb200006627399ad08f3c9f8d47f5d17f29",
        17: "74e5b2bedf7f0c0234649cd4c11d9facb03e8b69",
        20: "e86714bc742b6790f7d193779fbc4ec1577a7ee7",
        22: "1ca686242cde8b28a56af021a85b124abc45722d",
        23: "147d801753ecae52b7d2497cb641ed1dc904499a",
    }
    summeval = [
        RemoteFile(
            "summeval",
            f"summeval/M{m}_outputs_annotations.jsonl",
            _raw(
                "DAMO-NLP-SG/LLM_summeval",
                "bd7dde15817a88940c17574973ff03e750356daa",
                f"model_output_annotations/M{m}_outputs_annotations.jsonl",
            ),
            "git_blob_sha1",
            blob,
        )
        for m, blob in summeval_blobs.items()
    ]

    ku = ("ku-nlp/ja-vicuna-qa-benchmark", "44bd00f58a18232e7360bb2f64a22aee2377c031")
    geronimi = ("geronimi73/FastChat", "945194bb18cbbc2ef3630fc30087114da32085f0")
    lmsys = ("lm-sys/FastChat", "0e6d3e4beaab66f4d3f93db72541a4abab8af28d")
    mt_prefix = "fastchat/llm_judge/data/mt_bench/"
    mt_blobs: list[tuple[str, tuple[str, str], str, str]] = [
        # (dest under mt_bench/, (repo, commit), path in repo, git blob)
        (
            "question.jsonl",
            ku,
            mt_prefix + "question.jsonl",
            "464e2c22f7a021a0f9a584d232338a9a17c40066",
        ),
        (
            "reference_answer/gpt-4.jsonl",
            ku,
            mt_prefix + "reference_answer/gpt-4.jsonl",
            "8b66387a3129cbb117178fe515491df553dd52df",
        ),
        (
            "model_answer/alpaca-13b.jsonl",
            ku,
            mt_prefix + "model_answer/alpaca-13b.jsonl",
            "c13f9b8b717691e9722d675a2c020a9253611b16",
        ),
        (
            "model_answer/claude-v1.jsonl",
            ku,
            mt_prefix + "model_answer/claude-v1.jsonl",
            "6040295dc04cc3ad289eebe23715a2b03bde39e2",
        ),
        (
            "model_answer/gpt-3.5-turbo.jsonl",
            ku,
            mt_prefix + "model_answer/gpt-3.5-turbo.jsonl",
            "a7e20781f3c3282982aa70b5dd09303c3042b33f",
        ),
        (
            "model_answer/gpt-4.jsonl",
            ku,
            mt_prefix + "model_answer/gpt-4.jsonl",
            "fb23458eb1840792b9e43c9b47c1601fb6c0adc5",
        ),
        (
            "model_answer/llama-13b.jsonl",
            ku,
            mt_prefix + "model_answer/llama-13b.jsonl",
            "c79041cb8e8285e345d04c313cb61ad655e69f7b",
        ),
        (
            "model_answer/vicuna-13b-v1.2.jsonl",
            geronimi,
            mt_prefix + "model_answer/vicuna-13b-v1.2.jsonl",
            "f2defcca07b788482999e1ed10d90512894902e3",
        ),
        (
            "judge_prompts.jsonl",
            lmsys,
            "fastchat/llm_judge/data/judge_prompts.jsonl",
            "4ec7524cbcdf308766fddc52df31e203316ad75f",
        ),
    ]
    mt_bench = [
        RemoteFile("mt_bench", f"mt_bench/{dest}", _raw(repo, commit, path), "git_blob_sha1", blob)
        for dest, (repo, commit), path, blob in mt_blobs
    ]
    # Saved under a new name (it holds the turn-1 votes only). The md5 was taken from a
    # transcription of the file checked against the source's length, not from a git object.
    mt_bench.append(
        RemoteFile(
            "mt_bench",
            "mt_bench/human_judgments_turn1.jsonl",
            _raw(
                "cprentice9/eval-platform",
                "a138b749b2eb55903ceb1dfcfc378a82dc464307",
                "data/mt_bench/human_judgments.jsonl",
            ),
            "md5",
            "f1b9eebd58be6f718ea6565c53f85319",
        )
    )

    mnli_zip = "https://cims.nyu.edu/~sbowman/multinli/multinli_1.0.zip"
    mnli = [
        RemoteFile(
            "mnli",
            f"mnli/multinli_1.0_{split}.jsonl",
            mnli_zip,
            "none",
            None,
            member=f"multinli_1.0/multinli_1.0_{split}.jsonl",
        )
        for split in ("dev_matched", "dev_mismatched")
    ]

    chaos = ("jsbaan/calibration-on-disagreement-data", "990e81cacadac5d0268160d1c02bad19d4ddb9a3")
    chaosnli = [
        RemoteFile(
            "chaosnli",
            f"chaosnli/{name}",
            _raw(*chaos, f"data/chaosNLI_v1.0/{name}"),
            "git_blob_sha1",
            blob,
        )
        for name, blob in (
            ("chaosNLI_snli.jsonl", "aea16e8f1e868493da3913e3d84c0ba0373bab33"),
            ("chaosNLI_mnli_m.jsonl", "acf6a5a539ee6d1802c3a45e7c2399ab3320e62c"),
            ("README.txt", "20b5baeabfae09cc49fd11c23920548bf92178e2"),
        )
    ]

    return {
        "snli": snli,
        "summeval": summeval,
        "mt_bench": mt_bench,
        "mnli": mnli,
        "chaosnli": chaosnli,
    }


SOURCES: dict[str, list[RemoteFile]] = _build_sources()


# --------------------------------------------------------------------------- verification


def _iter_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            yield chunk


def _digest(path: Path, kind: ChecksumKind) -> str:
    """Hash of a file in the given kind; the git form needs the size up front, hence a file."""
    if kind == "git_blob_sha1":
        h = hashlib.sha1(usedforsecurity=False)
        h.update(b"blob %d\0" % path.stat().st_size)
    elif kind == "md5":
        h = hashlib.md5(usedforsecurity=False)
    else:
        h = hashlib.sha256()
    for chunk in _iter_chunks(path):
        h.update(chunk)
    return h.hexdigest()


def _check_structure(path: Path, dest: str) -> int:
    """Check an NLI jsonl row by row (JSON object, annotator_labels list, gold_label str).

    Used where no hash is pinned: it cannot prove the bytes are the original, but it does catch
    an HTML error page, a truncated file or a different dataset. Returns the row count.
    """
    rows = 0
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except ValueError as exc:
                raise StructureError(f"{dest}: line {lineno} is not valid JSON ({exc})") from exc
            if not isinstance(row, dict):
                raise StructureError(f"{dest}: line {lineno} is not a JSON object")
            labels = row.get("annotator_labels")
            if not isinstance(labels, list) or not labels:
                raise StructureError(
                    f"{dest}: line {lineno} has no non-empty 'annotator_labels' list"
                )
            if not all(isinstance(x, str) for x in labels):
                raise StructureError(f"{dest}: line {lineno} has non-string 'annotator_labels'")
            if not isinstance(row.get("gold_label"), str):
                raise StructureError(f"{dest}: line {lineno} has no string 'gold_label'")
            rows += 1
    if rows == 0:
        raise StructureError(f"{dest}: no rows")
    return rows


def _verify(path: Path, rf: RemoteFile, url: str) -> None:
    """Raise a VerificationError unless ``path`` holds what ``rf`` promises."""
    if rf.checksum_kind == "none":
        _check_structure(path, rf.dest)
        return
    if rf.checksum is None:
        raise ValueError(f"{rf.dest}: checksum_kind {rf.checksum_kind} but no checksum")
    actual = _digest(path, rf.checksum_kind)
    if actual != rf.checksum.lower():
        raise ChecksumError(rf.dest, rf.checksum_kind, rf.checksum, actual, url)


def _present_ok(path: Path, rf: RemoteFile) -> bool:
    try:
        _verify(path, rf, "(local file)")
    except (VerificationError, OSError):
        return False
    return True


# --------------------------------------------------------------------------- download


def _temp_path(final: Path) -> Path:
    """Unique sibling of ``final``: same filesystem, so os.replace is atomic."""
    return final.with_name(f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.part")


def _download(url: str, out: Path, timeout: float, shown_url: str) -> None:
    """Stream ``url`` into the new file ``out``; FetchError (naming the URL) on any failure."""
    req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp, out.open("xb") as fh:
            expected = resp.headers.get("Content-Length")
            got = 0
            while chunk := resp.read(_CHUNK):
                fh.write(chunk)
                got += len(chunk)
            if expected is not None and expected.isdigit() and got != int(expected):
                raise FetchError(
                    f"download of {shown_url} was truncated: got {got} of {expected} bytes",
                    url,
                )
    except urllib.error.HTTPError as exc:
        raise FetchError(
            f"could not download {shown_url}: HTTP {exc.code} {exc.reason}", url
        ) from exc
    except (
        urllib.error.URLError,
        HTTPException,
        TimeoutError,
        ConnectionError,
        ssl.SSLError,
    ) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise FetchError(f"could not download {shown_url}: {reason}", url) from exc


def _shown(url: str, original: str) -> str:
    return url if url == original else f"{url} (original {original})"


def _extract_member(archive: Path, member: str, out: Path, shown_url: str) -> None:
    """Copy one zip entry to ``out`` (read by exact name, so entry paths cannot escape)."""
    try:
        with zipfile.ZipFile(archive) as zf, zf.open(member) as src, out.open("xb") as fh:
            while chunk := src.read(_CHUNK):
                fh.write(chunk)
    except zipfile.BadZipFile as exc:
        raise StructureError(f"{shown_url} is not a valid zip archive ({exc})") from exc
    except KeyError as exc:
        raise StructureError(f"{shown_url}: zip archive has no entry {member!r}") from exc


def _resolve(datasets: Sequence[str] | None) -> list[str]:
    if datasets is None:
        return list(SOURCES)
    if isinstance(datasets, str):  # a lone name is a Sequence[str] too
        datasets = [datasets]
    unknown = [d for d in datasets if d not in SOURCES]
    if unknown:
        raise UserError(
            f"unknown dataset(s) {', '.join(map(repr, unknown))}; valid: {', '.join(SOURCES)}"
        )
    return list(dict.fromkeys(datasets))


def fetch(
    dest: Path,
    datasets: Sequence[str] | None = None,
    *,
    url_rewrite: Callable[[str], str] | None = None,
    force: bool = False,
    timeout: float = 60.0,
) -> FetchReport:
    """Download ``datasets`` (default: all of SOURCES) into the data dir ``dest``, verified.

    A file already present and passing verification is skipped unless ``force``; one failing it
    is downloaded again. On the first error the function stops and raises (FetchError for the
    network, ChecksumError / StructureError for bad content); files finished before it stay on
    disk and are listed in the exception's ``.report``. ``url_rewrite`` maps each original URL to
    the one actually requested (mirrors, tests against a local server).
    """
    names = _resolve(datasets)
    root = Path(dest)
    report = FetchReport(dest=root)
    files = [rf for name in names for rf in SOURCES[name]]
    archives: dict[str, Path] = {}  # url -> downloaded zip, shared by the entries it holds
    temps: list[Path] = []
    try:
        for rf in tqdm(files, desc="fetch", unit="file"):
            final = root / PurePosixPath(rf.dest)
            url = url_rewrite(rf.url) if url_rewrite is not None else rf.url
            shown = _shown(url, rf.url)
            present_ok = final.is_file() and _present_ok(final, rf)
            if present_ok and not force:
                report.skipped_present.append(rf.dest)
                if rf.checksum_kind == "none":
                    report.unpinned_sha256[rf.dest] = _digest(final, "none")
                continue
            present_bad = final.is_file() and not present_ok
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = _temp_path(final)
            temps.append(tmp)
            if rf.member is None:
                _download(url, tmp, timeout, shown)
            else:
                archive = archives.get(url)
                if archive is None:
                    archive = _temp_path(final.with_name(PurePosixPath(rf.url).name))
                    temps.append(archive)
                    _download(url, archive, timeout, shown)
                    archives[url] = archive
                _extract_member(archive, rf.member, tmp, shown)
            _verify(tmp, rf, shown)
            os.replace(tmp, final)
            report.downloaded.append(rf.dest)
            if present_bad:
                report.replaced.append(rf.dest)
            if rf.checksum_kind == "none":
                digest = _digest(final, "none")
                report.unpinned_sha256[rf.dest] = digest
                tqdm.write(
                    f"{rf.dest}: verified STRUCTURALLY only, NOT by a pinned checksum "
                    f"(none is known); sha256 {digest} -- pin it to check later downloads"
                )
    except (FetchError, VerificationError) as exc:
        report.error = str(exc)
        exc.report = report
        if sys.version_info >= (3, 11):  # shown under the traceback; .report is always set
            exc.add_note(report.summary())
        raise
    finally:
        for tmp in temps:
            with suppress(FileNotFoundError):
                tmp.unlink()
    return report
