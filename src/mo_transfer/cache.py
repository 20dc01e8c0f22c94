"""Results cache with provenance: ``data/results/<profile>/<name>.json``.

Expensive results (training runs, evaluations) are computed once per profile and committed; the notebooks read
them back unless run with ``recompute=True``. Each file records how it was made:

```json
{"name": "...", "profile": "cpu", "result": {...},
 "provenance": {"command": ..., "git_commit": ..., "packages": {...}, "machine": {...}, "date_utc": ..., "wall_s": ...}}
```

Writes are atomic (temporary file + rename), so an interrupted computation never leaves a half-written result.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as _md
import json
import os
import platform
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .jobs import atomic_write_text
from .profiles import Profile, get_profile

#: Distributions whose versions every provenance record lists (when installed).
TRACKED_PACKAGES: tuple[str, ...] = (
    "mo-transfer", "torch", "mace-torch", "e3nn", "ase", "gpaw", "numpy", "scipy", "pandas",
)
#: Environment variable naming the repository root (set by the Colab cell; optional elsewhere).
ROOT_ENV = "MO_TRANSFER_ROOT"
#: Environment variable that the Makefile sets to the command that runs the notebooks.
COMMAND_ENV = "MO_TRANSFER_COMMAND"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class CacheMissing(FileNotFoundError):
    """A cached result is absent and recomputation was not asked for. The message says how to regenerate it."""


def repo_root() -> Path:
    """The repository root: ``$MO_TRANSFER_ROOT``, else the nearest folder above the working directory (or above
    this package) that holds ``pyproject.toml`` and ``src/mo_transfer``; else the working directory."""
    env = os.environ.get(ROOT_ENV)
    if env:
        return Path(env).resolve()
    for start in (Path.cwd().resolve(), Path(__file__).resolve().parent):
        for folder in (start, *start.parents):
            if (folder / "pyproject.toml").is_file() and (folder / "src" / "mo_transfer").is_dir():
                return folder
    return Path.cwd().resolve()


def results_dir(profile: str | Profile, root: str | Path | None = None) -> Path:
    """Folder of one profile's cached results: ``<root>/data/results/<profile>``."""
    p = get_profile(profile)
    return Path(root if root is not None else repo_root()) / "data" / "results" / p.name


def cache_path(name: str, profile: str | Profile, root: str | Path | None = None) -> Path:
    """Path of the cached result ``name`` of ``profile``."""
    if not _NAME_RE.match(name) or name.endswith(".json"):
        raise ValueError(f"result name {name!r} must be letters, digits, '_', '-', '.', without '.json'")
    return results_dir(profile, root) / f"{name}.json"


def regenerate_hint(profile: str, notebook: str | None = None) -> str:
    """The command (and notebook parameters) that recompute a profile's cached results."""
    cmd = f"make notebooks PROFILE={profile} RECOMPUTE=1"
    if notebook:
        nb = notebook if notebook.endswith(".ipynb") else f"{notebook}.ipynb"
        return (f"run `{cmd}`, or run notebooks/{nb} with parameters profile = \"{profile}\", recompute = True "
                f"(papermill notebooks/{nb} out.ipynb -p profile {profile} -p recompute True)")
    return f"run `{cmd}`, or the notebook that makes it with parameters profile = \"{profile}\", recompute = True"


def git_commit(root: str | Path | None = None) -> str:
    """HEAD of the repository at ``root`` (default: this checkout), ``+dirty`` when tracked files differ from it."""
    root = Path(root) if root is not None else repo_root()
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown (no git commit)"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=30)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown (git not available)"


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (read from package metadata, nothing is imported); absent ones omitted."""
    out = {}
    for n in names:
        try:
            out[n] = _md.version(n)
        except _md.PackageNotFoundError:
            continue
    return out


def _gpu() -> str | None:
    """Name of the first CUDA device if torch is importable and sees one, else None."""
    try:
        import torch
    except ImportError:
        return None
    try:
        if torch.cuda.is_available():
            return f"{torch.cuda.get_device_name(0)} (x{torch.cuda.device_count()})"
    except Exception:  # noqa: BLE001 - a broken driver must not break a provenance record
        return None
    return None


def machine() -> dict:
    """Where this runs: host, OS, Python, CPU count, threads setting, GPU."""
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "gpu": _gpu(),
    }


def _command() -> str:
    env = os.environ.get(COMMAND_ENV)
    if env:
        return env
    return " ".join(shlex.quote(a) for a in sys.argv) if sys.argv and sys.argv[0] else sys.executable


def provenance(profile: str | Profile | None = None, wall_s: float | None = None, **extra) -> dict:
    """How a result was made: command, git commit, profile, package versions, machine, UTC date, wall time.

    ``extra`` keys (e.g. ``notebook="03_iid"``, ``inputs=...``) are added as given; they must be JSON-serialisable.
    """
    rec = {
        "command": _command(),
        "git_commit": git_commit(),
        "profile": None if profile is None else get_profile(profile).as_dict(),
        "packages": package_versions(),
        "machine": machine(),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "wall_s": None if wall_s is None else round(float(wall_s), 3),
    }
    rec.update(extra)
    return rec


def _jsonable(obj: Any) -> Any:
    """Default hook for ``json.dumps``: numpy scalars and arrays, tuples, paths, dataclasses."""
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON-serialisable: {obj!r:.80}")


def _check_keys(obj: Any, where: str = "result") -> None:
    """Refuse dict keys that JSON would silently turn into strings (a cached read would then differ)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: dict keys must be strings to survive JSON, got {k!r}")
            _check_keys(v, f"{where}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_keys(v, f"{where}[{i}]")


def save(name: str, profile: str | Profile, result: Any, prov: dict | None = None,
         root: str | Path | None = None) -> Path:
    """Write ``result`` with its provenance to the cache, atomically. Returns the path."""
    p = get_profile(profile)
    _check_keys(result)
    doc = {"name": name, "profile": p.name, "provenance": prov if prov is not None else provenance(p),
           "result": result}
    path = cache_path(name, p, root)
    atomic_write_text(path, json.dumps(doc, indent=1, default=_jsonable) + "\n")
    return path


def load_record(name: str, profile: str | Profile, root: str | Path | None = None,
                notebook: str | None = None) -> dict:
    """The whole cached record (``name``, ``profile``, ``provenance``, ``result``); ``CacheMissing`` if absent."""
    p = get_profile(profile)
    path = cache_path(name, p, root)
    if not path.is_file():
        raise CacheMissing(
            f"no cached result {name!r} for profile {p.name!r} (expected {path}). "
            f"To regenerate it, {regenerate_hint(p.name, notebook)}"
            + (f", or `python -m mo_transfer.recompute {name} --profile {p.name}`." if notebook else ".")
        )
    return json.loads(path.read_text())


def load(name: str, profile: str | Profile, root: str | Path | None = None, notebook: str | None = None) -> Any:
    """The cached result only."""
    return load_record(name, profile, root, notebook)["result"]


def load_or_compute(name: str, profile: str | Profile, compute_fn: Callable[[], Any], recompute: bool = False,
                    root: str | Path | None = None, notebook: str | None = None, **prov_extra) -> Any:
    """Cached result ``name`` of ``profile``, or compute, store and return it.

    - ``recompute=False``: read the cache; if it is absent raise ``CacheMissing`` naming the command that makes it
      (nothing is computed behind the reader's back: the book never silently runs hours of training).
    - ``recompute=True``: call ``compute_fn()``, time it, write result + provenance atomically, return the result.

    The returned value is what a later cached read returns too (it went through JSON), so both paths give the same
    types: tuples become lists, numpy values become plain numbers.
    """
    p = get_profile(profile)
    if not recompute:
        return load(name, p, root, notebook)
    t0 = time.perf_counter()
    result = compute_fn()
    wall = time.perf_counter() - t0
    extra = dict(prov_extra)
    if notebook:
        extra.setdefault("notebook", notebook)
    path = save(name, p, result, provenance(p, wall_s=wall, **extra), root)
    return json.loads(path.read_text())["result"]


def relative_to_root(path: str | Path, root: Path) -> str:
    """``path`` relative to ``root`` (so cached results do not depend on where the checkout lives), else as given."""
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def load_results(name: str, profile: str | Profile, compute_fn: Callable[[], Any], recompute: bool = False,
                 root: str | Path | None = None, notebook: str | None = None) -> tuple[Any | None, str | None]:
    """:func:`load_or_compute` for a notebook: ``(result, None)``, or ``(None, message)`` when the cache is absent
    and ``recompute`` is off; the message names the command that makes it, for the notebook to show instead."""
    try:
        return load_or_compute(name, profile, compute_fn, recompute, root=root, notebook=notebook), None
    except CacheMissing as err:
        return None, str(err)


def cached_names(profile: str | Profile, root: str | Path | None = None) -> list[str]:
    """Names of the cached results of a profile, sorted."""
    folder = results_dir(profile, root)
    return sorted(f.stem for f in folder.glob("*.json")) if folder.is_dir() else []


def data_drift_markdown(recorded: dict, current: dict, study: str, profile: str | Profile) -> str | None:
    """A note for the page when a cached study was computed on other data than the data now in the checkout.

    ``recorded`` is the ``data`` block a study stores with its results and ``current`` the same summary of the
    pools built now (``SweepData.summary()``, ``UnseenData.summary()``): both carry ``used`` (frames per pool) and
    ``pool_sha256`` (a digest of the frame ids). Returns None when every recorded pool is unchanged.
    """
    old, new = recorded.get("pool_sha256", {}), current.get("pool_sha256", {})
    changed = [k for k in old if new.get(k) != old[k]]
    if not changed:
        return None
    used_old, used_new = recorded.get("used", {}), current.get("used", {})
    pools = list(old)
    then = " / ".join(f"{used_old.get(k, '?')} {k}" for k in pools)
    now = " / ".join(f"{used_new.get(k, 'no')} {k}" for k in pools)
    name = get_profile(profile).name
    return (f"**The data changed since these results were computed.** They were trained and tested on {then} "
            f"frames; the data in this checkout give {now} (changed: {', '.join(changed)}). The tables and figures "
            f"below that read the cached results show them as computed; those computed on this page use the data "
            f"now. `python -m mo_transfer.recompute {study} --profile {name}` recomputes the study on the current "
            f"data.")
