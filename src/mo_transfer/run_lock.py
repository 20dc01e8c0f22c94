"""One trainer per run folder: an exclusive lock that the training subprocess holds for as long as it lives, and a
subprocess that dies with the process that started it.

Found on the cpu sweep: killing a sweep's Python processes (``pkill -f mo_transfer.recompute``) left their
``mace_run_train`` children running; the resumed sweep then trained the same run folders a second time, both
processes appending to one metrics file and overwriting each other's checkpoints. Now the child dies with its
parent (Linux ``PR_SET_PDEATHSIG``), and a folder whose lock is held refuses a second trainer loudly.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LOCK_FILE = "train.lock"


class RunFolderBusy(RuntimeError):
    """Another process is training this run folder."""


@contextmanager
def run_folder_lock(work_dir: str | Path) -> Iterator[int]:
    """Hold ``<work_dir>/train.lock`` exclusively; yields its file descriptor, which a child given it (``pass_fds``)
    keeps locked while it runs. :class:`RunFolderBusy` names the holder when another process has it."""
    path = Path(work_dir) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text().strip() or "unknown"
            raise RunFolderBusy(f"{work_dir} is being trained by another process ({holder}); stop it (kill its process "
                                "group) or wait for it, then run again") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}".encode())
        yield fd
    finally:
        os.close(fd)


def die_with_parent() -> None:
    """``preexec_fn`` of a child process: SIGTERM it when the process that started it exits (Linux only; a no-op
    elsewhere, where the folder lock still refuses a second trainer)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
