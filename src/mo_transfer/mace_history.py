"""A mace training run's history across restarts: its validation curve, patience and best checkpoint.

mace (0.3.16) appends each process's metrics to one results file and, on ``--restart_latest``, resumes from the
latest checkpoint with its best-loss memory reset. Two consequences this module corrects for:

* the file then holds evaluations the resumed run threw away (those after the checkpoint it loaded), and the
  resumed process labels its first epoch with the checkpoint's epoch again. :func:`validation_curve` rebuilds the
  history the delivered model actually went through: each resume keeps the rows up to the checkpoint it loaded,
  and epochs are renumbered in order (``raw_epoch`` keeps mace's label, which names the checkpoint file);
* the resumed process saves its first epoch as an "improvement" even when it is worse than the checkpoint it
  started from, and overwrites or deletes that checkpoint. :func:`preserve_checkpoint` copies the checkpoint aside
  before a resume, and :func:`restore_best_checkpoint` puts it back when nothing after it was better, so the model
  mace finalises is the best of the whole history, as validation early stopping promises.
"""

from __future__ import annotations

import filecmp
import json
import re
import shutil
from pathlib import Path

import numpy as np

from .jobs import atomic_write_text

#: Folder (inside mace's checkpoints folder, which mace ignores: it lists files only) for the checkpoint kept
#: aside across a resume, with its validation loss.
PRESERVED_DIR = "preserved"


def read_results(path: Path) -> list[dict]:
    """Rows of mace's metrics file; a partly written last line is skipped."""
    rows = []
    if Path(path).exists():
        for line in Path(path).read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def _processes(rows: list[dict]) -> list[list[dict]]:
    """The rows of each mace process in file order: each process begins with its initial evaluation (eval, no
    epoch); a labelled evaluation whose epoch does not advance also starts a new one (a file missing that row)."""
    out: list[list[dict]] = []
    last = None
    for r in rows:
        labelled = r.get("mode") == "eval" and r.get("epoch") is not None
        initial = r.get("mode") == "eval" and r.get("epoch") is None
        if not out or initial or (labelled and last is not None and int(r["epoch"]) <= last):
            out.append([])
            last = None
        out[-1].append(r)
        if labelled:
            last = int(r["epoch"])
    return out


def validation_curve(rows: list[dict]) -> list[dict]:
    """The validation evaluations of the run's effective history, one per training epoch, in order.

    Each row is mace's eval row with ``epoch`` renumbered 0, 1, 2, ... (epochs trained minus one), ``raw_epoch``
    mace's own label and ``train_time_s`` the training time of that epoch in its process. A resumed process keeps
    the history up to the checkpoint it loaded (the last row labelled with its first epoch), then appends.
    """
    history: list[dict] = []
    for proc in _processes(rows):
        evals = [r for r in proc if r.get("mode") == "eval" and r.get("epoch") is not None]
        if not evals:
            continue  # a finalisation pass, or a process killed in its first epoch: it trained nothing kept
        opt_time: dict[int, float] = {}
        for r in proc:
            if r.get("mode") == "opt" and r.get("epoch") is not None:
                opt_time[int(r["epoch"])] = opt_time.get(int(r["epoch"]), 0.0) + float(r.get("time", 0.0))
        start = int(evals[0]["epoch"])
        if history:
            resumed_from = [i for i, h in enumerate(history) if h["raw_epoch"] == start]
            if resumed_from:
                history = history[:resumed_from[-1] + 1]
        for r in evals:
            history.append({**r, "raw_epoch": int(r["epoch"]), "train_time_s": opt_time.get(int(r["epoch"]), 0.0)})
    return [{**h, "epoch": i} for i, h in enumerate(history)]


def resumed_epochs(rows: list[dict]) -> list[int]:
    """The epochs at which a later process resumed the run from a checkpoint (empty for a run trained in one
    process). A resumed run is not bit-identical to an uninterrupted one (data order and EMA restart), so a
    record says so."""
    procs = [[r for r in proc if r.get("mode") == "eval" and r.get("epoch") is not None] for proc in _processes(rows)]
    procs = [p for p in procs if p]
    return [int(p[0]["epoch"]) for p in procs[1:]]


def compute_seconds(rows: list[dict]) -> float:
    """Seconds spent training and validating over every process of the run, the epochs a resume discarded
    included: the cost of the run, which a resumed process's own wall time under-counts."""
    return float(sum(float(r.get("time", 0.0)) for r in rows if r.get("mode") in ("opt", "eval")))


def epochs_since_best(rows: list[dict]) -> int:
    """Validation evaluations since the lowest validation loss of the effective history (mace's patience rule:
    an equal loss is no improvement)."""
    best, since = np.inf, 0
    for r in validation_curve(rows):
        if r["loss"] < best:
            best, since = r["loss"], 0
        else:
            since += 1
    return since


def stop_epoch(losses: list[float], patience: int) -> tuple[int, int]:
    """(epoch at which ``patience`` stops a validation-loss curve, best epoch up to then), by the rule of
    :func:`epochs_since_best` (an equal loss is no improvement; epoch 0, before training, may be the best); the
    last epoch when patience never fires."""
    best, best_epoch = float("inf"), 0
    for epoch, loss in enumerate(losses):
        if loss < best:
            best, best_epoch = loss, epoch
        elif epoch - best_epoch >= patience:
            return epoch, best_epoch
    return len(losses) - 1, best_epoch


def learning_curve_rows(rows: list[dict]) -> list[dict]:
    """Validation loss and errors per epoch: epoch 0 is the evaluation before any training (the initial weights:
    random for scratch, the foundation's for fine-tune), epoch k the end of the k-th training epoch."""
    curve = [{**r, "epoch": r["epoch"] + 1} for r in validation_curve(rows)]
    first = next((r for r in rows if r.get("mode") in ("eval", "opt")), None)
    if first is not None and first.get("mode") == "eval" and first.get("epoch") is None:
        curve.insert(0, {**first, "epoch": 0})  # the first process's evaluation before training (later: resumes)
    return [{"epoch": r["epoch"], "loss": float(r["loss"]),
             "mae_e_mev_per_atom": 1000 * float(r.get("mae_e_per_atom", np.nan)),
             "mae_f_mev_per_ang": 1000 * float(r.get("mae_f", np.nan))} for r in curve]


def summarize_results(rows: list[dict]) -> dict:
    """Epochs run, best epoch and its validation errors, and seconds per epoch, over the effective history."""
    curve = validation_curve(rows)
    if not curve:
        return {"epochs": 0, "best_epoch": None, "curve": []}
    best = min(curve, key=lambda r: r["loss"])
    per_epoch = [r["train_time_s"] + float(r.get("time", 0.0)) for r in curve if r["train_time_s"] > 0]
    return {
        "epochs": len(curve),
        "best_epoch": best["epoch"],
        "best_valid_loss": best["loss"],
        "best_valid_mae_e_mev_per_atom": 1000 * best.get("mae_e_per_atom", np.nan),
        "best_valid_mae_f_mev_per_ang": 1000 * best.get("mae_f", np.nan),
        "seconds_per_epoch": float(np.median(per_epoch)) if per_epoch else None,
        "curve": [{"epoch": r["epoch"], "loss": r["loss"], "mae_e_per_atom_mev": 1000 * r.get("mae_e_per_atom", np.nan),
                   "mae_f_mev_per_ang": 1000 * r.get("mae_f", np.nan)} for r in curve],
    }


# ----------------------------------------------------------------------------------------------------------------
# The best checkpoint across resumes
# ----------------------------------------------------------------------------------------------------------------


def _checkpoints(directory: Path, tag: str) -> dict[int, Path]:
    """mace's (non-SWA) checkpoints of ``tag`` in ``directory`` by their epoch label."""
    pattern = re.compile(rf"^{re.escape(tag)}_epoch-(\d+)\.pt$")
    found = {}
    for p in Path(directory).glob(f"{tag}_epoch-*.pt"):
        m = pattern.match(p.name)
        if m:
            found[int(m.group(1))] = p
    return found


def _latest(directory: Path, tag: str, rows: list[dict]) -> tuple[Path, dict | None] | None:
    """mace's latest checkpoint and the history row whose model it holds (None when the row is unknown).

    The checkpoint kept aside is recognised by its bytes: after a restore it sits under a raw epoch label that a
    later process also used. Any other checkpoint is the last evaluation with its label (mace saves the model it
    has just evaluated, over any older file of that name)."""
    ckpts = _checkpoints(directory, tag)
    if not ckpts:
        return None
    path = ckpts[max(ckpts)]
    kept = _preserved(directory)
    if kept is not None and filecmp.cmp(path, Path(directory) / PRESERVED_DIR / kept["file"], shallow=False):
        return path, {"epoch": kept["epoch"], "loss": kept["loss"]}
    hits = [r for r in validation_curve(rows) if r["raw_epoch"] == max(ckpts)]
    return path, (hits[-1] if hits else None)


def _preserved(directory: Path) -> dict | None:
    meta = Path(directory) / PRESERVED_DIR / "preserved.json"
    return json.loads(meta.read_text()) if meta.exists() else None


def preserve_checkpoint(directory: Path, tag: str, rows: list[dict]) -> dict | None:
    """Before a resume: copy mace's latest checkpoint aside (with its epoch and validation loss) unless a better one
    is already kept; returns what is kept. A resumed mace may overwrite or delete that file."""
    kept = _preserved(directory)
    latest = _latest(directory, tag, rows)
    if latest is None or latest[1] is None or (kept is not None and kept["loss"] <= latest[1]["loss"]):
        return kept
    path, row = latest
    folder = Path(directory) / PRESERVED_DIR
    folder.mkdir(exist_ok=True)
    tmp = folder / (path.name + ".tmp")
    shutil.copyfile(path, tmp)
    for old in folder.glob("*.pt"):
        old.unlink()
    tmp.replace(folder / path.name)
    kept = {"file": path.name, "epoch": int(row["epoch"]), "loss": float(row["loss"])}
    atomic_write_text(folder / "preserved.json", json.dumps(kept))
    return kept


def restore_best_checkpoint(directory: Path, tag: str, rows: list[dict]) -> bool:
    """After training: when the checkpoint kept aside has a lower validation loss than mace's latest one, make it
    mace's latest again (the newer checkpoints are removed); returns whether it did."""
    kept = _preserved(directory)
    if kept is None:
        return False
    latest = _latest(directory, tag, rows)
    if latest is not None and (latest[1] is None or latest[1]["loss"] <= kept["loss"]):
        return False  # better, the kept one itself, or unknown (then mace's choice stands)
    for p in _checkpoints(directory, tag).values():
        p.unlink()
    shutil.copyfile(Path(directory) / PRESERVED_DIR / kept["file"], Path(directory) / kept["file"])
    return True


def delivered_epoch(directory: Path, tag: str, rows: list[dict]) -> int | None:
    """Effective epoch of the checkpoint mace finalises (its latest), or None when it is not known."""
    latest = _latest(directory, tag, rows)
    return None if latest is None or latest[1] is None else int(latest[1]["epoch"])
