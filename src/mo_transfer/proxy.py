"""Unseen elements (Fang et al. 2026, Section 3.3): proxy map, DIPI, and element-table extension.

A fine-tuned MACE model knows only the elements of its table (Mo and the 11 dopants). The paper handles the
9 unseen elements in two steps:

* **DIPI** (direct inference with proxy initialization): each unseen element borrows the element-dependent
  parameters of a "proxy" seen element (close atomic number, period or group, e.g. Hf -> Zr) and the model
  predicts without any training. :func:`dipi_predict`.
* **Refine-tuning**: the proxy-initialised model is trained further on a little new-element data. For that the
  model's element table must really contain the new elements: :func:`extend_element_table` builds a model whose
  table gains them, every element-dependent tensor of a new element copied from its proxy, and
  :func:`save_extended_model` writes it for ``mace_run_train --foundation_model=<it>
  --foundation_model_elements=True``.

The extension uses mace's own pieces (``extract_config_mace_model``, ``load_foundations_elements``,
``AtomicNumberTable``), then checks every tensor with an element axis against its source rows
(:func:`check_extension`), so an architecture with an element-dependent tensor we do not know fails loudly.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers as _Z
from ase.data import chemical_symbols

from . import structures

#: Elements a proxy may name: the host and the 11 dopants of the training data (the fine-tuned model's table).
SEEN: tuple[str, ...] = (structures.HOST,) + structures.DOPANTS

#: Default proxies of the 9 unseen elements. Rule (:func:`rule_proxy`): a seen element of the same group if there
#: is one (nearest period first), otherwise the seen element of nearest atomic number. The paper names only
#: Hf -> Zr; the others are ours.
DEFAULT_PROXIES: dict[str, str] = {
    "Al": "Ti", "Zn": "Fe", "Cu": "Fe", "Ag": "Mo", "Au": "Re", "Hg": "Re", "Co": "Fe", "Ni": "Fe", "Hf": "Zr",
}
DEFAULT_REASONS: dict[str, str] = {
    "Hf": "same group 4 as Zr, one period down; the lanthanide contraction makes Hf and Zr near twins",
    "Co": "period-4 neighbour of Fe (Z 27 vs 26), magnetic like Fe",
    "Ni": "period 4, nearest seen Z is Fe (28 vs 26), magnetic like Fe",
    "Cu": "period 4, group 11 has no seen element; nearest seen Z is Fe (29 vs 26)",
    "Zn": "period 4, group 12 has no seen element; nearest seen Z is Fe (30 vs 26)",
    "Ag": "period 5, group 11 has no seen element; nearest seen Z is the host Mo (47 vs 42): Ag looks like host",
    "Au": "period 6, group 11 has no seen element; nearest seen Z is Re (79 vs 75)",
    "Hg": "period 6, group 12 has no seen element; nearest seen Z is Re (80 vs 75)",
    "Al": "period 3 has no seen element (sp metal); nearest seen Z is Ti (13 vs 22)",
}


class ProxyError(ValueError):
    """A proxy map that cannot serve a model or a set of structures; the message says which element and why."""


def _group_period(z: int) -> tuple[int, int]:
    """IUPAC group (1-18) and period of a main-group or transition element (no lanthanides/actinides needed here)."""
    starts = [1, 3, 11, 19, 37, 55, 87]
    period = max(i + 1 for i, s in enumerate(starts) if z >= s)
    offset = z - starts[period - 1]
    if period == 1:
        return (1 if z == 1 else 18), 1
    if period <= 3:
        return (offset + 1 if offset < 2 else offset + 11), period
    if period >= 6:  # skip the 14 f-block elements after La / Ac
        if 2 < offset < 17:
            raise ValueError(f"no group for f-block element Z={z}")
        offset = offset - 14 if offset >= 17 else offset
    return offset + 1, period


def rule_proxy(element: str, seen: Sequence[str] = SEEN) -> str:
    """The default rule: a seen element of the same group (nearest period), else the nearest atomic number."""
    z = _Z[element]
    group, period = _group_period(z)
    same_group = [s for s in seen if _group_period(_Z[s])[0] == group]
    if same_group:
        return min(same_group, key=lambda s: (abs(_group_period(_Z[s])[1] - period), _Z[s]))
    return min(seen, key=lambda s: (abs(_Z[s] - z), _Z[s]))


@dataclass(frozen=True)
class ProxyMap:
    """Unseen element -> seen proxy element (chemical symbols), with a one-line reason per entry."""

    proxies: Mapping[str, str]
    reasons: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for new, old in self.proxies.items():
            for el in (new, old):
                if el not in _Z or el == "X":
                    raise ProxyError(f"unknown element symbol {el!r} in proxy map")
            if new == old:
                raise ProxyError(f"{new} cannot be its own proxy")
            if old in self.proxies:
                raise ProxyError(f"proxy of {new} is {old}, which itself has a proxy: chains are not allowed")
        object.__setattr__(self, "proxies", dict(self.proxies))
        object.__setattr__(self, "reasons", dict(self.reasons))

    @classmethod
    def default(cls, overrides: Mapping[str, str] | None = None) -> "ProxyMap":
        """The default map of the 9 unseen elements; ``overrides`` replace or add entries (reason 'user choice')."""
        proxies = dict(DEFAULT_PROXIES)
        reasons = dict(DEFAULT_REASONS)
        for new, old in (overrides or {}).items():
            proxies[new] = old
            reasons[new] = "user choice"
        return cls(proxies, reasons)

    def proxy_of(self, element: str) -> str:
        """The proxy of ``element``; raises :class:`ProxyError` when it has none."""
        if element not in self.proxies:
            raise ProxyError(f"unseen element {element} has no proxy; the map covers {sorted(self.proxies)}")
        return self.proxies[element]

    def z_map(self, elements: Iterable[str] | None = None) -> dict[int, int]:
        """Atomic-number map new Z -> proxy Z of ``elements`` (default: every entry)."""
        elements = self.proxies if elements is None else elements
        return {_Z[el]: _Z[self.proxy_of(el)] for el in elements}

    def for_model(self, table: Sequence[str], elements: Iterable[str]) -> dict[str, str]:
        """The proxies of the ``elements`` missing from a model's ``table``, checked against that table.

        Raises :class:`ProxyError` when a missing element has no proxy or its proxy is not in the table.
        """
        missing = sorted({el for el in elements if el not in table}, key=lambda el: _Z[el])
        out = {}
        for el in missing:
            proxy = self.proxy_of(el)
            if proxy not in table:
                raise ProxyError(f"proxy {proxy} of {el} is not in the model's element table {list(table)}")
            out[el] = proxy
        return out

    def table(self) -> list[dict]:
        """Rows (element, Z, proxy, proxy Z, reason) for a notebook table."""
        return [{"element": el, "Z": _Z[el], "proxy": p, "proxy_Z": _Z[p], "reason": self.reasons.get(el, "")}
                for el, p in sorted(self.proxies.items(), key=lambda kv: _Z[kv[0]])]


# ---------------------------------------------------------------------------------------------------------------
# Element-table extension
# ---------------------------------------------------------------------------------------------------------------

#: Tensors with an element axis in mace 0.3.16 ScaleShiftMACE models, found by comparing the state_dict shapes of
#: 3- and 4-element models (max_L 0/1/2), and whether mace rescales them by sqrt(n_new / n_old) because e3nn
#: normalises these weights by their fan-in, which includes the element count.
ELEMENT_TENSORS: dict[str, bool] = {
    r"atomic_numbers": False,
    r"atomic_energies_fn\.atomic_energies": False,
    r"node_embedding\.linear\.weight": True,
    r"interactions\.\d+\.skip_tp\.weight": True,
    r"interactions\.\d+\.(source|target)_embedding\.weight": True,
    r"products\.\d+\.symmetric_contractions\.contractions\.\d+\.weights_max": False,
    r"products\.\d+\.symmetric_contractions\.contractions\.\d+\.weights\.\d+": False,
}


def element_tensor_pattern(key: str) -> str:
    """The :data:`ELEMENT_TENSORS` pattern of a state_dict key; ``NotImplementedError`` for an unknown one."""
    for pattern in ELEMENT_TENSORS:
        if re.fullmatch(pattern, key):
            return pattern
    raise NotImplementedError(f"state_dict tensor {key!r} has an element axis of unknown layout; "
                              f"extend proxy.ELEMENT_TENSORS and proxy._element_rows for it")


def element_dependent_keys(old_state: Mapping, new_state: Mapping) -> list[str]:
    """Keys whose shapes differ between two models of the same architecture and different element counts."""
    if set(old_state) != set(new_state):
        raise ValueError(f"state_dict keys differ: {sorted(set(old_state) ^ set(new_state))}")
    return [k for k in old_state if tuple(old_state[k].shape) != tuple(new_state[k].shape)]


def _submodule(model, key: str):
    """The module that owns state_dict entry ``key``."""
    return model.get_submodule(key.rsplit(".", 1)[0])


def _element_rows(model, key: str, tensor, n_elements: int):
    """``tensor`` rearranged to ``[n_elements, -1]``: one row of all parameters belonging to each element."""
    import torch

    pattern = element_tensor_pattern(key)
    if pattern == r"atomic_numbers":
        return tensor.reshape(n_elements, 1)
    if pattern == r"atomic_energies_fn\.atomic_energies":  # [n] or [heads, n]: element axis last
        return tensor.reshape(-1, n_elements).T
    if pattern.startswith(r"products"):  # [n, ...]: element axis first
        return tensor.reshape(n_elements, -1)
    if pattern.endswith(r"skip_tp\.weight"):
        # e3nn FullyConnectedTensorProduct(node_feats, node_attrs = n x 0e): per path a (mul1, n, mul_out) block
        tp = _submodule(model, key)
        if str(tp.irreps_in2) != f"{n_elements}x0e":
            raise NotImplementedError(f"{key}: second input {tp.irreps_in2} is not the one-hot element attributes")
        blocks, start = [], 0
        for ins in tp.instructions:
            if not ins.has_weight:
                continue
            size = int(np.prod(ins.path_shape))
            block = tensor[start:start + size].reshape(ins.path_shape)
            blocks.append(block.movedim(1, 0).reshape(n_elements, -1))
            start += size
        if start != tensor.numel():
            raise NotImplementedError(f"{key}: weight layout does not match the tensor product's paths")
        return torch.cat(blocks, dim=1)
    return tensor.reshape(n_elements, -1)  # node / source / target embeddings: element-major


def check_extension(old_model, new_model, source_index: Sequence[int], rtol: float | None = None) -> list[str]:
    """Check that every element-dependent tensor of ``new_model`` holds, for element i, the rows of element
    ``source_index[i]`` of ``old_model`` (times mace's fan-in rescaling), and every other tensor is unchanged.

    ``atomic_numbers`` and the atomic energies are skipped (set by the caller). Returns the checked keys; raises
    ``AssertionError`` on a mismatch and ``NotImplementedError`` for a tensor of unknown layout.
    """
    import torch

    old_state, new_state = old_model.state_dict(), new_model.state_dict()
    n_old, n_new = len(old_model.atomic_numbers), len(new_model.atomic_numbers)
    if rtol is None:
        rtol = 1e-12 if next(old_model.parameters()).dtype == torch.float64 else 1e-6
    dependent = element_dependent_keys(old_state, new_state)
    for key in old_state:
        if key not in dependent and not torch.equal(old_state[key], new_state[key]):
            raise AssertionError(f"element-independent tensor {key} changed in the extension")
    index = torch.as_tensor(list(source_index))
    for key in dependent:
        pattern = element_tensor_pattern(key)
        if pattern in (r"atomic_numbers", r"atomic_energies_fn\.atomic_energies"):
            continue
        factor = (n_new / n_old) ** 0.5 if ELEMENT_TENSORS[pattern] else 1.0
        expected = _element_rows(old_model, key, old_state[key], n_old)[index] * factor
        got = _element_rows(new_model, key, new_state[key], n_new)
        if not torch.allclose(got, expected, rtol=rtol, atol=0.0):
            raise AssertionError(f"{key}: rows of the extended model are not those of their source elements")
    return dependent


@dataclass(frozen=True)
class Extension:
    """What an extension did: the new table, each entry's source element, and the element-dependent tensors."""

    elements: tuple[str, ...]
    sources: tuple[str, ...]
    added: dict[str, str]
    element_tensors: tuple[str, ...]


def extend_element_table(model, added: Mapping[str, str], e0s_ev: Mapping[str, float] | None = None):
    """A copy of MACE ``model`` whose element table also holds ``added`` (new element -> proxy in the table).

    Every element-dependent parameter of a new element is its proxy's; the old elements keep theirs, so
    predictions on old-element structures are unchanged. Atomic reference energies come from the proxy too,
    unless ``e0s_ev`` gives a new element's own (eV). Returns ``(new_model, Extension)``.

    Caveat: a model with ZBL pair repulsion would use the new element's true Z there (mace indexes it through
    ``atomic_numbers``), so DIPI would then differ from proxy substitution; our models have none.
    """
    import torch
    from mace.tools import torch_tools
    from mace.tools.finetuning_utils import load_foundations_elements
    from mace.tools.scripts_utils import extract_config_mace_model
    from mace.tools.utils import AtomicNumberTable

    old_zs = [int(z) for z in model.atomic_numbers]
    table = [chemical_symbols[z] for z in old_zs]
    for new, proxy in added.items():
        if new in table:
            raise ProxyError(f"{new} is already in the model's element table; it cannot be added")
        if proxy not in table:
            raise ProxyError(f"proxy {proxy} of {new} is not in the model's element table {table}")
    unknown_e0 = set(e0s_ev or {}) - set(added)
    if unknown_e0:
        raise ProxyError(f"E0 given for {sorted(unknown_e0)}, which are not being added")
    new_zs = sorted(set(old_zs) | {_Z[el] for el in added})
    source_zs = [_Z[added[chemical_symbols[z]]] if chemical_symbols[z] in added else z for z in new_zs]
    source_index = [old_zs.index(z) for z in source_zs]

    config = extract_config_mace_model(model)
    if "error" in config:
        raise NotImplementedError(f"cannot extend a {type(model).__name__}: {config['error']}")
    e0 = np.array(config["atomic_energies"], dtype=float)[..., source_index]
    for el, value in (e0s_ev or {}).items():
        e0[..., new_zs.index(_Z[el])] = float(value)
    config.update(atomic_energies=e0, atomic_numbers=new_zs, num_elements=len(new_zs))
    dtype = next(model.parameters()).dtype
    with torch_tools.default_dtype(dtype):
        new_model = type(model)(**config)
    new_model = load_foundations_elements(new_model, model, AtomicNumberTable(source_zs), load_readout=True,
                                          max_L=config["hidden_irreps"].lmax, default_dtype=dtype)
    _copy_shared_tensors(model, new_model)
    new_model.atomic_numbers = torch.as_tensor(new_zs, dtype=model.atomic_numbers.dtype)
    checked = check_extension(model, new_model, source_index)
    new_model.eval()
    return new_model, Extension(tuple(chemical_symbols[z] for z in new_zs),
                                tuple(chemical_symbols[z] for z in source_zs), dict(added), tuple(checked))


def _copy_shared_tensors(old_model, new_model) -> None:
    """Copy every tensor without an element axis (same shape in both models) from the old model, exactly.

    ``load_foundations_elements`` reshapes the scale/shift buffers to one entry per head; we restore the old
    model's own buffers so that the two state_dicts differ only in tensors with an element axis.
    """
    import torch

    if getattr(old_model, "scale_shift", None) is not None:
        new_model.scale_shift.scale = old_model.scale_shift.scale.clone()
        new_model.scale_shift.shift = old_model.scale_shift.shift.clone()
    old_state = old_model.state_dict()
    shared = {k: v for k, v in old_state.items() if tuple(v.shape) == tuple(new_model.state_dict()[k].shape)}
    with torch.no_grad():
        new_model.load_state_dict(shared, strict=False)


def save_extended_model(model_path: str | os.PathLike, out_path: str | os.PathLike, proxy_map: ProxyMap,
                        elements: Iterable[str] | None = None,
                        e0s_ev: Mapping[str, float] | None = None) -> Extension:
    """Extend a saved model by ``elements`` (default: every proxy-map entry missing from its table) and save it
    with ``torch.save`` as mace does, for ``MACECalculator`` and ``mace_run_train --foundation_model``."""
    import torch

    from .foundation import load_model, model_elements

    model = load_model(model_path)
    table = model_elements(model)
    added = proxy_map.for_model(table, proxy_map.proxies if elements is None else elements)
    new_model, ext = extend_element_table(model, added, e0s_ev)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    torch.save(new_model, tmp)
    os.replace(tmp, out_path)
    return ext


# ---------------------------------------------------------------------------------------------------------------
# DIPI
# ---------------------------------------------------------------------------------------------------------------


def frame_elements(frames: Iterable[Atoms]) -> set[str]:
    """Chemical symbols present in any of ``frames``."""
    return {chemical_symbols[int(z)] for f in frames for z in np.unique(f.numbers)}


def substitute_proxies(frames: Sequence[Atoms], proxy_map: ProxyMap, table: Sequence[str]) -> list[Atoms]:
    """Copies of ``frames`` with every element missing from ``table`` replaced by its proxy (the DIPI reference)."""
    z_map = {_Z[k]: _Z[v] for k, v in proxy_map.for_model(table, frame_elements(frames)).items()}
    out = []
    for f in frames:
        g = f.copy()
        g.numbers = np.array([z_map.get(int(z), int(z)) for z in f.numbers])
        out.append(g)
    return out


def dipi_predict(model_path: str | os.PathLike, frames: Sequence[Atoms], proxy_map: ProxyMap,
                 device: str = "cpu", default_dtype: str = "float64", work_dir: str | os.PathLike | None = None):
    """DIPI: energies and forces of ``frames`` by a trained model whose unseen elements carry proxy parameters.

    The model's table is extended by the unseen elements present in ``frames`` (:func:`save_extended_model`) and
    the extended model predicts, untrained. Returns :class:`mo_transfer.training.Predictions`.
    """
    from .foundation import load_model, model_elements
    from .training import evaluate

    table = model_elements(load_model(model_path))
    added = proxy_map.for_model(table, frame_elements(frames))
    if not added:
        return evaluate(model_path, list(frames), device, default_dtype)
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        path = Path(tmp) / "dipi.model"
        save_extended_model(model_path, path, proxy_map, added)
        return evaluate(path, list(frames), device, default_dtype)
