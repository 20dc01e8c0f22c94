"""Script twin of the notebooks' expensive cells: recompute one cached study of a profile without papermill.

``python -m mo_transfer.recompute iid --profile cpu`` runs (or resumes: every training run is an executor job with
a sidecar) the IID sweep and rewrites ``data/results/cpu/iid.json`` with its provenance; the notebook then only
reads the cache. Studies: ``prior`` (notebook 3's opening: the foundation generations zero-shot), ``iid`` (notebook 3), ``lodo``
(notebook 4), ``unseen`` (notebook 5).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import shlex
import sys
import time
from pathlib import Path

from . import cache
from .jobs import START_UNTIL_ENV
from .profiles import profile_names

#: Study name -> module whose ``load_results(profile, recompute, root)`` makes and caches it.
STUDIES: dict[str, str] = {"iid": "mo_transfer.iid_study", "lodo": "mo_transfer.lodo_study",
                           "unseen": "mo_transfer.unseen_study", "prior": "mo_transfer.prior_study"}


def recompute(study: str, profile: str, root: str | None = None, workers: int = 1):
    """Recompute and cache one study; returns the result dict. ``workers`` > 1 trains that many runs at once in
    separate processes (one core each with ``OMP_NUM_THREADS=1``); finished runs are skipped either way."""
    if study not in STUDIES:
        raise ValueError(f"unknown study {study!r}; allowed: {', '.join(STUDIES)}")
    from .study_common import executor

    settings = executor(workers)  # refuses fewer than one worker
    module = importlib.import_module(STUDIES[study])
    result, message = module.load_results(profile, True, root=root, **settings)
    if result is None:
        raise RuntimeError(message)
    return result


def positive_int(text: str) -> int:
    """argparse type of ``--workers``: a whole number of at least 1 (a clear usage error otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (one training run at a time), got {value}")
    return value


def start_until(text: str, now: dt.datetime | None = None) -> float:
    """argparse type of ``--start-runs-until``: a UTC clock time ``HH:MM`` (the next one to come) or an ISO date and
    time (UTC unless it names its zone), as Unix time."""
    now = now or dt.datetime.now(dt.timezone.utc)
    try:
        if len(text) <= 5 and ":" in text:
            hour, minute = (int(v) for v in text.split(":"))
            when = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
            if when <= now:
                when += dt.timedelta(days=1)
        else:
            when = dt.datetime.fromisoformat(text)
            when = when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HH:MM (UTC) or an ISO date and time, got {text!r}") from None
    return when.timestamp()


def check_root(root: str | None) -> str | None:
    """The ``--root`` folder if it is a repository root (a folder with ``data/``); an error message otherwise.
    Without this check a mistyped root ran a whole study on no data and created the folder to cache it in."""
    if root is None:
        return None
    path = Path(root)
    if not path.is_dir():
        raise FileNotFoundError(f"--root {root}: no such folder (give the repository root, the folder with data/)")
    if not (path / "data").is_dir():
        raise FileNotFoundError(f"--root {root}: not a repository root, {path / 'data'} does not exist")
    return str(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mo_transfer.recompute", description=__doc__)
    p.add_argument("study", choices=sorted(STUDIES))
    p.add_argument("--profile", required=True, choices=profile_names())
    p.add_argument("--root", default=None, help="repository root (default: found from the working directory)")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="training runs at once, one process each (default 1: one after another)")
    p.add_argument("--start-runs-until", type=start_until, default=None, metavar="HH:MM",
                   help="start no training run after this UTC time (or ISO date and time); runs in flight finish "
                        "and are stored, and the same command later resumes the rest")
    args = p.parse_args(argv)
    try:
        args.root = check_root(args.root)
    except FileNotFoundError as err:
        p.error(str(err))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.start_runs_until is not None:
        os.environ[START_UNTIL_ENV] = repr(args.start_runs_until)
    os.environ.setdefault(cache.COMMAND_ENV, "python -m mo_transfer.recompute " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])))
    t0 = time.perf_counter()
    try:
        recompute(args.study, args.profile, args.root, args.workers)
    except (ValueError, RuntimeError, FileNotFoundError) as err:  # data missing or refused: say so, no traceback
        print(f"recompute {args.study} ({args.profile}): {err}", file=sys.stderr)
        return 1
    print(f"{args.study} ({args.profile}) recomputed in {time.perf_counter() - t0:.0f} s: "
          f"{cache.cache_path(args.study, args.profile, args.root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
