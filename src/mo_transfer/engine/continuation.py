"""Raising a profile's epoch cap without training again what already finished.

A run's identity includes its epoch cap, so a higher cap names new runs. Two facts keep most of the old work:

* a run that validation early stopping ended before its cap is the same run under any cap it did not reach (the
  engine's learning-rate schedules do not depend on the cap: constant for CHGNet, mace's ReduceLROnPlateau for
  MACE), so its stored record and errors stand for the new spec (:func:`converged_predecessor`);
* a run that stopped at its cap can go on from its last checkpoint, when its folder kept one
  (:func:`checkpoint_predecessor`; the CHGNet backend keeps it, see ``chgnet_training``), instead of starting over.

Only the cap may differ: every other part of the identity, and the bytes of the training and validation files,
must be equal.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from .records import TrainSpec
from .run_store import RunStore, StoreMismatch, data_hashes


def without_cap(identity: dict) -> dict:
    """A run identity (``TrainSpec.identity()``) without its epoch cap."""
    out = json.loads(json.dumps(identity, default=str))
    out["settings"].pop("max_epochs", None)
    return out


def _stem(spec: TrainSpec) -> str:
    """A run folder's name without its content hash: backend, paradigm, scale and fold."""
    return Path(spec.run_dir).name.rsplit("-", 1)[0]


def _same_but_cap(identity: dict, spec: TrainSpec) -> bool:
    return without_cap(identity) == without_cap(spec.identity())


def converged_predecessor(store: RunStore, spec: TrainSpec) -> TrainSpec | None:
    """The stored run that stands for ``spec`` although its cap differs: the same identity but for the cap, the same
    data, and ended by early stopping at or before ``spec``'s cap. None when the store holds ``spec`` itself or no
    such run. The returned spec names that run's folder, so the cell reads its record and errors as they are."""
    if store.load(spec) is not None:
        return None
    for path in sorted(Path(store.folder).glob(f"{_stem(spec)}-*.json")):
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
        training = doc.get("training") or {}
        if (not isinstance(doc.get("identity"), dict) or not _same_but_cap(doc["identity"], spec)
                or not training.get("converged")
                or int(training.get("epochs_run", 10 ** 9)) > spec.settings.max_epochs):
            continue
        cap = int(doc["identity"]["settings"]["max_epochs"])
        other = dataclasses.replace(spec, settings=dataclasses.replace(spec.settings, max_epochs=cap),
                                    run_dir=str(Path(spec.run_dir).parent / path.stem))
        try:  # checks the rebuilt spec's identity and the data hashes, as for any stored run
            if store.load(other) is not None:
                return other
        except StoreMismatch:
            continue
    return None


def checkpoint_predecessor(spec: TrainSpec, spec_file: str, checkpoint_file: str) -> Path | None:
    """A sibling run folder of ``spec`` with the same identity but a lower cap whose checkpoint ``spec`` can go on
    from (the latest such), or None. ``spec_file`` is the backend's spec file in a run folder, holding
    ``{"spec": TrainSpec.to_dict()}``."""
    best: tuple[int, Path] | None = None
    for folder in Path(spec.run_dir).parent.glob(f"{_stem(spec)}-*"):
        if folder == Path(spec.run_dir) or not (folder / checkpoint_file).is_file():
            continue
        try:
            other = TrainSpec.from_dict(json.loads((folder / spec_file).read_text())["spec"])
        except (OSError, KeyError, TypeError, ValueError):
            continue
        cap = other.settings.max_epochs
        if (cap < spec.settings.max_epochs and _same_but_cap(other.identity(), spec)
                and data_hashes(other) == data_hashes(spec) and (best is None or cap > best[0])):
            best = (cap, folder)
    return best[1] if best else None
