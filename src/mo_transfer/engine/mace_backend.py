"""The MACE backend of the engine: every model goes through ``mace-torch`` (``mace_run_train``, its calculator).

Fairness by construction: with the ``foundation`` normalisation a scratch run is a fine-tune run whose starting
file is the foundation's architecture with freshly seeded random weights (same element table, E0s, output
scale and shift, average neighbour count), so scratch and fine-tune go through one mace code path and differ only
in the initial weights. The other normalisations (``std_scaling``, ``no_scaling``, mace's default
``rms_forces_scaling``) rebuild the architecture from flags and let mace compute scale and shift on the training
set: they exist for scratch only (a fine-tuned model always inherits the foundation's scale and shift in mace).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Sequence

from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols

from .. import mace_history, training
from ..foundation import file_sha256, load_model, model_e0s, resolve_foundation, versions
from ..jobs import atomic_write_text
from .e0s import estimate_e0s_ev
from .execution import device_description, execution_device
from .records import Predictions, TrainRecord, TrainSpec

RECORD_FILE = "record.json"
INIT_MODEL = "init.model"


def spec_hash(spec: TrainSpec) -> str:
    """Hash of what a run computes: the spec (minus folder and threads) and the bytes of its data and foundation."""
    d = spec.identity()
    files = {"train": file_sha256(spec.train_file), "valid": file_sha256(spec.valid_file),
             "foundation": file_sha256(resolve_foundation(spec.foundation))}
    blob = json.dumps({"spec": d, "files": files}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def random_init_model(foundation_path: str | Path, out_path: str | Path, seed: int) -> Path:
    """Save the foundation's architecture with seeded random weights, keeping its element table, E0s, output
    scale/shift and average neighbour count: the scratch starting point of the ``foundation`` normalisation."""
    import torch
    from mace.tools.scripts_utils import extract_config_mace_model

    model = load_model(foundation_path)
    cfg = extract_config_mace_model(model)
    if "error" in cfg:
        raise ValueError(f"cannot read the architecture of {foundation_path}: {cfg['error']}")
    torch.manual_seed(seed)
    fresh = type(model)(**cfg).to(next(model.parameters()).dtype)
    tmp = Path(str(out_path) + ".tmp")
    torch.save(fresh, tmp)
    tmp.replace(out_path)
    return Path(out_path)


def reference_energies_ev(spec: TrainSpec, foundation_model, foundation_path: Path) -> tuple[dict[str, float], dict]:
    """The E0s (eV) of a run by its rule, with what the estimate saw. ``estimated``: the foundation's E0s plus the
    least-squares correction of (reference - foundation prediction) over the training file (mace's rule)."""
    if spec.settings.e0s_ev is not None:
        given = dict(spec.settings.e0s_ev)
        missing = [el for el in spec.elements if el not in given]
        if missing:
            raise ValueError(f"explicit E0s (TrainSettings.e0s_ev) lack {missing}; give every element of the run: "
                             f"{list(spec.elements)}")
        return {el: given[el] for el in spec.elements}, {"rule": "explicit", "e0s_ev": given}
    base = {chemical_symbols[z]: e for z, e in model_e0s(foundation_model, spec.elements).items()}
    rule = spec.settings.e0_rule
    if rule == "foundation":
        return base, {"rule": rule}
    if rule == "average":
        return {}, {"rule": rule}
    frames = training.read_frames(spec.train_file)
    pred = training.evaluate(foundation_path, frames, spec.settings.device, spec.settings.default_dtype)
    e0s, fit = estimate_e0s_ev(frames, pred.energies_ev, base, spec.elements)
    return e0s, {"rule": rule, "foundation_e0s_ev": base, "correction_ev": fit.offsets_ev,
                 "undetermined": list(fit.undetermined), "n_train_frames": fit.n_frames}


def _as_config(spec: TrainSpec) -> training.TrainConfig:
    s = spec.settings
    return training.TrainConfig(
        paradigm=spec.paradigm, foundation=spec.foundation, train_file=spec.train_file, run_dir=spec.run_dir,
        valid_file=spec.valid_file, name=spec.name, elements=spec.elements, max_epochs=s.max_epochs,
        patience=s.patience, batch_size=s.batch_size, device=execution_device(s.device),
        default_dtype=s.default_dtype, lr=s.lr,
        weight_decay=s.weight_decay, ema_decay=s.ema_decay or 0.0, energy_weight=s.energy_weight,
        forces_weight=s.forces_weight, seed=s.seed, threads=spec.threads)


def arguments(spec: TrainSpec, foundation_model, foundation_path: Path, e0s_ev: dict[str, float]) -> list[str]:
    """The exact ``mace_run_train`` arguments of a run."""
    e0s = {atomic_numbers[el]: v for el, v in e0s_ev.items()}
    args = training.common_arguments(_as_config(spec), e0s)
    if not e0s:
        args = [a if not a.startswith("--E0s=") else "--E0s=average" for a in args]
    if spec.settings.ema_decay is None:
        args = [a for a in args if a != "--ema" and not a.startswith("--ema_decay")]
    norm = spec.settings.normalisation
    start = foundation_path
    if norm == "foundation":
        if spec.paradigm == "scratch":
            start = random_init_model(foundation_path, Path(spec.run_dir).resolve() / INIT_MODEL, spec.settings.seed)
        args += ["--model=ScaleShiftMACE", f"--foundation_model={start}", "--multiheads_finetuning=False",
                 "--foundation_model_elements=False", "--foundation_filter_elements=True"]
    elif spec.paradigm == "scratch":
        args += training.architecture_arguments(foundation_model) + [f"--scaling={norm}"]
    else:
        raise ValueError(f"normalisation {norm!r} is for scratch runs only: a mace fine-tune always inherits the "
                         "foundation's scale and shift")
    return args


def output_scale_shift(model) -> tuple[float | None, float | None]:
    """The trained model's output scale and shift (ScaleShiftMACE's ``scale_shift``), first head."""
    ss = getattr(model, "scale_shift", None)
    if ss is None:
        return None, None
    return float(ss.scale.reshape(-1)[0]), float(ss.shift.reshape(-1)[0])


def engine_curve(rows: list[dict]) -> list[dict]:
    """mace's validation rows in the engine's curve keys (see :class:`TrainRecord`)."""
    return [{"epoch": r["epoch"], "loss": r["loss"], "energy_mae_mev_per_atom": r["mae_e_mev_per_atom"],
             "force_mae_mev_per_ang": r["mae_f_mev_per_ang"]} for r in rows]


class MaceBackend:
    """Trains with ``mace_run_train`` (resumable, patience enforced by :func:`training.run_mace_train`) and
    predicts with mace's calculator."""

    name = "mace"

    def foundation_model(self, foundation: str) -> str:
        return str(resolve_foundation(foundation))

    def predict(self, model: str, frames: Sequence[Atoms], device: str = "cpu",
                default_dtype: str = "float64") -> Predictions:
        path = Path(model) if Path(model).exists() else resolve_foundation(model)
        p = training.evaluate(path, list(frames), device, default_dtype)
        return Predictions(p.energies_ev, p.forces_ev_per_ang)

    def train(self, spec: TrainSpec) -> TrainRecord:
        run_dir = Path(spec.run_dir).resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
        key = spec_hash(spec)
        status = training._check_run_dir(run_dir, key)
        if status.get("state") == "done" and (run_dir / RECORD_FILE).exists():
            record = TrainRecord(**json.loads((run_dir / RECORD_FILE).read_text()))
            results = training.results_file(run_dir, spec.name, spec.settings.seed)
            if "compute_s" not in record.extra and results.exists():  # records written before compute_s existed
                record.extra["compute_s"] = round(mace_history.compute_seconds(training.read_results(results)), 1)
            return record
        foundation_path = resolve_foundation(spec.foundation)
        foundation = load_model(foundation_path)
        e0s, e0_info = reference_energies_ev(spec, foundation, foundation_path)
        args = arguments(spec, foundation, foundation_path, e0s)
        atomic_write_text(run_dir / "spec.json", json.dumps({"spec": spec.to_dict(), "spec_hash": key,
                                                             "foundation_path": str(foundation_path),
                                                             **versions()}, indent=1, default=str))
        atomic_write_text(run_dir / "args.json", json.dumps(["mace_run_train", *args], indent=1))
        atomic_write_text(run_dir / "status.json", json.dumps({"state": "training", "config_hash": key}))
        s = spec.settings
        summary = training.run_mace_train(args, run_dir, spec.name, s.seed, s.patience, run_dir / "train.log",
                                          spec.threads)
        trained = load_model(summary["model"])
        scale, shift = output_scale_shift(trained)
        rows = training.read_results(training.results_file(run_dir, spec.name, s.seed))
        record = TrainRecord(
            model_path=str(summary["model"]), epochs_run=int(summary["epochs"]), best_epoch=summary["best_epoch"],
            max_epochs=s.max_epochs, patience=s.patience,
            converged=bool(summary["stopped_early"]) or training.epochs_since_best(rows) >= s.patience,
            seconds_per_epoch=summary.get("seconds_per_epoch"), wall_s=float(summary["wall_s"]),
            curve=engine_curve(training.learning_curve_rows(rows)), output_scale=scale, output_shift=shift,
            e0s_ev={chemical_symbols[z]: e for z, e in model_e0s(trained).items()},
            extra={"e0s": e0_info, "normalisation": s.normalisation, "spec_hash": key,
                   "compute_s": round(mace_history.compute_seconds(rows), 1),
                   "resumed_at_epochs": mace_history.resumed_epochs(rows),
                   "trained_on": device_description(execution_device(s.device))})
        atomic_write_text(run_dir / RECORD_FILE, json.dumps(dataclasses.asdict(record), indent=1, default=str))
        atomic_write_text(run_dir / "status.json", json.dumps({"state": "done", "config_hash": key}))
        return record
