"""The three paradigms of the paper (Section 2.2): zero-shot, scratch and fine-tune, all through mace's own tools.

:func:`build_arguments` turns a :class:`TrainConfig` into the exact ``mace_run_train`` argument list of a paradigm
with the paper's settings; :func:`run_training` runs it as a subprocess in a run folder (resumable, with early
stopping); :func:`evaluate` predicts energies and forces of frames with a saved model; :func:`train_job` is the
job kind of :mod:`mo_transfer.jobs`.

Design: scratch and fine-tune share every setting and the same E0 dict (the foundation model's), and differ
only in initialisation: scratch builds the foundation's architecture (read with mace's
``extract_config_mace_model``) with random weights; fine-tune starts from the foundation's weights (naive,
single-head). Both keep the element table Mo + the 11 dopants, so every model knows every study dopant.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers as _Z

from . import mace_history, structures
from .mace_history import (epochs_since_best, learning_curve_rows, read_results,  # noqa: F401 (re-exported)
                           summarize_results)
from .foundation_models import (ENERGY_KEY, FORCES_KEY, _e0s_literal, file_sha256, load_model, model_e0s,
                                resolve_foundation, versions)
from .jobs import Job, JobFailed, atomic_write_text
from .run_lock import die_with_parent

PARADIGMS: tuple[str, ...] = ("zero-shot", "scratch", "fine-tune")
#: The element table of every trained model: the host and the 11 dopants of the training data.
TRAIN_ELEMENTS: tuple[str, ...] = (structures.HOST,) + structures.DOPANTS


@dataclass(frozen=True)
class TrainConfig:
    """One training run: paradigm, foundation, data files, run folder, and the paper's training settings.

    ``foundation`` is a name (``small``/``medium``/``large``, ``goh-mini-S/M/L``) or a model path; scratch uses it
    for the architecture and the E0s only. Without ``valid_file``, mace draws ``valid_fraction`` of the training
    file (seeded). Defaults are the paper's (Section 2.2) where it states them.
    """

    paradigm: str
    foundation: str
    train_file: str
    run_dir: str
    valid_file: str | None = None
    test_file: str | None = None
    valid_fraction: float = 0.1
    name: str = "model"
    elements: tuple[str, ...] = TRAIN_ELEMENTS
    max_epochs: int = 100
    patience: int = 20
    batch_size: int = 5
    device: str = "cpu"
    default_dtype: str = "float64"
    lr: float = 3e-4
    weight_decay: float = 1e-6
    ema_decay: float = 0.99
    energy_weight: float = 30.0
    forces_weight: float = 30.0
    seed: int = 42
    threads: int = 1
    extra_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.paradigm not in PARADIGMS:
            raise ValueError(f"unknown paradigm {self.paradigm!r}; allowed: {', '.join(PARADIGMS)}")
        for el in self.elements:
            if el not in _Z:
                raise ValueError(f"unknown element {el!r} in TrainConfig.elements")
        object.__setattr__(self, "elements", tuple(self.elements))
        object.__setattr__(self, "extra_args", tuple(self.extra_args))

    @classmethod
    def from_profile(cls, profile, paradigm: str, train_file: str, run_dir: str, scale: str | None = None,
                     **overrides) -> "TrainConfig":
        """A config with the sizes and constants of a profile (``mo_transfer.profiles``) and its foundation."""
        from .profiles import get_profile

        p = get_profile(profile)
        values = {"device": p.device, "max_epochs": p.max_epochs, "patience": p.patience,
                  "batch_size": p.batch_size, "default_dtype": p.default_dtype, "lr": p.lr,
                  "weight_decay": p.weight_decay, "ema_decay": p.ema_decay, "energy_weight": p.energy_weight,
                  "forces_weight": p.forces_weight, "seed": p.seed,
                  "foundation": foundation_name(p.foundation, scale or p.model_scales[0], p.goh_mini_generation)}
        values.update(overrides)
        return cls(paradigm=paradigm, train_file=str(train_file), run_dir=str(run_dir), **values)

    @property
    def atomic_numbers(self) -> list[int]:
        return sorted(_Z[el] for el in self.elements)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def foundation_name(foundation: str, scale: str, generation: str = "v1") -> str:
    """Resolver name of a profile's foundation at a scale: ``goh-mini`` + ``small`` -> ``goh-mini-S`` (v1) or
    ``goh-mini-v2-S``; ``mace-mp-0`` + ``small`` -> ``small``."""
    from .foundation_models import SCALE_TO_GOH_MINI, goh_mini_name

    if foundation == "goh-mini":
        return goh_mini_name(SCALE_TO_GOH_MINI[scale], generation)
    if foundation == "mace-mp-0":
        return scale
    raise ValueError(f"unknown foundation family {foundation!r}; allowed: goh-mini, mace-mp-0")


# ---------------------------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------------------------

#: Architecture switches that mace's extract_config reports; we support the defaults only (MACE-MP-0 and ours).
_DEFAULT_SWITCHES = {"use_reduced_cg": False, "use_so3": False, "use_edge_irreps_first": False,
                     "use_agnostic_product": False, "use_last_readout_only": False, "use_embedding_readout": False,
                     "edge_irreps": None, "embedding_specs": None, "apply_cutoff": True}


def architecture_arguments(model) -> list[str]:
    """``mace_run_train`` flags that rebuild ``model``'s architecture (read with ``extract_config_mace_model``)."""
    from mace import modules
    from mace.tools.scripts_utils import extract_config_mace_model

    cfg = extract_config_mace_model(model)
    if "error" in cfg:
        raise ValueError(f"cannot read the architecture of a {type(model).__name__}: {cfg['error']}")
    odd = {k: cfg.get(k) for k, v in _DEFAULT_SWITCHES.items() if cfg.get(k, v) != v}
    if odd:
        raise NotImplementedError(f"foundation uses architecture options scratch cannot rebuild yet: {odd}")
    if cfg["readout_cls"].__name__ != "NonLinearReadoutBlock":
        raise NotImplementedError(f"foundation readout {cfg['readout_cls'].__name__} is not rebuilt by scratch yet")
    by_cls = {cls: name for name, cls in modules.interaction_classes.items()}
    gate = next((name for name, fn in modules.gate_dict.items() if fn is cfg["gate"]), None)
    if gate is None:
        raise NotImplementedError(f"unknown readout gate {cfg['gate']!r}")
    args = [
        "--model=ScaleShiftMACE",
        f"--interaction_first={by_cls[cfg['interaction_cls_first']]}",
        f"--interaction={by_cls[cfg['interaction_cls']]}",
        f"--hidden_irreps={cfg['hidden_irreps']}", f"--r_max={cfg['r_max']}",
        f"--num_interactions={cfg['num_interactions']}", f"--correlation={cfg['correlation']}",
        f"--max_ell={cfg['max_ell']}", f"--num_radial_basis={cfg['num_bessel']}",
        f"--num_cutoff_basis={int(cfg['num_polynomial_cutoff'])}", f"--radial_MLP={list(cfg['radial_MLP'])}",
        f"--MLP_irreps={cfg['MLP_irreps']}", f"--gate={gate}",
        f"--radial_type={cfg['radial_type']}", f"--distance_transform={cfg['distance_transform'] or 'None'}",
    ]
    if cfg["pair_repulsion"]:
        args.append("--pair_repulsion")
    return args


def common_arguments(config: TrainConfig, e0s: dict[int, float]) -> list[str]:
    """Flags shared by scratch and fine-tune: data, keys, element table, E0s, loss, optimiser, EMA, run folder."""
    run_dir = Path(config.run_dir).resolve()
    data = [f"--train_file={Path(config.train_file).resolve()}"]
    if config.valid_file:
        data.append(f"--valid_file={Path(config.valid_file).resolve()}")
    else:
        data.append(f"--valid_fraction={config.valid_fraction}")
    if config.test_file:
        data.append(f"--test_file={Path(config.test_file).resolve()}")
    return [
        f"--name={config.name}", f"--seed={config.seed}", f"--work_dir={run_dir}", *data,
        f"--energy_key={ENERGY_KEY}", f"--forces_key={FORCES_KEY}",
        f"--atomic_numbers={config.atomic_numbers}", f"--E0s={_e0s_literal(e0s)}",
        "--loss=weighted", f"--energy_weight={config.energy_weight}", f"--forces_weight={config.forces_weight}",
        "--optimizer=adam", f"--lr={config.lr}", f"--weight_decay={config.weight_decay}",
        "--ema", f"--ema_decay={config.ema_decay}",
        f"--batch_size={config.batch_size}", f"--valid_batch_size={config.batch_size}",
        f"--max_num_epochs={config.max_epochs}", f"--patience={config.patience}",
        f"--default_dtype={config.default_dtype}", f"--device={config.device}",
        "--error_table=PerAtomMAE", "--plot=False", "--save_cpu", "--restart_latest",
    ]


def build_arguments(config: TrainConfig) -> list[str]:
    """The exact ``mace_run_train`` arguments of a scratch or fine-tune run (zero-shot has no training)."""
    if config.paradigm == "zero-shot":
        raise ValueError("zero-shot has no training run: evaluate the foundation model with evaluate()")
    path = resolve_foundation(config.foundation)
    model = load_model(path)
    e0s = model_e0s(model, config.elements)  # the same dict for both paradigms: they differ only in initialisation
    args = common_arguments(config, e0s)
    if config.paradigm == "scratch":
        args += architecture_arguments(model)
    else:
        args += ["--model=ScaleShiftMACE", f"--foundation_model={path}", "--multiheads_finetuning=False",
                 "--foundation_model_elements=False", "--foundation_filter_elements=True"]
    return args + list(config.extra_args)


# ---------------------------------------------------------------------------------------------------------------
# Running mace_run_train
# ---------------------------------------------------------------------------------------------------------------


def mace_run_train_command() -> list[str]:
    """mace's training command of this Python environment (the ``mace_run_train`` entry point)."""
    exe = Path(sys.executable).parent / "mace_run_train"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "mace.cli.run_train"]


def results_file(work_dir: Path, name: str, seed: int) -> Path:
    """mace's per-epoch metrics file (JSON lines) of a run."""
    return Path(work_dir) / "results" / f"{name}_run-{seed}_train.txt"


def _stop(proc: subprocess.Popen, grace_s: float = 60.0) -> None:
    """Stop a child process: SIGTERM, then SIGKILL after ``grace_s``."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _run_once(args: list[str], work_dir: Path, log_path: Path, results: Path, patience: int | None,
              threads: int, poll_s: float) -> tuple[int, bool]:
    """One ``mace_run_train`` process; stops it when ``patience`` evaluations passed without improvement."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads))
    with open(log_path, "a") as log:
        log.write(f"\n# {time.strftime('%Y-%m-%dT%H:%M:%S')} mace_run_train {' '.join(args)}\n")
        log.flush()
        proc = subprocess.Popen(mace_run_train_command() + args, stdout=log, stderr=subprocess.STDOUT, env=env,
                                cwd=work_dir, preexec_fn=die_with_parent)  # never an orphan training on
        stopped = False
        while True:
            try:
                proc.wait(timeout=poll_s)
                break
            except subprocess.TimeoutExpired:
                if patience and epochs_since_best(read_results(results)) >= patience:
                    _stop(proc)
                    stopped = True
        return proc.returncode, stopped


def run_mace_train(args: list[str], work_dir: Path, name: str, seed: int, patience: int | None,
                   log_path: Path, threads: int = 1, poll_s: float = 2.0) -> dict:
    """Run ``mace_run_train`` to its final model, resuming from checkpoints (``--restart_latest`` must be in args).

    mace 0.3.16 does not stop on ``--patience`` outside distributed runs, so we stop the process ourselves after
    ``patience`` evaluations without improvement, then rerun with ``--max_num_epochs=0``: mace reloads its latest
    (validation-selected, EMA) checkpoint, skips training, and saves and evaluates the final model. Patience counts
    over the history across resumes, and the best checkpoint survives a resume (:mod:`mo_transfer.mace_history`):
    the final model is the one with the lowest validation loss of the whole run.
    """
    if "--restart_latest" not in args:
        raise ValueError("run_mace_train needs --restart_latest in the arguments (resume and finalisation)")
    work_dir = Path(work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    results = results_file(work_dir, name, seed)
    checkpoints, tag = work_dir / "checkpoints", f"{name}_run-{seed}"
    t0 = time.time()
    mace_history.preserve_checkpoint(checkpoints, tag, read_results(results))  # a resume may overwrite it
    rc, stopped = _run_once(args, work_dir, log_path, results, patience, threads, poll_s)
    restored = (rc == 0 or stopped) and mace_history.restore_best_checkpoint(checkpoints, tag, read_results(results))
    if stopped or restored:
        final = [a for a in args if not a.startswith("--max_num_epochs")] + ["--max_num_epochs=0"]
        rc, _ = _run_once(final, work_dir, log_path, results, None, threads, poll_s)
    if rc != 0:
        tail = "\n".join(Path(log_path).read_text().splitlines()[-25:])
        raise RuntimeError(f"mace_run_train failed with exit code {rc}; end of {log_path}:\n{tail}")
    model = work_dir / f"{name}.model"
    if not model.exists():
        raise RuntimeError(f"mace_run_train finished but wrote no model {model}")
    rows = read_results(results)
    summary = summarize_results(rows)
    summary.update({"stopped_early": stopped, "wall_s": round(time.time() - t0, 1), "model": str(model),
                    "delivered_epoch": mace_history.delivered_epoch(checkpoints, tag, rows),
                    "best_checkpoint_restored": restored})
    return summary


def config_hash(config: TrainConfig) -> str:
    """Hash of what a run computes: the config (minus its folder) and the bytes of its data and foundation."""
    d = config.to_dict()
    d.pop("run_dir")
    d.pop("threads")
    files = {k: file_sha256(v) for k, v in (("train", config.train_file), ("valid", config.valid_file),
                                             ("test", config.test_file)) if v}
    files["foundation"] = file_sha256(resolve_foundation(config.foundation))
    blob = json.dumps({"config": d, "files": files}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _check_run_dir(run_dir: Path, key: str) -> dict:
    """Status of a run folder; refuses a folder that holds a run of a different config."""
    status_path = run_dir / "status.json"
    if not status_path.exists():
        return {}
    status = json.loads(status_path.read_text())
    if status.get("config_hash") != key:
        raise ValueError(f"run folder {run_dir} holds a run of another config (hash {status.get('config_hash')} "
                         f"!= {key}); use a new run_dir or delete the old one")
    return status


def run_training(config: TrainConfig) -> dict:
    """Train one scratch or fine-tune model in ``config.run_dir``; resumable, and a finished run is not rerun.

    The run folder keeps ``config.json``, ``args.json``, ``train.log`` (mace's output), mace's own folders,
    the model ``<name>.model`` and ``metrics.json`` (training summary; validation and test errors of the final,
    validation-selected model, computed with :func:`evaluate`; the test set is used only here).
    """
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    key = config_hash(config)
    status = _check_run_dir(run_dir, key)
    metrics_path = run_dir / "metrics.json"
    if status.get("state") == "done" and metrics_path.exists():
        return json.loads(metrics_path.read_text())
    args = build_arguments(config)
    doc = {"config": config.to_dict(), "config_hash": key,
           "foundation_path": str(resolve_foundation(config.foundation)), **versions()}
    atomic_write_text(run_dir / "config.json", json.dumps(doc, indent=1, default=str))
    atomic_write_text(run_dir / "args.json", json.dumps(["mace_run_train", *args], indent=1))
    atomic_write_text(run_dir / "status.json", json.dumps({"state": "training", "config_hash": key}))
    summary = run_mace_train(args, run_dir, config.name, config.seed, config.patience, run_dir / "train.log",
                             config.threads)
    metrics = {"paradigm": config.paradigm, "foundation": config.foundation, "config_hash": key, "training": summary}
    for split, path in (("valid", config.valid_file), ("test", config.test_file)):
        if path:
            frames = read_frames(path)
            metrics[split] = error_metrics(frames, evaluate(summary["model"], frames, config.device))
    atomic_write_text(metrics_path, json.dumps(metrics, indent=1, default=str))
    atomic_write_text(run_dir / "status.json", json.dumps({"state": "done", "config_hash": key}))
    return metrics


def model_path(config: TrainConfig) -> Path:
    """The model a config's predictions come from: the foundation itself for zero-shot, else the trained model."""
    if config.paradigm == "zero-shot":
        return resolve_foundation(config.foundation)
    return Path(config.run_dir).resolve() / f"{config.name}.model"


def predict(config: TrainConfig, frames: list[Atoms]) -> Predictions:
    """Predictions of a paradigm's model (zero-shot: the foundation, no training) for ``frames``."""
    path = model_path(config)
    if not path.exists():
        raise FileNotFoundError(f"no model at {path}: run run_training(config) first")
    return evaluate(path, frames, config.device, config.default_dtype)


def train_job(job: Job, tmp_path: Path) -> dict:
    """Job function: ``inputs['config']`` is a TrainConfig as a dict; writes the trained model to ``tmp_path``."""
    config = TrainConfig(**job.inputs["config"])
    if config.paradigm == "zero-shot":
        raise JobFailed("zero-shot has no training; evaluate the foundation model instead")
    metrics = run_training(config)
    shutil.copyfile(metrics["training"]["model"], tmp_path)
    return {k: v for k, v in metrics.items() if k != "training"} | {
        "best_epoch": metrics["training"]["best_epoch"], "epochs": metrics["training"]["epochs"]}


def train_job_for(config: TrainConfig, output: str | os.PathLike | None = None, name: str | None = None) -> Job:
    """The executor job of a training run; the data's hashes are part of its key."""
    d = config.to_dict()
    d["elements"] = list(d["elements"])
    d["extra_args"] = list(d["extra_args"])
    files = {k: file_sha256(v) for k, v in (("train", config.train_file), ("valid", config.valid_file),
                                             ("test", config.test_file)) if v}
    out = Path(output) if output is not None else Path(config.run_dir) / "final.model"
    return Job("mo_transfer.training:train_job", name or Path(config.run_dir).name, {"config": d, "data_sha256": files},
               {}, str(out))


class SplitRun:
    """Mixin for a study's run dataclass with ``name``, ``split_dir`` and ``config``: its job, model and test file.

    Not a dataclass itself, so the studies' dataclasses keep their own fields and positional constructors.
    """

    name: str
    split_dir: str
    config: TrainConfig

    def job(self) -> Job:
        return train_job_for(self.config, name=self.name)

    def model_path(self) -> Path:
        return Path(self.job().output)

    @property
    def test_file(self) -> Path:
        return Path(self.split_dir) / "test.extxyz"


# ---------------------------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Predictions:
    """Predicted total energies (eV, one per frame) and forces (eV/A, one array per frame)."""

    energies_ev: np.ndarray
    forces_ev_per_ang: list[np.ndarray] = field(default_factory=list)

    @property
    def n_atoms(self) -> np.ndarray:
        return np.array([len(f) for f in self.forces_ev_per_ang])


def read_frames(path: str | os.PathLike) -> list[Atoms]:
    """Frames of an extxyz file (plain or gz)."""
    from .dft import read_frames as _read

    return _read(path)


def _check_elements(frames: list[Atoms], table: list[int], model_path) -> None:
    from ase.data import chemical_symbols

    unknown = sorted({int(z) for f in frames for z in f.numbers} - set(table))
    if unknown:
        raise ValueError(f"model {model_path} has no element {[chemical_symbols[z] for z in unknown]}; "
                         f"its table: {[chemical_symbols[z] for z in table]}")


def evaluate(model_path: str | os.PathLike, frames: list[Atoms], device: str = "cpu",
             default_dtype: str = "float64", batch_size: int = 16) -> Predictions:
    """Energies and forces of ``frames`` with a saved MACE model, in batches through mace's data pipeline.

    The model is loaded by mace's ``MACECalculator`` (dtype conversion as in any mace calculation); batching goes
    through ``mace.data`` exactly as ``mace_eval_configs`` does.
    """
    from mace import data
    from mace.calculators import MACECalculator
    from mace.tools import torch_geometric, torch_tools, utils

    calc = MACECalculator(model_paths=str(model_path), device=device, default_dtype=default_dtype)
    model = calc.models[0]
    table = [int(z) for z in model.atomic_numbers]
    _check_elements(frames, table, model_path)
    z_table = utils.AtomicNumberTable(table)
    heads = getattr(model, "heads", None)
    energies, forces = [], []
    with torch_tools.default_dtype(default_dtype):
        dataset = [data.AtomicData.from_config(data.config_from_atoms(a), z_table=z_table,
                                               cutoff=float(model.r_max), heads=heads) for a in frames]
        loader = torch_geometric.dataloader.DataLoader(dataset, batch_size=batch_size, shuffle=False,
                                                       drop_last=False)
        for batch in loader:
            batch = batch.to(device)
            out = model(batch.to_dict(), compute_stress=False, training=False)
            energies.append(out["energy"].detach().cpu().numpy())
            ptr = batch.ptr.cpu().numpy()
            f = out["forces"].detach().cpu().numpy()
            forces += [f[ptr[i]:ptr[i + 1]].copy() for i in range(len(ptr) - 1)]
    return Predictions(np.concatenate(energies) if energies else np.zeros(0), forces)


def error_metrics(frames: list[Atoms], pred: Predictions) -> dict:
    """The paper's errors (Section 2.2): per-atom energy MAE/RMSE (meV/atom), force MAE/RMSE (meV/A).

    Force errors use the Euclidean norm of each atom's error vector, as the paper's equations; mace's own RMSE_F
    is per Cartesian component (smaller by sqrt(3) for isotropic errors) and is given as ``force_rmse_component``.
    """
    n = np.array([len(f) for f in frames])
    de = (pred.energies_ev - np.array([float(f.info[ENERGY_KEY]) for f in frames])) / n
    df = np.concatenate([p - f.arrays[FORCES_KEY] for p, f in zip(pred.forces_ev_per_ang, frames)])
    norm = np.linalg.norm(df, axis=1)
    return {
        "n_frames": int(len(frames)), "n_atoms": int(n.sum()),
        "energy_mae_mev_per_atom": 1000 * float(np.mean(np.abs(de))),
        "energy_rmse_mev_per_atom": 1000 * float(np.sqrt(np.mean(de ** 2))),
        "force_mae_mev_per_ang": 1000 * float(np.mean(norm)),
        "force_rmse_mev_per_ang": 1000 * float(np.sqrt(np.mean(norm ** 2))),
        "force_rmse_component_mev_per_ang": 1000 * float(np.sqrt(np.mean(df ** 2))),
    }
