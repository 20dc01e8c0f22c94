"""Executor overhead per job (target: under 1 s) and throughput with 1 and 2 workers on this machine.

Run: OMP_NUM_THREADS=1 python benchmarks/jobs.py [--n 20] [--sleep 0.5]
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MO_TRANSFER_NO_PROGRESS", "1")
from mo_transfer.jobs import Job, run_jobs  # noqa: E402


def batch(root: Path, n: int, sleep_s: float) -> list[Job]:
    return [Job("mo_transfer.jobs:sleep_job", f"b{i}", {"value": i, "sleep_s": sleep_s}, {}, str(root / f"{i}.json"))
            for i in range(n)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--sleep", type=float, default=0.5, help="seconds of work per job in the throughput runs")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        run_jobs(batch(tmp / "zero", a.n, 0.0))
        per_job = (time.perf_counter() - t0) / a.n
        print(f"sequential overhead per job (no work): {1000 * per_job:.1f} ms  (target < 1000 ms)")
        t0 = time.perf_counter()
        run_jobs(batch(tmp / "zero", a.n, 0.0))
        print(f"resume check per finished job: {1000 * (time.perf_counter() - t0) / a.n:.2f} ms")
        for backend, workers in (("sequential", 1), ("process", 1), ("process", 2), ("dask", 2)):
            root = tmp / f"{backend}{workers}"
            t0 = time.perf_counter()
            s = run_jobs(batch(root, a.n, a.sleep), backend=backend, workers=workers)
            wall = time.perf_counter() - t0
            print(f"{backend:>10} x{workers}: {a.n} jobs of {a.sleep} s in {wall:.2f} s -> {a.n / wall:.2f} jobs/s "
                  f"(ideal {workers / a.sleep:.2f}); overhead {1000 * (wall - a.n * a.sleep / workers) / a.n:.0f} ms/job"
                  f"; done={s.count('done')}")


if __name__ == "__main__":
    main()
