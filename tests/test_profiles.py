"""Run profiles: names, the paper's sizes, and the ordering smoke < cpu < paper."""

import dataclasses

import pytest

from mo_transfer.profiles import PROFILES, Profile, get_profile, profile_names, profiles_table
from mo_transfer.structures import DOPANTS


def test_names_and_lookup():
    assert profile_names() == ("smoke", "cpu", "gpu", "paper")
    for name in profile_names():
        assert get_profile(name).name == name
    assert get_profile("CPU") is PROFILES["cpu"]
    assert get_profile(PROFILES["gpu"]) is PROFILES["gpu"]


def test_unknown_profile_lists_allowed_names():
    with pytest.raises(ValueError) as err:
        get_profile("laptop")
    msg = str(err.value)
    assert "'laptop'" in msg
    assert "smoke, cpu, gpu, paper" in msg


def test_paper_profile_is_the_papers_protocol():
    p = get_profile("paper")
    assert (p.iid_repeats_e, p.iid_repeats_ene, p.refine_repeats) == (10, 5, 10)
    assert p.lodo_elements is None and p.lodo_folds == DOPANTS and len(p.lodo_folds) == 11
    assert p.model_scales == ("small", "medium", "large") and p.lodo_scale == "medium"
    assert p.foundation == "mace-mp-0" and p.dft_size == "paper" and p.max_frames is None
    # Section 2.2 of the paper, shared by every profile
    for prof in PROFILES.values():
        assert (prof.lr, prof.weight_decay, prof.ema_decay, prof.seed) == (3e-4, 1e-6, 0.99, 42)
        assert prof.energy_weight == prof.forces_weight == 30.0


def test_offline_profiles_use_the_stand_in_and_small_cells():
    for name in ("smoke", "cpu"):
        p = get_profile(name)
        assert p.device == "cpu" and p.foundation == "goh-mini" and p.dft_size == "small"
        assert set(p.lodo_folds) <= set(DOPANTS)
    assert len(get_profile("smoke").lodo_folds) < len(DOPANTS)
    assert get_profile("gpu").device == "cuda" and get_profile("gpu").foundation == "mace-mp-0"


def test_sizes_grow_from_smoke_to_paper():
    s, c, p = (get_profile(n) for n in ("smoke", "cpu", "paper"))
    for field in ("max_epochs", "num_channels", "iid_repeats_e", "iid_repeats_ene", "refine_repeats"):
        assert getattr(s, field) <= getattr(c, field) <= getattr(p, field), field
    assert len(s.lodo_folds) <= len(c.lodo_folds) <= len(p.lodo_folds)
    assert s.max_frames < c.max_frames
    assert s.max_epochs <= 2  # smoke: one or two epochs


def test_invalid_profiles_are_refused():
    base = dataclasses.asdict(get_profile("smoke"))
    for field, bad in [("device", "tpu"), ("foundation", "mace-mp-1"), ("dft_size", "huge"),
                       ("lodo_elements", ("Xx",)), ("model_scales", ()), ("max_epochs", 0)]:
        with pytest.raises(ValueError):
            Profile(**{**base, field: bad})


def test_profiles_are_frozen_and_tabulate():
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_profile("cpu").max_epochs = 1000
    rows = profiles_table()
    assert [r["profile"] for r in rows] == list(profile_names())
    assert rows[-1]["LODO folds"] == 11 and rows[-1]["IID repeats E / E_NE"] == "10 / 5"
    settings = {r["setting"]: r["value"] for r in get_profile("paper").summary_rows()}
    assert settings["lodo_elements"] == "all 11" and settings["max_frames"] == "all"
    assert settings["model_scales"] == "small, medium, large"


def test_the_introduction_states_the_cpu_profile_as_it_is():
    """book/intro.md's profile table and 'what differs' list say what the cpu profile runs (they once said 30 epochs
    and 4 LODO folds long after the profile changed)."""
    from pathlib import Path

    p = get_profile("cpu")
    intro = (Path(__file__).resolve().parents[1] / "book" / "intro.md").read_text()
    row = next(line for line in intro.splitlines() if line.startswith("| `cpu` |"))
    letters = {"small": "S", "medium": "M", "large": "L"}
    assert " / ".join(letters[s] for s in p.model_scales) in row and f"{p.iid_folds} trajectory folds" in row
    assert f"patience {p.engine_patience}, cap {p.engine_max_epochs}" in row
    assert f"{len(p.lodo_folds)} LODO folds at {letters[p.lodo_scale]} ({', '.join(p.lodo_folds)})" in row
    assert "CHGNet 0.3.0" in row and "{cite:p}`deng2023chgnet`" in intro


def test_notebooks_train_in_parallel_only_where_the_profile_says():
    """smoke trains two runs at a time (CI's two cores) in separate processes; cpu one after another in-process; a
    profile asking for no worker at all is refused."""
    from mo_transfer.study_common import executor

    assert executor(get_profile("smoke").train_workers) == {"backend": "process", "workers": 2}
    assert executor(get_profile("cpu").train_workers) == {}
    with pytest.raises(ValueError, match="at least 1"):
        executor(0)
    with pytest.raises(ValueError, match="train_workers must be at least 1"):
        dataclasses.replace(get_profile("smoke"), train_workers=0)
