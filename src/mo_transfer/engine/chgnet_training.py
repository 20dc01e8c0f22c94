"""Training for the CHGNet backend: chgnet's own ``Trainer`` driven epoch by epoch, so that validation early
stopping (patience on the validation loss) fires, the best-validation weights are kept and a run resumes.

Why epoch by epoch: ``chgnet.trainer.Trainer.train`` (0.4.2) always runs all its epochs, keeps the best model by
validation ENERGY MAE only, and writes checkpoints into a dated folder of the working directory. Here each epoch
calls the trainer's own ``_train`` / ``_validate`` (chgnet's loss, optimiser and scheduler unchanged) and this
module does the stopping, the checkpointing and the record. A run stopped by its epoch cap keeps its last
checkpoint, and the same run under a higher cap goes on from it (:mod:`mo_transfer.engine.continuation`).

Reference energies (CHGNet's ``AtomRef`` "composition model", per element, eV/atom of that element): refit on the
TRAINING file only (``e0_rule="estimated"``: one least-squares offset per element present in it; ``"average"``:
one common offset), or the foundation's frozen AtomRef (``"foundation"``). chgnet's ``AtomRef`` is frozen during
training either way (``train_composition_model=False``, chgnet's default).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from ..jobs import atomic_write_text
from .chgnet_backend import COMPUTE_DTYPE, check_dtype, check_elements, load_model, require_chgnet, save_model
from .chgnet_data import GraphSet, apply_reference_rule, atomref_ev, io_sink, read_labelled
from .continuation import checkpoint_predecessor
from .execution import device_description, execution_device
from .records import TrainRecord, TrainSettings, TrainSpec

if TYPE_CHECKING:
    from chgnet.model import CHGNet

SPEC_FILE = "spec.json"
RECORD_FILE = "record.json"
CHECKPOINT_FILE = "checkpoint.pth.tar"
LOG_FILE = "train.log"

#: Flush float32 denormals to zero while training (x86 CPUs; torch returns False where it cannot). Fine-tuning
#: CHGNet 0.3.0 on one core spends about half of each step on denormal arithmetic: 1.9-2.3 s per step of 5
#: frames without, 1.1 s with, the same as a random-init model (benchmarks/chgnet_denormals.py). Values below
#: 1.2e-38 change no loss or MAE at the printed precision; like the thread count it is not in a run's identity.
FLUSH_DENORMALS = True

#: chgnet Trainer arguments fixed by this backend (the rest come from TrainSettings). The learning rate is kept
#: constant (ExponentialLR with gamma 1): chgnet's default CosLR anneals over ``10 * epochs`` steps, which would tie
#: the schedule to the epoch cap, and early stopping should not depend on the cap.
TRAINER_FIXED: dict = {"targets": "ef", "optimizer": "Adam", "criterion": "MSE", "scheduler": "ExponentialLR",
                       "scheduler_params": {"gamma": 1.0}}

#: What differs from the project's MACE runs (mace-torch 0.3.16 defaults as ``training.py`` passes them).
DIFFERENCES_FROM_MACE: dict[str, str] = {
    "loss_form": "chgnet CombinedLoss, criterion MSE: energy_loss_ratio * MSE(energy per atom, eV/atom) + "
                 "force_loss_ratio * MSE(force components, eV/A); the same form as mace's 'weighted' loss "
                 "(per-atom energy MSE + force-component MSE), with the same weights",
    "ema": "none: chgnet's Trainer has no EMA (MACE runs: EMA decay 0.99)",
    "optimizer": "torch Adam (amsgrad off), weight decay as L2 on every trainable parameter (mace: Adam with "
                 "amsgrad on, weight decay only on interaction linear and product weights)",
    "scheduler": "constant learning rate (chgnet ExponentialLR with gamma 1.0; mace: ReduceLROnPlateau, "
                 "factor 0.8, patience 50, i.e. constant over runs this short)",
    "gradient_clipping": "none (chgnet's Trainer; mace clips at 10.0)",
    "dtype": f"{COMPUTE_DTYPE} (chgnet's graph converter is float32 only; MACE runs use the profile's dtype: "
             "float32 in the cpu profile, float64 elsewhere)",
    "reference_energies": "CHGNet AtomRef (composition model, eV/atom per element, frozen in training)",
    "metrics": "validation MAEs are chgnet's: energy per atom averaged over frames, force MAE over components "
               "(as mace's MAE_F)",
    "early_stopping": "patience on the validation loss, strict improvement, epoch 0 = before training; "
                      "best-validation weights kept (mace: same rule, enforced by the project)",
}


def initial_model(spec: TrainSpec) -> tuple["CHGNet", list[Atoms], list[Atoms], dict]:
    """The model a run starts from (foundation weights or seeded random init, AtomRef set from the TRAINING
    file only) and the training and validation frames."""
    import torch

    require_chgnet()
    train_frames, valid_frames = read_labelled(spec.train_file), read_labelled(spec.valid_file)
    check_elements(train_frames, spec.train_file)
    check_elements(valid_frames, spec.valid_file)
    check_elements([Atoms(list(spec.elements))], "spec.elements")
    device = execution_device(spec.settings.device)
    base = load_model(spec.foundation, device)
    if spec.paradigm == "fine-tune":
        net = base
    else:
        from chgnet.model import CHGNet

        args = {k: v for k, v in base.model_args.items() if k != "version"}
        torch.manual_seed(spec.settings.seed)
        with contextlib.redirect_stdout(io_sink()):
            net = CHGNet(**args)
        net.composition_model.load_state_dict(base.composition_model.state_dict())
        net = net.to(device)
    refit = apply_reference_rule(net, train_frames, spec.settings.e0_rule, spec.paradigm)
    return net, train_frames, valid_frames, refit


# ------------------------------------------------------------------------------------------------------------
# Run folder
# ------------------------------------------------------------------------------------------------------------


def spec_hash(spec: TrainSpec) -> str:
    """Hash of what determines a run's result (the spec without its folder and thread count)."""
    return hashlib.sha256(json.dumps(spec.identity(), sort_keys=True).encode()).hexdigest()[:16]


def claim_run_dir(spec: TrainSpec) -> Path:
    """Create the run folder or check it is this spec's; a folder of another spec is refused."""
    run_dir = Path(spec.run_dir)
    spec_file = run_dir / SPEC_FILE
    key = spec_hash(spec)
    if spec_file.is_file():
        held = json.loads(spec_file.read_text()).get("spec_hash")
        if held != key:
            raise ValueError(f"{run_dir} holds a run of another spec (hash {held}, this spec {key}); "
                             "use another run_dir or delete that folder")
    else:
        atomic_write_text(spec_file, json.dumps({"spec_hash": key, "spec": spec.to_dict()}, indent=1))
    return run_dir


class LossTap:
    """Wraps chgnet's CombinedLoss and keeps the batch-size weighted mean of its ``loss`` (chgnet's ``_validate``
    returns only MAEs; this gives the validation loss early stopping watches)."""

    def __init__(self, criterion) -> None:
        self.criterion = criterion
        self.reset()

    def reset(self) -> None:
        self.total, self.count = 0.0, 0

    def __call__(self, targets, prediction):
        out = self.criterion(targets, prediction)
        n = int(targets["e"].shape[0])
        self.total += float(out["loss"].detach().cpu().item()) * n
        self.count += n
        return out

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan


def make_trainer(net: "CHGNet", s: TrainSettings):
    """chgnet's own Trainer with the protocol's lr, weight decay and equal energy/force loss weights."""
    from chgnet.trainer import Trainer

    with contextlib.redirect_stdout(io_sink()):
        trainer = Trainer(model=net, energy_loss_ratio=s.energy_weight, force_loss_ratio=s.forces_weight,
                          learning_rate=s.lr, weight_decay=s.weight_decay, epochs=s.max_epochs,
                          torch_seed=s.seed, use_device=execution_device(s.device), print_freq=10 ** 9,
                          **copy.deepcopy(TRAINER_FIXED))
    trainer.criterion = LossTap(trainer.criterion)
    return trainer


def curve_row(epoch: int, loss: float, mae: dict, **more) -> dict:
    """One validation-curve entry in the engine's units (meV/atom, meV/A)."""
    return {"epoch": epoch, "loss": loss, "energy_mae_mev_per_atom": 1000.0 * mae["e"],
            "force_mae_mev_per_ang": 1000.0 * mae["f"], **more}


# ------------------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------------------


def _nan(x: float) -> bool:
    return not math.isfinite(x)


def train_run(spec: TrainSpec, epoch_budget: int | None = None) -> TrainRecord:
    """Train ``spec`` to validation early stopping or ``max_epochs``; reuse a finished run of the same spec,
    resume an unfinished one from its checkpoint. ``epoch_budget`` caps the epochs trained in this call."""
    import torch
    from chgnet.data.dataset import collate_graphs
    from torch.utils.data import DataLoader

    if spec.backend != "chgnet":
        raise ValueError(f"the CHGNet backend got a spec for backend {spec.backend!r}")
    s = spec.settings
    check_dtype(s.default_dtype)
    if s.ema_decay is not None:
        raise ValueError(f"chgnet's Trainer has no EMA: set ema_decay=None (got {s.ema_decay})")
    run_dir = claim_run_dir(spec)
    record_file = run_dir / RECORD_FILE
    if record_file.is_file():
        return TrainRecord(**json.loads(record_file.read_text()))

    t_start = time.perf_counter()
    torch.set_num_threads(max(1, int(spec.threads)))
    flushed = torch.set_flush_denormal(FLUSH_DENORMALS)
    net, train_frames, valid_frames, refit = initial_model(spec)
    train_set = GraphSet(net, train_frames, spec.train_file)
    valid_set = GraphSet(net, valid_frames, spec.valid_file)
    generator = torch.Generator().manual_seed(s.seed)
    train_loader = DataLoader(train_set, batch_size=s.batch_size, shuffle=True, collate_fn=collate_graphs,
                              generator=generator)
    valid_loader = DataLoader(valid_set, batch_size=s.batch_size, shuffle=False, collate_fn=collate_graphs)
    trainer = make_trainer(net, s)
    tap: LossTap = trainer.criterion
    for p in net.composition_model.parameters():  # chgnet's train_composition_model=False
        p.requires_grad = False

    ckpt_file = run_dir / CHECKPOINT_FILE
    continued_from = None
    if not ckpt_file.is_file():  # the same run under a lower cap may have left its last state
        seed_dir = checkpoint_predecessor(spec, SPEC_FILE, CHECKPOINT_FILE)
        if seed_dir is not None:
            tmp = ckpt_file.with_name(f".{ckpt_file.name}.tmp")
            shutil.copyfile(seed_dir / CHECKPOINT_FILE, tmp)
            tmp.replace(ckpt_file)
            continued_from = seed_dir.name
    log = open(run_dir / LOG_FILE, "a")
    try:
        with contextlib.redirect_stdout(log):
            if ckpt_file.is_file():
                ck = torch.load(ckpt_file, map_location="cpu", weights_only=False)
                net.load_state_dict(ck["model"])
                trainer.optimizer.load_state_dict(ck["optimizer"])
                trainer.scheduler.load_state_dict(ck["scheduler"])
                generator.set_state(ck["generator"])
                curve, best_state, state = ck["curve"], ck["best_state"], ck["state"]
                if state["stopped"] == "max_epochs" and state["epoch"] < s.max_epochs:
                    state["stopped"] = None  # stopped by a lower cap: this spec's cap lets it go on
                continued_from = continued_from or state.get("continued_from")
                state["continued_from"] = continued_from
                print(f"# resumed after epoch {state['epoch']}" + (f" of {continued_from}" if continued_from else ""))
            else:
                tap.reset()
                mae0 = trainer._validate(valid_loader)
                curve = [curve_row(0, tap.mean, mae0, seconds=0.0, cpu_seconds=0.0)]
                best_state = copy.deepcopy(net.state_dict())
                state = {"epoch": 0, "best_epoch": 0, "best_loss": tap.mean, "since_best": 0, "wall_s": 0.0,
                         "stopped": None}
            wall_before = state["wall_s"]  # earlier sessions of this run
            done_now = 0
            while state["stopped"] is None and state["epoch"] < s.max_epochs:
                if epoch_budget is not None and done_now >= epoch_budget:
                    break
                epoch = state["epoch"] + 1
                t0, c0 = time.perf_counter(), time.process_time()
                tap.reset()
                train_mae = trainer._train(train_loader, epoch)
                train_loss = tap.mean
                tap.reset()
                val_mae = trainer._validate(valid_loader)
                loss = tap.mean
                lr = float(trainer.optimizer.param_groups[0]["lr"])
                curve.append(curve_row(epoch, loss, val_mae, seconds=time.perf_counter() - t0,
                                       cpu_seconds=time.process_time() - c0, lr=lr,
                                       train_loss=train_loss,
                                       train_energy_mae_mev_per_atom=1000.0 * train_mae["e"],
                                       train_force_mae_mev_per_ang=1000.0 * train_mae["f"]))
                state["epoch"], done_now = epoch, done_now + 1
                if _nan(loss) or _nan(train_loss):
                    state["stopped"] = "nan"
                elif loss < state["best_loss"]:
                    state.update(best_epoch=epoch, best_loss=loss, since_best=0)
                    best_state = copy.deepcopy(net.state_dict())
                else:
                    state["since_best"] += 1
                    if state["since_best"] >= s.patience:
                        state["stopped"] = "patience"
                if state["stopped"] is None and state["epoch"] >= s.max_epochs:
                    state["stopped"] = "max_epochs"
                state["wall_s"] = wall_before + time.perf_counter() - t_start
                tmp = ckpt_file.with_name(f".{ckpt_file.name}.tmp")
                torch.save({"model": net.state_dict(), "optimizer": trainer.optimizer.state_dict(),
                            "scheduler": trainer.scheduler.state_dict(), "generator": generator.get_state(),
                            "curve": curve, "best_state": best_state, "state": state}, tmp)
                tmp.replace(ckpt_file)
    finally:
        log.close()

    wall_s = wall_before + time.perf_counter() - t_start
    seconds = [r["seconds"] for r in curve if r["epoch"] > 0]
    net.load_state_dict(best_state)
    finished = state["stopped"] is not None
    model_path = run_dir / f"{spec.name}.pth.tar"
    if finished:
        save_model(net, model_path, {"spec_hash": spec_hash(spec), "best_epoch": state["best_epoch"]})
    symbols = sorted(set(spec.elements) | {s_ for a in train_frames for s_ in a.get_chemical_symbols()},
                     key=chemical_symbols.index)
    record = TrainRecord(
        model_path=str(model_path), epochs_run=state["epoch"], best_epoch=state["best_epoch"],
        max_epochs=s.max_epochs, patience=s.patience, converged=state["stopped"] == "patience",
        seconds_per_epoch=float(np.mean(seconds)) if seconds else None, wall_s=float(wall_s), curve=curve,
        output_scale=None, output_shift=None, e0s_ev=atomref_ev(net, symbols),
        extra={"finished": finished, "stopped_by": state["stopped"], "spec_hash": spec_hash(spec),
               "best_valid_loss": state["best_loss"], "n_train": len(train_set), "n_valid": len(valid_set),
               "n_params": int(sum(p.numel() for p in net.parameters())), "batch_size": s.batch_size,
               "energy_loss_ratio": s.energy_weight, "force_loss_ratio": s.forces_weight,
               "train_composition_model": False, "reference_energy_refit": refit,
               "e0s_note": "e0s_ev are CHGNet AtomRef weights: eV per atom of each element",
               "output_normalisation": "none (CHGNet has no scale/shift; AtomRef is its only offset): "
                                       f"settings.normalisation={s.normalisation!r} does not apply",
               "trainer": {k: v for k, v in TRAINER_FIXED.items()},
               "chgnet_version": _chgnet_version(), "differences_from_mace": DIFFERENCES_FROM_MACE,
               "trained_on": device_description(execution_device(s.device)),
               "flush_denormal": bool(flushed), "continued_from": continued_from})
    if finished:
        atomic_write_text(record_file, json.dumps(record.to_dict(), indent=1))
        if state["stopped"] != "max_epochs":  # a capped run keeps its last state: a higher cap can continue it
            ckpt_file.unlink(missing_ok=True)
    return record


def _chgnet_version() -> str:
    from importlib.metadata import version

    return version("chgnet")
