"""Shared test setup: one thread per process (the CI machine has 2 shared cores)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def ne_frames():
    """The committed FT-E_NE pool of our GPAW data (every relaxation frame; its E frames are FT-E)."""
    from mo_transfer import data_report

    pools, _, _ = data_report.build_pools(Path(__file__).resolve().parents[1] / "data" / "dft")
    return pools["FT-E_NE"]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A tiny GOHomS-mini (8 channels, max_L 0, 1 epoch, synthetic labels), made once per test session (per
    worker under pytest-xdist)."""
    from mo_transfer import foundation

    return foundation.smoke_foundation(tmp_path_factory.getbasetemp() / "smoke-foundation")
