"""Tests of the one job executor (issue 4): resume, retries, atomic outputs, backends agree."""

import json
import os
from pathlib import Path

import pytest

from mo_transfer import jobs
from mo_transfer.jobs import Job, run_jobs

KIND = "mo_transfer.jobs:sleep_job"


def make(tmp_path, n=4, **inputs):
    return [Job(KIND, f"j{i}", {"value": i, **inputs}, {"s": 1}, str(tmp_path / f"out{i}.json")) for i in range(n)]


def test_sequential_runs_then_resumes_by_hash(tmp_path):
    batch = make(tmp_path)
    s1 = run_jobs(batch, manifest=tmp_path / "manifest.json")
    assert s1.count("done") == 4
    assert json.loads(Path(batch[2].output).read_text()) == {"value": 2}
    s2 = run_jobs(batch, manifest=tmp_path / "manifest.json")
    assert s2.count("skipped") == 4
    rows = json.loads((tmp_path / "manifest.json").read_text())["jobs"]
    assert [r["status"] for r in rows] == ["done"] * 4
    # a changed setting changes the hash: the job is rerun, not skipped
    changed = [Job(KIND, "j0", {"value": 0}, {"s": 2}, batch[0].output)]
    assert run_jobs(changed).count("done") == 1


def test_failures_are_recorded_with_reason_and_no_output(tmp_path):
    batch = [Job(KIND, "bad", {"fail": "SCF did not converge"}, {}, str(tmp_path / "bad.json"))]
    summary = run_jobs(batch, manifest=tmp_path / "m.json")
    assert summary.count("failed") == 1
    assert "SCF did not converge" in summary.failed[0].error
    assert summary.failed[0].attempts == 1  # JobFailed is never retried
    assert not Path(batch[0].output).exists()
    assert "FAILED bad" in str(summary)
    assert not list(tmp_path.glob(".*partial*"))


def test_unexpected_errors_are_retried_up_to_the_bound(tmp_path):
    batch = [Job("mo_transfer.jobs:does_not_exist", "x", {}, {}, str(tmp_path / "x.json"))]
    with pytest.raises(AttributeError):
        run_jobs(batch)  # an unknown kind is a programming error: it fails loudly before any job runs
    with pytest.raises(ValueError, match="module:function"):
        jobs.resolve_kind("nonsense")


def test_deadline_leaves_jobs_not_started(tmp_path):
    batch = make(tmp_path, n=3, sleep_s=0.3)
    summary = run_jobs(batch, deadline_s=0.1)
    assert summary.count("done") == 1 and summary.count("not_started") == 2


def test_a_start_deadline_in_the_environment_drains_the_batch(tmp_path, monkeypatch):
    """``recompute --start-runs-until`` sets it: nothing new starts after it, a finished job still counts."""
    import time

    batch = make(tmp_path, n=3)
    assert run_jobs(batch[:1]).count("done") == 1
    monkeypatch.setenv(jobs.START_UNTIL_ENV, repr(time.time() - 1))
    summary = run_jobs(batch, backend="process", workers=2)
    assert summary.count("skipped") == 1 and summary.count("not_started") == 2
    assert not Path(batch[1].output).exists()
    monkeypatch.setenv(jobs.START_UNTIL_ENV, repr(time.time() + 60))
    assert run_jobs(batch).count("done") == 2


def test_duplicate_names_rejected(tmp_path):
    batch = make(tmp_path, n=2)
    with pytest.raises(ValueError, match="unique"):
        run_jobs(batch + batch)


def test_unknown_backend(tmp_path):
    with pytest.raises(ValueError, match="allowed: sequential, process, dask"):
        run_jobs(make(tmp_path, n=1), backend="slurm")


def test_process_pool_matches_sequential(tmp_path):
    seq, par = make(tmp_path / "a", n=4), make(tmp_path / "b", n=4)
    run_jobs(seq)
    summary = run_jobs(par, backend="process", workers=2)
    assert summary.count("done") == 4
    assert [Path(j.output).read_text() for j in seq] == [Path(j.output).read_text() for j in par]


@pytest.mark.slow
def test_dask_local_cluster_matches_sequential_and_survives_a_killed_worker(tmp_path):
    pytest.importorskip("dask.distributed")
    seq = make(tmp_path / "seq", n=4)
    par = make(tmp_path / "par", n=4)
    crash = Job(KIND, "crash", {"value": 9, "crash_once_marker": str(tmp_path / "marker")}, {},
                str(tmp_path / "par" / "crash.json"))
    run_jobs(seq)
    summary = run_jobs(par + [crash], backend="dask", workers=2)
    # results held by the dead worker may be recomputed: those jobs are then found done and skipped, not redone
    assert summary.count("done") + summary.count("skipped") == 5 and not summary.failed, str(summary)
    assert (tmp_path / "marker").exists()  # the worker really died once, and its job was rerun elsewhere
    for a, b in zip(seq, par):
        assert Path(a.output).read_text() == Path(b.output).read_text()


def test_cluster_yaml_files_describe_jobqueue_clusters():
    yaml = pytest.importorskip("yaml")
    dask_jobqueue = pytest.importorskip("dask_jobqueue")
    import inspect

    root = Path(__file__).resolve().parents[1] / "cluster"
    for path in sorted(root.glob("*.yaml")):
        spec = yaml.safe_load(path.read_text())
        cls = getattr(dask_jobqueue, spec.pop("cluster"))
        spec.pop("jobs")
        params = inspect.signature(cls.__init__).parameters
        job_params = inspect.signature(dask_jobqueue.slurm.SLURMJob.__init__).parameters
        core_params = inspect.signature(dask_jobqueue.core.Job.__init__).parameters
        unknown = [k for k in spec if k not in params and k not in job_params and k not in core_params]
        assert not unknown, f"{path.name}: keys unknown to {cls.__name__}: {unknown}"
