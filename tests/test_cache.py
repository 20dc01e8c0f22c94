"""Results cache: clear error when missing, atomic writes, provenance, identical fresh and cached results."""

import datetime as dt
import json
import subprocess

import numpy as np
import pytest

from mo_transfer import cache


@pytest.fixture()
def root(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ROOT_ENV, str(tmp_path))
    monkeypatch.delenv(cache.COMMAND_ENV, raising=False)
    return tmp_path


def test_missing_cache_names_the_command_that_regenerates_it(root):
    with pytest.raises(cache.CacheMissing) as err:
        cache.load_or_compute("iid_e", "cpu", lambda: pytest.fail("must not compute"), recompute=False,
                              notebook="03_iid")
    msg = str(err.value)
    assert "'iid_e'" in msg and "'cpu'" in msg
    assert str(root / "data" / "results" / "cpu" / "iid_e.json") in msg
    assert "make notebooks PROFILE=cpu RECOMPUTE=1" in msg
    assert "notebooks/03_iid.ipynb" in msg and "-p profile cpu -p recompute True" in msg
    assert isinstance(err.value, FileNotFoundError)


def test_compute_then_read_back(root):
    calls = []

    def compute():
        calls.append(1)
        return {"mae": np.float64(1.5), "folds": ("Nb", "W"), "per_fold": np.array([1.0, 2.0])}

    fresh = cache.load_or_compute("demo", "smoke", compute, recompute=True)
    cached = cache.load_or_compute("demo", "smoke", compute, recompute=False)
    assert calls == [1]
    assert fresh == cached == {"mae": 1.5, "folds": ["Nb", "W"], "per_fold": [1.0, 2.0]}
    path = root / "data" / "results" / "smoke" / "demo.json"
    doc = json.loads(path.read_text())
    assert doc["name"] == "demo" and doc["profile"] == "smoke" and doc["result"] == fresh
    assert cache.cached_names("smoke") == ["demo"]
    # recompute=True overwrites
    cache.load_or_compute("demo", "smoke", lambda: {"mae": 2.0}, recompute=True)
    assert cache.load("demo", "smoke") == {"mae": 2.0}


def test_provenance_fields(root, monkeypatch):
    monkeypatch.setenv(cache.COMMAND_ENV, "make notebooks PROFILE=smoke")
    cache.load_or_compute("p", "smoke", lambda: [1, 2], recompute=True, notebook="01_structures", seed=42)
    prov = cache.load_record("p", "smoke")["provenance"]
    assert prov["command"] == "make notebooks PROFILE=smoke"
    assert prov["profile"]["name"] == "smoke" and prov["profile"]["max_epochs"] == 1
    assert prov["notebook"] == "01_structures" and prov["seed"] == 42
    assert {"ase", "torch", "mace-torch", "numpy"} <= set(prov["packages"])
    assert set(prov["machine"]) >= {"hostname", "platform", "cpu_count", "gpu", "python", "omp_num_threads"}
    assert prov["machine"]["cpu_count"] >= 1
    assert isinstance(prov["wall_s"], float) and prov["wall_s"] >= 0
    when = dt.datetime.strptime(prov["date_utc"], "%Y-%m-%dT%H:%M:%SZ")
    assert abs((dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - when).total_seconds()) < 600
    assert prov["git_commit"].startswith("unknown")  # tmp root is no git repository


def test_provenance_records_the_git_commit(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false"]
    subprocess.run(git + ["init", "-q"], cwd=repo, check=True)
    (repo / "f.txt").write_text("x")
    subprocess.run(git + ["add", "f.txt"], cwd=repo, check=True)
    subprocess.run(git + ["commit", "-q", "-m", "m"], cwd=repo, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    monkeypatch.setenv(cache.ROOT_ENV, str(repo))
    assert cache.provenance()["git_commit"] == head
    (repo / "f.txt").write_text("changed")
    assert cache.provenance()["git_commit"] == head + "+dirty"


def test_failed_computation_or_serialisation_keeps_the_old_result(root):
    cache.load_or_compute("r", "cpu", lambda: {"v": 1}, recompute=True)
    folder = root / "data" / "results" / "cpu"
    before = (folder / "r.json").read_bytes()

    def boom():
        raise RuntimeError("training diverged")

    with pytest.raises(RuntimeError):
        cache.load_or_compute("r", "cpu", boom, recompute=True)
    with pytest.raises(TypeError):
        cache.load_or_compute("r", "cpu", lambda: {"v": object()}, recompute=True)
    with pytest.raises(TypeError, match="keys must be strings"):
        cache.load_or_compute("r", "cpu", lambda: {1: "int key"}, recompute=True)
    assert (folder / "r.json").read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["r.json"]  # no temporary files left behind


def test_write_goes_through_a_temporary_file(root, monkeypatch):
    import os

    import mo_transfer.jobs as jobs

    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append((str(src), str(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(jobs.os, "replace", spy)
    path = cache.save("atomic", "smoke", {"ok": True})
    assert len(seen) == 1
    src, dst = seen[0]
    assert dst == str(path) and src != dst and src.endswith(".tmp")
    assert json.loads(path.read_text())["result"] == {"ok": True}


def test_names_and_profiles_are_validated(root):
    for bad in ("../escape", "a/b", "", "x.json"):
        with pytest.raises(ValueError):
            cache.cache_path(bad, "cpu")
    with pytest.raises(ValueError, match="allowed: smoke, cpu, gpu, paper"):
        cache.load_or_compute("x", "laptop", lambda: 1, recompute=True)


def test_repo_root_finds_the_project(monkeypatch):
    monkeypatch.delenv(cache.ROOT_ENV, raising=False)
    root = cache.repo_root()
    assert (root / "pyproject.toml").is_file() and (root / "src" / "mo_transfer").is_dir()


def test_recompute_cli_rejects_unknown_study_and_names_itself_in_the_missing_cache_message(tmp_path):
    from mo_transfer import recompute

    with pytest.raises(ValueError, match="unknown study 'nope'"):
        recompute.recompute("nope", "smoke")
    result, message = cache.load_results("lodo", "cpu", lambda: {"x": 1}, False, root=tmp_path, notebook="04_lodo")
    assert result is None and "python -m mo_transfer.recompute lodo --profile cpu" in message
    result, message = cache.load_results("lodo", "cpu", lambda: {"x": 1}, True, root=tmp_path, notebook="04_lodo")
    assert result == {"x": 1} and message is None
    assert cache.load_record("lodo", "cpu", tmp_path)["provenance"]["notebook"] == "04_lodo"


def test_data_drift_note_only_when_the_pools_changed():
    recorded = {"used": {"FT-E": 13, "FT-E_NE": 39}, "pool_sha256": {"FT-E": "a" * 64, "FT-E_NE": "b" * 64}}
    assert cache.data_drift_markdown(recorded, dict(recorded), "iid", "cpu") is None
    now = {"used": {"FT-E": 15, "FT-E_NE": 47}, "pool_sha256": {"FT-E": "c" * 64, "FT-E_NE": "b" * 64}}
    note = cache.data_drift_markdown(recorded, now, "lodo", "cpu")
    assert "13 FT-E / 39 FT-E_NE" in note and "15 FT-E / 47 FT-E_NE" in note
    assert "(changed: FT-E)" in note and "python -m mo_transfer.recompute lodo --profile cpu" in note
    # a pool that is gone now counts as changed
    gone = cache.data_drift_markdown(recorded, {"used": {"FT-E": 13}, "pool_sha256": {"FT-E": "a" * 64}}, "iid", "cpu")
    assert "no FT-E_NE" in gone and "(changed: FT-E_NE)" in gone
    with pytest.raises(ValueError, match="unknown profile|profile"):
        cache.data_drift_markdown(recorded, now, "iid", "laptop")


def test_recompute_workers_choose_the_process_executor(monkeypatch):
    """``--workers 2`` hands the study the process backend with two workers; one worker keeps its default."""
    import sys
    import types

    from mo_transfer import recompute

    seen = []
    study = types.ModuleType("fake_study")
    study.load_results = lambda profile, recompute_, root=None, **kw: (seen.append(kw) or {"ok": 1}, None)
    monkeypatch.setitem(sys.modules, "fake_study", study)
    monkeypatch.setitem(recompute.STUDIES, "fake", "fake_study")
    assert recompute.recompute("fake", "smoke", workers=2) == {"ok": 1}
    recompute.recompute("fake", "smoke")
    assert seen == [{"backend": "process", "workers": 2}, {}]
    with pytest.raises(ValueError, match="workers must be at least 1"):
        recompute.recompute("fake", "smoke", workers=0)
