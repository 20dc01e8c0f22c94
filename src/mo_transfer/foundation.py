"""GOHomS-mini pretraining: the offline stand-in foundation, pretrained with ``mace_run_train`` on our ordered-crystal
GPAW data for all 21 study elements (generation v1: the ``gohoms`` set; v2: plus ``gohoms2``), through the job
executor, with provenance, the training log and the held-out frames kept beside each model.

The models themselves (names, scales, generations, the resolver for MACE-MP-0 and GOHomS-mini files, what a model
carries) are :mod:`mo_transfer.foundation_models`, whose names this module re-exports. Command line:
``python -m mo_transfer.foundation pretrain --scale S [M L] [--generation v2]``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from . import cache, structures, training
from .foundation_models import (canonical_name, check_generation, count_parameters, ENERGY_KEY, file_sha256,
                                MADE_FROM_SUFFIX, model_fingerprint,
                                FORCES_KEY, FoundationNotFound, GOH_MINI_E0S_FILE, GOH_MINI_GENERATIONS,
                                GOH_MINI_MAX_EPOCHS, GOH_MINI_MAX_L, goh_mini_name, goh_mini_path, GOH_MINI_SCALES,
                                GohMiniSpec, load_foundation, load_model, MACE_MP0_ARCHITECTURE, MACE_MP0_FILES,
                                MACE_MP0_HIDDEN_IRREPS, MACE_MP0_RELEASE_URL, MACE_MP0_URLS, model_e0s,
                                model_elements, MODELS_DIR, MODELS_ENV, PAPER_PARAMETER_COUNTS, REPO_ROOT,
                                resolve_foundation, SCALE_TO_GOH_MINI, STUDY_ZS, untrained_goh_mini, untrained_model,
                                untrained_mp0_architecture, versions, _e0s_literal, _generation_flag, _generation_of,
                                _mace_cache_name, _resolve_mace_mp0, _search_dirs)  # noqa: F401 (re-exported: callers use foundation.<name>)
from .jobs import Job, JobFailed, atomic_write_text, run_jobs


# ---------------------------------------------------------------------------------------------------------------
# Pretraining data: splits, E0s, synthetic labels for tests
# ---------------------------------------------------------------------------------------------------------------

def write_extxyz(frames: list[Atoms], path: str | os.PathLike) -> Path:
    """Write frames to one extxyz file atomically (no calculators, labels in info/arrays)."""
    from ase.io import write

    buf = io.StringIO()
    write(buf, frames, format="extxyz")
    atomic_write_text(path, buf.getvalue())
    return Path(path)


def read_extxyz(path: str | os.PathLike) -> list[Atoms]:
    """Read every frame of an extxyz file (plain or .gz)."""
    from .dft import read_frames

    return read_frames(path)


def split_frames(frames: list[Atoms], test_fraction: float, valid_fraction: float,
                 seed: int = 42) -> tuple[list[Atoms], list[Atoms], list[Atoms]]:
    """Seeded random split into train, valid, test: test first, then validation from the remainder."""
    idx = np.random.default_rng(seed).permutation(len(frames))
    n_test = int(round(test_fraction * len(frames)))
    n_valid = max(1, int(round(valid_fraction * (len(frames) - n_test))))
    test, valid, train = idx[:n_test], idx[n_test:n_test + n_valid], idx[n_test + n_valid:]
    pick = lambda ii: [frames[i] for i in sorted(ii)]  # noqa: E731
    return pick(train), pick(valid), pick(test)


def least_squares_e0s(frames: list[Atoms], zs: tuple[int, ...] = STUDY_ZS,
                      energy_key: str = ENERGY_KEY) -> dict[int, float]:
    """Per-element reference energies E0 (eV) that best fit the frames' total energies (least squares).

    Every element of ``zs`` must occur in the frames; otherwise its E0 is undetermined and this raises.
    """
    counts = np.array([[np.count_nonzero(f.numbers == z) for z in zs] for f in frames], dtype=float)
    absent = [z for z, n in zip(zs, counts.sum(axis=0)) if n == 0]
    if absent:
        from ase.data import chemical_symbols

        raise ValueError(f"cannot fit E0s: no frame contains {[chemical_symbols[z] for z in absent]}")
    energies = np.array([float(f.info[energy_key]) for f in frames])
    e0, _, rank, _ = np.linalg.lstsq(counts, energies, rcond=None)
    if rank < len(zs):
        raise ValueError(f"cannot fit E0s: composition matrix has rank {rank} < {len(zs)} elements")
    return {int(z): float(v) for z, v in zip(zs, e0)}


def surrogate_label(atoms: Atoms) -> Atoms:
    """Copy of ``atoms`` with SYNTHETIC labels (Lennard-Jones plus a per-element offset): for tests and benchmarks only.

    Labels are finite, smooth and consistent (forces are minus the energy gradient); they are not physics.
    """
    from ase.calculators.lj import LennardJones

    a = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    a.info.update({k: v for k, v in atoms.info.items() if isinstance(v, (str, int, float))})
    a.calc = LennardJones(sigma=2.4, epsilon=0.05, rc=5.0, smooth=True)
    energy = float(a.get_potential_energy()) - float(np.sum(1.0 + 0.1 * a.numbers))
    forces = np.array(a.get_forces())
    a.calc = None
    a.info[ENERGY_KEY] = energy
    a.info["label_source"] = "synthetic-lj"
    a.arrays[FORCES_KEY] = forces
    return a


def surrogate_gohoms_frames(per_family: int | None = None) -> list[Atoms]:
    """The GOHomS structures (``gohoms.gohoms_families``) with synthetic labels.

    ``per_family`` keeps that many structures per family, evenly spaced so that the last (rattled) one is kept.
    """
    from .gohoms import gohoms_families

    frames = []
    for items in gohoms_families().values():
        if per_family is not None:
            keep = np.unique(np.linspace(0, len(items) - 1, min(per_family, len(items))).round().astype(int))
            items = [items[i] for i in keep]
        frames += [surrogate_label(a) for a in items]
    return frames


#: Spec overrides of the smoke-test foundation: 8 channels, small radial MLP, one epoch.
SMOKE_SPEC: dict = {"num_channels": 8, "radial_MLP": "[16, 16]", "max_epochs": 1, "batch_size": 4}


def smoke_foundation(root: str | os.PathLike, scale: str = "S") -> Path:
    """A tiny GOHomS-mini pretrained on synthetic labels (2 structures per family): for tests of code paths only.

    Goes through the same pretraining job as the real model; reused when ``root`` already holds it.
    """
    root = Path(root)
    model = root / f"goh-mini-{scale}.model"
    if not model.exists():
        data = write_extxyz(surrogate_gohoms_frames(per_family=2), root / "synthetic-gohoms.extxyz")
        summary = pretrain(scale, data=data, out=model, **SMOKE_SPEC)
        if summary.failed:
            raise RuntimeError(f"smoke foundation pretraining failed: {summary}")
    return model


def gohoms_data_file(path: str | os.PathLike, sets: tuple[str, ...] = ("gohoms",)) -> Path:
    """Write the computed frames of the pretraining DFT sets (finished jobs and the checkpointed frames of
    unfinished ones: each is an independent single point) to one extxyz file; raises when a set has none yet."""
    from .dft import load_set_frames

    frames: list[Atoms] = []
    for name in sets:
        got = load_set_frames(name, include_partial=True)
        if not got:
            raise FileNotFoundError(f"no {name!r} DFT frames yet: run `python -m mo_transfer.dft run --set {name}` "
                                    "first, or pass --data with an extxyz file labelled REF_energy / REF_forces")
        frames += got
    return write_extxyz(frames, path)


# ---------------------------------------------------------------------------------------------------------------
# Pretraining through mace_run_train and the job executor
# ---------------------------------------------------------------------------------------------------------------


def pretrain_arguments(spec: GohMiniSpec, files: dict[str, Path], e0s: dict[int, float], work_dir: Path,
                       name: str, device: str = "cpu", zs: tuple[int, ...] = STUDY_ZS) -> list[str]:
    """The ``mace_run_train`` arguments of a GOHomS-mini pretraining (from scratch, all 21 elements)."""
    return [
        f"--name={name}", f"--seed={spec.seed}", f"--work_dir={work_dir}",
        f"--train_file={files['train']}", f"--valid_file={files['valid']}", f"--test_file={files['test']}",
        f"--energy_key={ENERGY_KEY}", f"--forces_key={FORCES_KEY}",
        f"--atomic_numbers={list(zs)}", f"--E0s={_e0s_literal(e0s)}",
        "--model=ScaleShiftMACE",
        "--interaction_first=RealAgnosticResidualInteractionBlock",
        "--interaction=RealAgnosticResidualInteractionBlock",
        f"--hidden_irreps={spec.hidden_irreps}", f"--r_max={spec.r_max_ang}",
        f"--num_interactions={spec.num_interactions}", f"--correlation={spec.correlation}",
        f"--max_ell={spec.max_ell}", f"--num_radial_basis={spec.num_radial_basis}",
        f"--num_cutoff_basis={spec.num_cutoff_basis}", f"--radial_MLP={spec.radial_MLP}",
        f"--MLP_irreps={spec.MLP_irreps}",
        "--loss=weighted", f"--energy_weight={spec.energy_weight}", f"--forces_weight={spec.forces_weight}",
        f"--lr={spec.lr}", f"--weight_decay={spec.weight_decay}", "--ema", f"--ema_decay={spec.ema_decay}",
        f"--batch_size={spec.batch_size}", f"--valid_batch_size={spec.batch_size}",
        f"--max_num_epochs={spec.max_epochs}", f"--patience={spec.patience}",
        f"--default_dtype={spec.default_dtype}", f"--device={device}",
        "--error_table=PerAtomMAE", "--plot=False", "--save_cpu", "--restart_latest",
    ]


def _command_line() -> str:
    """The command that started this process, as a user would type it."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(os.path.join("mo_transfer", "foundation.py")):
        argv[0] = "-m mo_transfer.foundation"
    return " ".join(["python"] + argv)


def _relative(path: Path) -> str:
    """A path relative to the repository when inside it (portable provenance), else absolute."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def provenance_path(model_path: str | os.PathLike) -> Path:
    """Provenance JSON beside a model: ``goh-mini-S.model`` -> ``goh-mini-S.json``."""
    return Path(model_path).with_suffix(".json")


def pretrain_job(job: Job, tmp_path: Path) -> dict:
    """Job function: pretrain one GOHomS-mini scale with ``mace_run_train``; writes the model to ``tmp_path``.

    Beside the output it writes the provenance JSON and the training log. The work folder (splits, checkpoints)
    is ``<output dir>/runs/<model name>-<job key>``, so a killed run resumes from its last checkpoint.
    """


    spec = GohMiniSpec(**job.settings["spec"])
    out = Path(job.output).resolve()
    data = staged_data_path(out, job.inputs["data_sha256"])
    if not data.exists() or file_sha256(data) != job.inputs["data_sha256"]:
        raise JobFailed(f"staged data file {data} is missing or changed (hash mismatch)")
    work = out.parent / "runs" / f"{out.stem}-{job.key}"
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    train, valid, test = split_frames(read_extxyz(data), spec.test_fraction, spec.valid_fraction, spec.seed)
    files = {k: write_extxyz(v, work / f"{k}.xyz") for k, v in (("train", train), ("valid", valid), ("test", test))}
    e0s, e0s_method = pretraining_reference_energies(job, train)
    device = job.settings.get("device", "cpu")
    args = pretrain_arguments(spec, files, e0s, work, out.stem, device, STUDY_ZS)
    run = training.run_mace_train(args, work, out.stem, spec.seed, spec.patience, work / "train.log")
    if job.settings.get("require_early_stop") and not run.get("stopped_early"):
        raise JobFailed(f"{out.stem}: validation early stopping did not fire within {spec.max_epochs} epochs (best "
                        f"epoch {run.get('best_epoch')}, patience {spec.patience}); a foundation that stops at its "
                        f"cap is not accepted: rerun with a higher --epochs")
    model_file = work / f"{out.stem}.model"
    metrics = {k: training.error_metrics(frames, training.evaluate(model_file, frames, device))
               for k, frames in (("valid", valid), ("test", test)) if frames}
    model = load_model(model_file)
    shutil.copyfile(model_file, tmp_path)
    wall_s = round(time.time() - t0, 1)
    doc = {
        "model": out.name, "description": "GOHomS-mini: MACE (MACE-MP-0 architecture, fewer channels) pretrained "
                                          "with mace_run_train on ordered crystals of the 21 study elements",
        "command": _command_line(), "git_commit": cache.git_commit(REPO_ROOT),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "wall_s": wall_s, **versions(),
        "data": {"path": _relative(data), "sha256": job.inputs["data_sha256"], "frames": len(train) + len(valid) + len(test),
                 "train": len(train), "valid": len(valid), "test": len(test),
                 "label_sources": sorted({str(f.info.get("label_source", "dft")) for f in train})},
        "hyperparameters": {**spec.to_dict(), "hidden_irreps": spec.hidden_irreps}, "device": device,
        "e0s_ev": {str(z): v for z, v in e0s.items()},
        "e0s_method": e0s_method,
        "mace_run_train_args": args, "parameters": count_parameters(model), "elements": list(model_elements(model)),
        "training": run, "held_out_metrics": metrics, "job_key": job.key,
    }
    atomic_write_text(provenance_path(out), json.dumps(doc, indent=1, default=str))
    log = work / "logs" / f"{out.stem}_run-{spec.seed}.log"
    if log.exists():
        shutil.copyfile(log, out.with_suffix(".log"))
    if test:  # kept beside the model, so a test can re-evaluate the committed model against its provenance
        shutil.copyfile(files["test"], held_out_path(out))
    return {"parameters": doc["parameters"], "wall_s": wall_s, "test": metrics.get("test"), "epochs": run["epochs"]}


def pretraining_reference_energies(job: Job, train: list[Atoms]) -> tuple[dict[int, float], str]:
    """The E0s of a pretraining job and how they were obtained: the isolated-atom E0 file named in the job
    (mace's guidance ranks them first; an element without an energy fails the job, naming it), else the least
    squares of the training split's total energies on element counts."""
    from .isolated_atoms import read_e0s

    path = job.settings.get("e0s_file")
    if path is None:
        return least_squares_e0s(train, STUDY_ZS), "least squares of the training split's total energies on element counts"
    if file_sha256(path) != job.inputs.get("e0s_sha256"):
        raise JobFailed(f"E0 file {path} changed since the job was planned (hash mismatch)")
    try:
        e0s = read_e0s(path)
    except ValueError as err:
        raise JobFailed(str(err)) from err
    return e0s, f"isolated-atom energies from {_relative(Path(path))} (spin-polarised GPAW, production settings)"


def held_out_path(model_path: str | os.PathLike) -> Path:
    """The held-out test frames of a pretrained model, stored beside it (``goh-mini-S.test.xyz``)."""
    return Path(model_path).with_suffix(".test.xyz")


def staged_data_path(out: str | os.PathLike, sha256: str) -> Path:
    """Content-addressed copy of a pretraining data file beside the model's work folders."""
    return Path(out).parent / "runs" / f"data-{sha256[:16]}.extxyz"


def pretrain_job_for(scale: str, data: str | os.PathLike, out: str | os.PathLike | None = None,
                     device: str = "cpu", e0s_file: str | os.PathLike | None = None,
                     require_early_stop: bool = False, **spec_overrides) -> Job:
    """The executor job that (re)generates GOHomS-mini of one scale from an extxyz data file.

    The data are staged into a content-addressed file, so the job's key (hence resume and skip) depends on the
    data's hash, the spec and the device only, not on where the files are.
    """
    spec = GohMiniSpec.for_scale(scale, **spec_overrides)
    out = Path(out) if out is not None else goh_mini_path(scale)
    sha = file_sha256(data)
    staged = staged_data_path(out, sha)
    if not staged.exists():
        staged.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data, staged)
    inputs, settings = {"data_sha256": sha}, {"spec": spec.to_dict(), "device": device}
    if e0s_file is not None:  # only then: the keys of models pretrained with least-squares E0s stay as they were
        inputs["e0s_sha256"] = file_sha256(e0s_file)
        settings["e0s_file"] = str(Path(e0s_file).resolve())
    if require_early_stop:  # likewise only then (v2 on): a run that ends at its epoch cap fails instead of landing
        settings["require_early_stop"] = True
    return Job("mo_transfer.foundation:pretrain_job", out.stem, inputs, settings, str(out))


def pretrain(scale: str, data: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
             device: str = "cpu", e0s_file: str | os.PathLike | None = None, generation: str = "v1",
             **spec_overrides):
    """Run (or resume, or skip when done) the pretraining job of one scale; returns the executor's batch summary.
    Without ``data``, ``out`` and ``e0s_file``, the generation decides them (its DFT sets, its model path, and its
    reference energies: isolated atoms for v2, least squares for v1). From v2 on, a run that stops at its epoch
    cap fails: only a run stopped by validation early stopping becomes a foundation."""
    return pretrain_scales((scale,), data, out, device, e0s_file, generation, **spec_overrides)


def pretrain_scales(scales: Sequence[str], data: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
                    device: str = "cpu", e0s_file: str | os.PathLike | None = None, generation: str = "v1",
                    workers: int = 1, **spec_overrides):
    """:func:`pretrain` for several scales in one batch (``workers`` > 1: that many at once, one process each),
    so that their records land in one pretraining manifest."""
    check_generation(generation)
    if out is not None and len(scales) != 1:
        raise ValueError(f"--out names one model file; {len(scales)} scales were asked for")
    spec_overrides.setdefault("max_epochs", GOH_MINI_MAX_EPOCHS[generation])
    outs = [Path(out) if out is not None else goh_mini_path(s, generation=generation) for s in scales]
    if e0s_file is None:
        e0s_file = GOH_MINI_E0S_FILE[generation]
    if data is None:
        sets = GOH_MINI_GENERATIONS[generation]
        data = gohoms_data_file(outs[0].parent / "runs" / f"{'+'.join(sets)}.extxyz", sets)
    jobs = [pretrain_job_for(s, data, o, device, e0s_file, require_early_stop=generation != "v1", **spec_overrides)
            for s, o in zip(scales, outs)]
    executor = {"backend": "process", "workers": workers} if workers > 1 else {}
    return run_jobs(jobs, max_attempts=1, desc=f"pretrain {', '.join(o.stem for o in outs)}",
                    manifest=outs[0].parent / "pretrain-manifest.json", **executor)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mo_transfer.foundation", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("pretrain", help="pretrain GOHomS-mini of one or more scales with mace_run_train")
    t.add_argument("--scale", required=True, nargs="+", choices=sorted(GOH_MINI_SCALES),
                   help="one or more scales, e.g. --scale S M")
    t.add_argument("--workers", type=int, default=1, help="scales pretrained at once, one process (core) each")
    t.add_argument("--epochs", type=int, default=None, help="maximum epochs (default: the spec's)")
    t.add_argument("--channels", type=int, default=None, help="MACE channels (default 32)")
    t.add_argument("--data", default=None, help="extxyz with REF_energy/REF_forces (default: the generation's DFT sets)")
    t.add_argument("--out", default=None, help="model path (default data/models/goh-mini[-v2]-<scale>.model)")
    t.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    t.add_argument("--generation", default="v1", choices=sorted(GOH_MINI_GENERATIONS),
                   help="v1: the 'gohoms' set, least-squares E0s; v2: 'gohoms' + 'gohoms2', isolated-atom E0s "
                        "(default data, model path and E0s; --data, --out and --e0s-file override them)")
    t.add_argument("--e0s-file", default=None,
                   help="isolated-atom E0 file (data/dft/isolated_atoms/e0s.json) instead of least-squares E0s")
    r = sub.add_parser("resolve", help="print the local path of a foundation model (downloads MACE-MP-0 if needed)")
    r.add_argument("name")
    r.add_argument("--no-download", action="store_true")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.cmd == "resolve":
        try:
            print(resolve_foundation(args.name, allow_download=not args.no_download))
        except FoundationNotFound as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        return 0
    overrides = {k: v for k, v in (("max_epochs", args.epochs), ("num_channels", args.channels)) if v is not None}
    if args.workers < 1:
        p.error(f"--workers must be at least 1, got {args.workers}")
    try:
        summary = pretrain_scales(tuple(args.scale), args.data, args.out, args.device, args.e0s_file, args.generation,
                                  args.workers, **overrides)
    except ValueError as err:
        p.error(str(err))
    print(summary)
    for rec in summary.records:
        print(json.dumps(rec.result, indent=1, default=str))
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
