"""Command-line mistakes end in one clear message, not a traceback; read-only commands write nothing; written
files get ordinary permissions."""

import os
import stat

import pytest

from mo_transfer import dft, jobs, recompute


def run_cli(main, argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code, capsys.readouterr().err


def test_recompute_refuses_zero_workers(capsys):
    code, err = run_cli(recompute.main, ["iid", "--profile", "smoke", "--workers", "0"], capsys)
    assert code == 2 and "--workers: must be at least 1" in err and "Traceback" not in err
    code, err = run_cli(recompute.main, ["iid", "--profile", "smoke", "--workers", "two"], capsys)
    assert code == 2 and "expected a whole number, got 'two'" in err


def test_recompute_refuses_a_missing_root_and_creates_nothing(tmp_path, capsys):
    """The defect: --root /nonexistent trained the whole study on no data and created the folder for its cache."""
    missing = tmp_path / "nonexistent"
    code, err = run_cli(recompute.main, ["iid", "--profile", "smoke", "--root", str(missing)], capsys)
    assert code == 2 and f"--root {missing}: no such folder" in err
    assert not missing.exists()
    code, err = run_cli(recompute.main, ["iid", "--profile", "smoke", "--root", str(tmp_path)], capsys)
    assert code == 2 and "not a repository root" in err and str(tmp_path / "data") in err
    assert list(tmp_path.iterdir()) == []


def test_dft_run_names_unknown_configuration_ids(tmp_path, capsys):
    code, err = run_cli(dft.main, ["run", "--set", "bcc16", "--only", "BADID", "--root", str(tmp_path)], capsys)
    assert code == 2 and "configuration ids not in set 'bcc16': ['BADID']" in err and "bcc-Nb" in err
    assert list(tmp_path.iterdir()) == []


def test_dft_status_of_a_set_without_data_writes_nothing(tmp_path, capsys):
    assert dft.main(["status", "--set", "extra16", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert '"frames": 0' in out.out and "no data yet (nothing written)" in out.err
    assert list(tmp_path.rglob("*")) == []


def test_atomic_writes_have_ordinary_permissions(tmp_path):
    """The defect: summary.json was written with mode 0600 (mkstemp's), unreadable to the group and others."""
    old = os.umask(0o022)
    try:
        jobs.atomic_write_text(tmp_path / "sub" / "summary.json", "{}\n")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "sub" / "summary.json").stat().st_mode)
    assert mode == 0o644 and (tmp_path / "sub" / "summary.json").read_text() == "{}\n"
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["summary.json"]  # no temporary file left


def test_pretrain_refuses_one_out_file_for_several_scales_and_zero_workers(tmp_path, capsys):
    from mo_transfer import foundation

    out = tmp_path / "x.model"
    code, err = run_cli(foundation.main, ["pretrain", "--scale", "S", "M", "--out", str(out)], capsys)
    assert code == 2 and "--out names one model file; 2 scales" in err and "Traceback" not in err
    code, err = run_cli(foundation.main, ["pretrain", "--scale", "S", "--workers", "0"], capsys)
    assert code == 2 and "--workers must be at least 1" in err
    assert not out.exists() and not any(tmp_path.iterdir())


def test_start_runs_until_reads_a_utc_clock_time_or_an_iso_time_and_refuses_anything_else():
    import argparse
    import datetime as dt

    now = dt.datetime(2026, 12, 6, 5, 30, tzinfo=dt.timezone.utc)
    assert recompute.start_until("05:45", now) == dt.datetime(2026, 12, 6, 5, 45, tzinfo=dt.timezone.utc).timestamp()
    # a clock time already past means tomorrow's, never an instant drain
    assert recompute.start_until("05:00", now) == dt.datetime(2026, 12, 7, 5, 0, tzinfo=dt.timezone.utc).timestamp()
    assert recompute.start_until("2026-12-06T07:00", now) == now.timestamp() + 5400
    assert recompute.start_until("2026-12-06T07:00+01:00", now) == now.timestamp() + 1800
    for bad in ("soon", "25:00", "5.45"):
        with pytest.raises(argparse.ArgumentTypeError, match="HH:MM"):
            recompute.start_until(bad, now)
