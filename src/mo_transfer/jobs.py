"""One job executor for every batch of the project (DFT relaxations, single points, training runs).

A job is data: a kind (``"module:function"``), inputs, settings, and an output path. Its content hash decides
resume: a job whose output exists with a matching ``.job.json`` sidecar is skipped. The function writes to a
temporary path that the executor renames onto the output, so an output is either complete or absent.
Backends: ``sequential`` (in-process, the default), ``process`` (a local process pool) and ``dask``
(a ``LocalCluster``, a scheduler address, or a ``dask-jobqueue`` cluster described in a YAML file).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import socket
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

SIDECAR_SUFFIX = ".job.json"
#: Unix time after which ``run_jobs`` starts no new job (set by ``recompute --start-runs-until``): a sweep drains
#: before a session or a machine ends, so no run is cut off half-trained; the same command later resumes the rest.
START_UNTIL_ENV = "MO_TRANSFER_START_RUNS_UNTIL"


class JobFailed(RuntimeError):
    """A failure that retrying will not fix (recorded with its reason, never retried)."""


@dataclass(frozen=True)
class Job:
    """A unit of work. ``kind`` is ``"package.module:function"``; the function is called as ``f(job, tmp_path)``."""

    kind: str
    name: str
    inputs: dict
    settings: dict
    output: str

    @property
    def key(self) -> str:
        """Content hash of what the job computes (kind, inputs, settings), not of where it writes."""
        blob = json.dumps({"kind": self.kind, "inputs": self.inputs, "settings": self.settings}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def sidecar(self) -> Path:
        return Path(self.output + SIDECAR_SUFFIX)

    def is_done(self) -> bool:
        """True when the output exists and its sidecar records this job's hash."""
        if not (Path(self.output).exists() and self.sidecar.exists()):
            return False
        try:
            return json.loads(self.sidecar.read_text()).get("key") == self.key
        except (OSError, json.JSONDecodeError):
            return False


@dataclass
class JobRecord:
    """What happened to one job in a batch (one manifest row)."""

    name: str
    key: str
    kind: str
    output: str
    status: str = "pending"  # pending | done | skipped | failed | not_started
    attempts: int = 0
    wall_s: float = 0.0
    error: str = ""
    result: dict = field(default_factory=dict)
    host: str = ""


def _umask() -> int:
    """The process umask, read without changing it where Linux tells it (os.umask would briefly set it to 0)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder, then rename. The file gets the
    permissions of an ordinary new file (0666 less the umask, e.g. 0644): ``mkstemp`` alone leaves 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def resolve_kind(kind: str) -> Callable:
    """Import the function named by ``"module:function"``."""
    module, _, func = kind.partition(":")
    if not module or not func:
        raise ValueError(f"job kind must look like 'package.module:function', got {kind!r}")
    return getattr(importlib.import_module(module), func)


def run_one(job: Job, max_attempts: int = 2) -> JobRecord:
    """Run a job with bounded retries; the output appears atomically or not at all. Never raises for job errors."""
    rec = JobRecord(job.name, job.key, job.kind, job.output, host=socket.gethostname())
    if job.is_done():
        rec.status = "skipped"
        return rec
    out = Path(job.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    func = resolve_kind(job.kind)
    t0 = time.time()
    while rec.attempts < max_attempts:
        rec.attempts += 1
        tmp = out.parent / f".{out.name}.{os.getpid()}.partial{''.join(out.suffixes)}"
        try:
            result = func(job, tmp) or {}
            if not tmp.exists():
                raise JobFailed(f"job function {job.kind} wrote no output to {tmp}")
            os.replace(tmp, out)
            rec.result = json.loads(json.dumps(result, default=str))
            rec.status, rec.error = "done", ""
            rec.wall_s = round(time.time() - t0, 2)
            atomic_write_text(job.sidecar, json.dumps({**dataclasses.asdict(rec), "inputs": job.inputs,
                                                       "settings": job.settings}, indent=1, default=str))
            return rec
        except JobFailed as err:
            rec.status, rec.error = "failed", f"{type(err).__name__}: {err}"
            break
        except Exception as err:  # noqa: BLE001 - every job error is recorded, then retried or reported
            rec.status = "failed"
            rec.error = f"{type(err).__name__}: {err} | {traceback.format_exc(limit=3).splitlines()[-1]}"
        finally:
            if tmp.exists():
                tmp.unlink()
    rec.wall_s = round(time.time() - t0, 2)
    return rec


@dataclass
class BatchSummary:
    """Counts and records of a finished batch."""

    records: list[JobRecord]
    wall_s: float

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.records)

    @property
    def failed(self) -> list[JobRecord]:
        return [r for r in self.records if r.status == "failed"]

    def __str__(self) -> str:
        lines = [
            f"{len(self.records)} jobs in {self.wall_s:.1f} s: {self.count('done')} done, "
            f"{self.count('skipped')} skipped, {self.count('failed')} failed, {self.count('not_started')} not started"
        ]
        lines += [f"  FAILED {r.name}: {r.error}" for r in self.failed]
        return "\n".join(lines)


def write_manifest(path: str | Path, summary: BatchSummary, extra: dict | None = None) -> None:
    """Write the batch manifest (one row per job) atomically as JSON."""
    previous = {}
    if Path(path).exists():
        try:
            previous = {r["name"]: r for r in json.loads(Path(path).read_text()).get("jobs", [])}
        except (OSError, json.JSONDecodeError, AttributeError):
            previous = {}
    rows = dict(previous)
    for r in summary.records:
        row = dataclasses.asdict(r)
        old = previous.get(r.name)
        if r.status in ("skipped", "not_started") and old and old.get("key") == r.key:
            row = {**old, "status": "done" if r.status == "skipped" else old.get("status", r.status)}
        elif old and old.get("key") == r.key:
            row["attempts"] = r.attempts + old.get("attempts", 0)
        rows[r.name] = row
    doc = {"updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **(extra or {}),
           "jobs": sorted(rows.values(), key=lambda r: r["name"])}
    atomic_write_text(path, json.dumps(doc, indent=1, default=str))


def _progress(total: int, desc: str):
    try:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, disable=os.environ.get("MO_TRANSFER_NO_PROGRESS") == "1")
    except ImportError:  # pragma: no cover - tqdm ships with mace-torch
        return None


def run_jobs(
    jobs: Iterable[Job],
    backend: str = "sequential",
    workers: int = 1,
    max_attempts: int = 2,
    deadline_s: float | None = None,
    manifest: str | Path | None = None,
    manifest_extra: dict | None = None,
    dask_address: str | None = None,
    dask_cluster_yaml: str | Path | None = None,
    on_record: Callable[[JobRecord], None] | None = None,
    desc: str = "jobs",
) -> BatchSummary:
    """Run ``jobs`` on a backend; jobs not started before ``deadline_s`` (seconds from now; default: the Unix time
    in ``$MO_TRANSFER_START_RUNS_UNTIL``, if set) stay ``not_started``."""
    jobs = list(jobs)
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"job names must be unique in a batch; repeated: {dup[:5]}")
    t0 = time.time()
    deadline = None if deadline_s is None else t0 + deadline_s
    if deadline is None and os.environ.get(START_UNTIL_ENV):
        deadline = float(os.environ[START_UNTIL_ENV])
    records: dict[str, JobRecord] = {}
    bar = _progress(len(jobs), desc)

    def finish(rec: JobRecord) -> None:
        records[rec.name] = rec
        if bar is not None:
            bar.update(1)
        if on_record is not None:
            on_record(rec)
        if manifest is not None:
            write_manifest(manifest, BatchSummary([rec], 0.0), manifest_extra)

    if backend == "sequential":
        for job in jobs:
            if deadline is not None and time.time() > deadline and not job.is_done():
                continue
            finish(run_one(job, max_attempts))
    elif backend == "process":
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        with ProcessPoolExecutor(max_workers=workers) as pool:
            pending = list(jobs)
            running = {}
            while pending or running:
                while pending and len(running) < workers:
                    job = pending.pop(0)
                    if deadline is not None and time.time() > deadline and not job.is_done():
                        continue
                    running[pool.submit(run_one, job, max_attempts)] = job
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    running.pop(fut)
                    finish(fut.result())
    elif backend == "dask":
        _run_dask(jobs, workers, max_attempts, deadline, dask_address, dask_cluster_yaml, finish)
    else:
        raise ValueError(f"unknown backend {backend!r}; allowed: sequential, process, dask")
    if bar is not None:
        bar.close()
    ordered = []
    for job in jobs:
        rec = records.get(job.name) or JobRecord(job.name, job.key, job.kind, job.output, status="not_started")
        ordered.append(rec)
    return BatchSummary(ordered, round(time.time() - t0, 2))


def _dask_client(workers: int, address: str | None, cluster_yaml: str | Path | None):
    from dask.distributed import Client, LocalCluster

    if address:
        return Client(address), None
    if cluster_yaml:
        import yaml

        spec = yaml.safe_load(Path(cluster_yaml).read_text())
        import dask_jobqueue

        cls = getattr(dask_jobqueue, spec.pop("cluster", "SLURMCluster"))
        n_jobs = int(spec.pop("jobs", 1))
        cluster = cls(**spec)
        cluster.scale(jobs=n_jobs)
        return Client(cluster), cluster
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster), cluster


def _run_dask(jobs, workers, max_attempts, deadline, address, cluster_yaml, finish) -> None:
    from dask.distributed import as_completed

    client, cluster = _dask_client(workers, address, cluster_yaml)
    try:
        todo = [j for j in jobs if deadline is None or time.time() <= deadline or j.is_done()]
        # pure=False: a job reruns on another worker if its worker dies (dask reschedules lost tasks)
        futures = [client.submit(run_one, j, max_attempts, key=f"job-{j.key}-{j.name}", pure=False) for j in todo]
        for fut in as_completed(futures):
            finish(fut.result())
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def sleep_job(job: Job, tmp_path: Path) -> dict:
    """Trivial job kind for benchmarks and fault-injection tests: optional sleep, optional one-time worker crash.

    ``inputs``: ``value`` (echoed to the output), ``sleep_s``, and ``crash_once_marker`` (a path: if it does not
    exist, it is created and the worker process exits abruptly, as a killed worker would).
    """
    marker = job.inputs.get("crash_once_marker")
    if marker and not Path(marker).exists():
        Path(marker).write_text(str(os.getpid()))
        os._exit(17)
    time.sleep(float(job.inputs.get("sleep_s", 0.0)))
    if job.inputs.get("fail"):
        raise JobFailed(str(job.inputs["fail"]))
    Path(tmp_path).write_text(json.dumps({"value": job.inputs.get("value")}))
    return {"value": job.inputs.get("value"), "pid": os.getpid()}
