"""The output-directory rule every writing command follows, so no run silently replaces a user's files.

An output folder may be written when it is absent or empty, or when it holds a run of the same kind and
identity (the marker file says which): continuing it (``--resume``) or redoing the same run. Anything
else is refused with a message, unless ``overwrite``: then the new run is written into a sibling temp
folder and swapped in only when it has finished, so a failed or killed run leaves the old folder whole
(a kill between the two renames of the swap leaves both, as ``.NAME.old-*`` and ``.NAME.new-*``).

A writer holds a lock on the folder for its whole run (``folder_lock``: an advisory ``flock`` on
``.NAME.lock`` beside it, removed when the run ends), so a second writer — another ``train`` into the same ``--out``, a concurrent growth
of one index — is refused in one line instead of interleaving with the first. The kernel releases the lock
when its process dies, so a ``kill -9`` leaves no stale lock behind.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import LatentfuseError
from . import atomic, distributed
from .nested import flatten

MARKER = ".latentfuse-output.json"


class OutputExistsError(LatentfuseError):
    """An output path that holds something this run may not replace."""


@contextmanager
def output_dir(path: str | Path, kind: str, identity: dict[str, Any] | None = None, *, overwrite: bool = False,
               resume: bool = False, option: str = "--out", known_files: tuple[str, ...] = (),
               legacy_identity: Callable[[Path], Any] | None = None) -> Iterator[Path]:
    """Yield the folder to write into (``path`` itself, or a staging sibling with ``overwrite``).

    ``identity``: what makes two runs the same run (None: any folder of this ``kind`` is the same one, e.g.
    an index that is grown). A folder written before markers existed is recognised by ``known_files``
    (all present) and, when given, ``legacy_identity(folder)`` (its identity read from its own files).
    """
    path = Path(path)
    if resume and overwrite:
        raise OutputExistsError("--resume continues the run in the folder, --overwrite replaces it: give one")
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"{option} {path}: is a file, not a folder")
    with folder_lock(path, option):
        yield from _checked(path, kind, identity, overwrite, resume, option, known_files, legacy_identity)


def _checked(path: Path, kind: str, identity: dict[str, Any] | None, overwrite: bool, resume: bool, option: str,
             known_files: tuple[str, ...], legacy_identity: Callable[[Path], Any] | None) -> Iterator[Path]:
    verdict = _compare(path, kind, identity, known_files, legacy_identity)
    if verdict is None or (verdict == "" and not overwrite):  # fresh, or the same run again
        yield from _in_place(path, kind, identity)
        return
    if resume:
        raise OutputExistsError(f"cannot --resume in {path}: it holds {verdict}; resume with the settings it "
                                f"was started with, or start a new run with another {option}")
    if not overwrite:
        raise OutputExistsError(f"{option} {path} already holds {verdict}; refusing to replace it. Pass "
                                f"--overwrite to replace it (atomically, once the new run has finished), "
                                f"or choose another {option}")
    yield from _staged(path, kind, identity)


@contextmanager
def folder_lock(path: Path, option: str = "--out") -> Iterator[None]:
    """Hold the advisory lock of ``path`` (``.NAME.lock`` beside it, removed on release) or refuse at once,
    naming the holder."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no advisory locks; the output rule still applies
        yield
        return
    lock = path.parent / f".{path.name}.lock"
    blocked = next((p for p in (path.parent, *path.parent.parents) if p.exists()), None)
    if blocked is not None and not blocked.is_dir():
        raise OutputExistsError(f"{option} {path}: {blocked} is a file, not a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = _acquire(lock, fcntl, f"{option} {path}", option)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)  # before unlocking: a waiter that then locks this inode sees it is gone
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()


def _acquire(lock: Path, fcntl: Any, what: str, option: str) -> Any:
    """The locked, open lock file. A file removed by its previous holder between our open and our lock is not
    the lock any more (another writer may hold a new one): open again."""
    for _ in range(100):
        handle = open(lock, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise OutputExistsError(f"{what} is being written by another latentfuse process (pid {holder}); "
                                    f"wait for it to finish, or choose another {option}") from None
        try:
            current = os.stat(lock).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(handle.fileno()).st_ino:
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            return handle
        handle.close()  # released with it
    raise OutputExistsError(f"{what}: could not take its lock {lock}")


@contextmanager
def shared_output_dir(path: str | Path, kind: str, identity: dict[str, Any] | None = None,
                      **options: Any) -> Iterator[Path]:
    """``output_dir`` for a job that may run under torchrun: rank 0 applies the rule and gets the folder to
    write; the other ranks wait for its verdict and get ``path`` (they write nothing there). A refusal on
    rank 0 stops every rank with its message instead of leaving them waiting."""
    if not distributed.is_main():
        verdict = distributed.broadcast_object(None)
        if verdict is not True:
            raise OutputExistsError(f"rank 0 refused the output folder: {verdict}")
        yield Path(path)
        return
    with contextlib.ExitStack() as stack:
        try:
            folder = stack.enter_context(output_dir(path, kind, identity, **options))
        except LatentfuseError as exc:
            distributed.broadcast_object(str(exc))
            raise
        distributed.broadcast_object(True)
        yield folder


def check_new_file(path: str | Path, overwrite: bool, option: str) -> None:
    """A single output file (a report) is never replaced silently either."""
    path = Path(path)
    if path.is_dir():
        raise OutputExistsError(f"{option} {path}: is a folder, expected a file path")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{option} {path} already exists; pass --overwrite to replace it")


def _compare(path: Path, kind: str, identity: dict[str, Any] | None, known_files: tuple[str, ...],
             legacy_identity: Callable[[Path], Any] | None) -> str | None:
    """None: nothing there; "": the same run; else what is there, in words."""
    if not path.is_dir() or not any(path.iterdir()):
        return None
    marker = _read_marker(path)
    if marker is None and known_files and all((path / name).exists() for name in known_files):
        marker = {"kind": kind, "identity": _plain(legacy_identity(path)) if legacy_identity else None}
        if identity is None or marker["identity"] is not None:
            return _compare_marker(marker, kind, identity)
    if marker is None:
        names = sorted(p.name for p in path.iterdir())
        return f"files not written by a latentfuse {kind} ({', '.join(names[:4])}{', ...' if len(names) > 4 else ''})"
    return _compare_marker(marker, kind, identity)


def _compare_marker(marker: dict[str, Any], kind: str, identity: dict[str, Any] | None) -> str:
    if marker.get("kind") != kind:
        return f"a latentfuse {marker.get('kind')!r} output (this command writes {kind!r} outputs)"
    if identity is None or marker.get("identity") == _plain(identity):
        return ""
    return f"a {kind} with other settings (differs in {', '.join(_differences(marker.get('identity'), identity))})"


def _differences(saved: Any, wanted: dict[str, Any]) -> list[str]:
    old = {".".join(k): v for k, v in flatten(saved if isinstance(saved, dict) else {})}
    new = {".".join(k): v for k, v in flatten(_plain(wanted))}
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k)) or ["its identity"]


def _in_place(path: Path, kind: str, identity: dict[str, Any] | None) -> Iterator[Path]:
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    _write_marker(path, kind, identity)
    try:
        yield path
    except BaseException:
        if {p.name for p in path.iterdir()} == {MARKER}:  # failed before writing anything: leave no claim
            (path / MARKER).unlink()
            if created:
                path.rmdir()
        raise


def _staged(path: Path, kind: str, identity: dict[str, Any] | None) -> Iterator[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.new-", dir=path.parent))
    staging.chmod(atomic.DIR_MODE)  # mkdtemp's 0700 would make the swapped-in folder private
    try:
        _write_marker(staging, kind, identity)
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(path, old)
    os.replace(staging, path)
    atomic._fsync_dir(path.parent)
    shutil.rmtree(old, ignore_errors=True)


def _write_marker(path: Path, kind: str, identity: dict[str, Any] | None) -> None:
    atomic.write_json(path / MARKER, {"kind": kind, "identity": _plain(identity)})


def _read_marker(path: Path) -> dict[str, Any] | None:
    try:
        marker = json.loads((path / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def _plain(identity: Any) -> Any:
    """JSON round trip, so a saved identity and a fresh one compare equal (tuples → lists, etc.)."""
    return json.loads(json.dumps(identity, default=str))
