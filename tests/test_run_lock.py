"""One trainer per run folder: a held lock refuses a second trainer, a child given the lock keeps it while it
lives, and a child started with die_with_parent does not outlive its parent."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from mo_transfer.run_lock import RunFolderBusy, run_folder_lock


def _try_lock(folder) -> subprocess.CompletedProcess:
    code = ("import sys; from mo_transfer.run_lock import run_folder_lock, RunFolderBusy\n"
            "try:\n    with run_folder_lock(sys.argv[1]): print('got it')\n"
            "except RunFolderBusy as e: print('busy:', e)")
    return subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, timeout=60)


def test_a_held_folder_refuses_a_second_trainer_until_released(tmp_path):
    with run_folder_lock(tmp_path):
        out = _try_lock(tmp_path).stdout
        assert out.startswith("busy:") and str(tmp_path) in out and "pid" in out
    assert _try_lock(tmp_path).stdout.strip() == "got it"


def test_a_child_keeps_the_lock_while_it_lives(tmp_path):
    with run_folder_lock(tmp_path) as fd:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], pass_fds=(fd,))
    try:  # the parent let go; the child still holds it
        assert _try_lock(tmp_path).stdout.startswith("busy:")
    finally:
        child.kill()
        child.wait()
    assert _try_lock(tmp_path).stdout.strip() == "got it"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_dies_with_its_parent(tmp_path):
    pid_file = tmp_path / "child.pid"
    parent = ("import subprocess, sys, time\n"
              "from mo_transfer.run_lock import die_with_parent\n"
              "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], preexec_fn=die_with_parent)\n"
              f"open({str(pid_file)!r}, 'w').write(str(c.pid))\n"
              "time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", parent])
    for _ in range(100):
        if pid_file.exists() and pid_file.read_text():
            break
        time.sleep(0.1)
    child = int(pid_file.read_text())
    proc.kill()
    proc.wait()
    for _ in range(50):
        try:
            with open(f"/proc/{child}/stat") as fh:
                if fh.read().split()[2] == "Z":
                    break
        except FileNotFoundError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"child {child} outlived its parent")
