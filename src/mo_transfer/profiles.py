"""Run profiles: one named set of sizes for every computation of the book.

Every notebook takes a ``profile`` parameter (papermill ``-p profile NAME``) and reads its sizes from here, so the
whole book runs at one of four scales:

``smoke``
    Seconds to minutes on a laptop CPU: tiny models, one epoch, one repeat. It only proves the code paths run; its
    numbers mean nothing. This is what CI (``make test``) executes.
``cpu``
    What the committed book shows: small models and few repeats, sized to finish in hours on 2 CPU cores.
``gpu``
    One GPU (e.g. Colab): MACE-MP-0 downloaded as the foundation model, paper-sized models, fewer repeats.
``paper``
    The paper's protocol (10/5 IID repeats, all 11 LODO folds, 10 refine-tuning repeats, 128/108-atom cells):
    a cluster's worth of work.

Training constants that the paper states (Section 2.2: lr 3e-4, weight decay 1e-6, EMA decay 0.99, seed 42,
lambda_E = lambda_F = 30) are shared by all profiles; only sizes differ.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .structures import DOPANTS

#: Foundation models a profile may name.
FOUNDATIONS: tuple[str, ...] = ("goh-mini", "mace-mp-0")
#: GOHomS-mini generations a profile may name (their data sets: ``foundation.GOH_MINI_GENERATIONS``).
GOH_MINI_GENERATIONS: tuple[str, ...] = ("v1", "v2")
#: Model scales of the paper (MACE-MP-0 small / medium / large, Table 1).
SCALES: tuple[str, ...] = ("small", "medium", "large")
DEVICES: tuple[str, ...] = ("cpu", "cuda")
DFT_SIZES: tuple[str, ...] = ("small", "paper")


@dataclass(frozen=True)
class Profile:
    """Sizes of one run of the book. Frozen: a profile is a value, compare and hash it freely."""

    name: str
    description: str
    #: torch device for training and inference ("cpu" or "cuda").
    device: str
    #: "goh-mini": our offline stand-in pretrained on our own ordered-crystal GPAW data;
    #: "mace-mp-0": the paper's foundation model (needs a network to download).
    foundation: str
    #: Model scales to run in the IID comparison (the paper: small, medium, large).
    model_scales: tuple[str, ...]
    #: Scale used for LODO and the unseen-element study (the paper: medium).
    lodo_scale: str
    #: Upper bound on training epochs of every scratch / fine-tune / refine run (early stopping may end sooner).
    max_epochs: int
    #: MACE channels of scratch models and of the stand-in foundation model (MACE-MP-0 fixes its own: 128).
    num_channels: int
    #: Highest L of the equivariant features of scratch / stand-in models.
    max_L: int
    #: Independent IID splits, equilibrium set FT-E (paper: 10).
    iid_repeats_e: int
    #: Independent IID splits, non-equilibrium set FT-E_NE (paper: 5).
    iid_repeats_ene: int
    #: Held-out elements of the LODO folds; None means all 11 dopants (the paper).
    lodo_elements: tuple[str, ...] | None
    #: Independent splits of the refine-tuning on unseen elements (paper: 10). The engine's study uses
    #: ``refine_folds`` (folds of whole trajectories) instead; kept as the paper's count.
    refine_repeats: int
    #: Supercell size of the DFT data: "small" (16-atom BCC / 32-atom FCC, our GPAW data) or "paper" (128 / 108).
    dft_size: str
    #: Cap on the number of FT-E_NE frames used for training (None = all); a seeded subsample otherwise.
    max_frames: int | None
    batch_size: int = 5
    r_max: float = 5.0
    default_dtype: str = "float64"
    patience: int = 20
    # The evaluation engine's IID protocol (issue #26): K folds of trajectories, every structure tested once; runs
    # stop by validation patience under a cap high enough that patience fires.
    #: Folds of the trajectory partition shared by the FT-E and FT-E_NE rows (K = 10 gives the paper's (81:9):10).
    iid_folds: int = 10
    #: How many of those folds the (costlier) FT-E_NE rows train on; None = all.
    iid_folds_ene: int | None = None
    #: Scales of the FT-E_NE rows (group, size-matched, random split); None = model_scales.
    iid_ene_scales: tuple[str, ...] | None = None
    #: Epoch cap and patience of every engine run (a run that reaches the cap is flagged, never used in a verdict).
    #: Patience 50, about twice the longest plateau measured: scratch S on the cpu IID fold 0 at lr 5e-3 has its
    #: lowest validation loss at epoch 13 (106 meV/atom), none lower until epoch 38 (energy error up while force
    #: error falls), then falls to 7.1 meV/atom by epoch 109; patience 20 stopped it at epoch 33 on the plateau.
    engine_max_epochs: int = 400
    engine_patience: int = 50
    #: Learning-rate grid of the "tuned" protocol: each paradigm's lr chosen on validation error of fold 0. The
    #: tuned rows run on every fold and carry the verdicts: a rate at which runs stop early can be judged.
    tuned_lrs: tuple[float, ...] = (3e-4, 1e-3, 5e-3)
    #: Folds (from fold 0) on which the paper-protocol rows train (lr 3e-4 for both paradigms, and mace's
    #: default-scaled scratch); None = all. Fold 0's paper-protocol runs are the lr grid's 3e-4 runs, trained once.
    paper_protocol_folds: int | None = None
    #: Learning rate of the MACE fine-tunes of the LODO and unseen-element studies; None = the paper's ``lr``. A
    #: profile whose IID grid finds that fine-tuning stops early only at another rate sets that rate here.
    transfer_lr: float | None = None
    #: Run the FT-E rows on CHGNet 0.3.0 too (a real MPtrj-pretrained foundation, weights inside the chgnet wheel).
    chgnet_rows: bool = True
    #: Train CHGNet scratch a second time at chgnet's own default lr (iid_study.CHGNET_SCRATCH_LR), a rescue for a
    #: random CHGNet that does not move at the paper's 3e-4 within the patience (it did not at patience 20).
    chgnet_default_lr_scratch: bool = True
    #: Fine-tune CHGNet on FT-E_NE too (the trajectory folds of the FT-E_NE rows, every frame of the training
    #: trajectories): whether non-equilibrium frames help a real MPtrj-pretrained foundation as well.
    chgnet_ene_rows: bool = True
    #: Epoch cap of the CHGNet runs; None = ``engine_max_epochs``. At the paper's 3e-4 a CHGNet fine-tune is slow:
    #: on the cpu IID fold 0 its validation energy error fell from 105 to 5.1 meV/atom over 400 epochs and was still
    #: falling at the cap. Profiles on a GPU, where an epoch costs little, give it room to stop early.
    chgnet_max_epochs: int | None = None
    #: The LODO folds that also fine-tune CHGNet (None: every LODO fold). CHGNet fine-tunes at the paper's 3e-4
    #: take a median 332 epochs at patience 50 (cpu IID folds), so all 22 LODO runs would cost about 23 core-hours.
    lodo_chgnet_elements: tuple[str, ...] | None = None
    #: GOHomS-mini generation used as the foundation when ``foundation`` is "goh-mini": "v1" (ordered cells of the
    #: 'gohoms' set) or "v2" (plus the displaced Mo-X compounds of 'gohoms2'); see ``foundation.GOH_MINI_GENERATIONS``.
    goh_mini_generation: str = "v1"
    #: Folds of the unseen-element study's refine-tuning: whole new-element trajectories held out per fold
    #: (group K-fold), every new-element frame tested once; at most the number of new-element trajectories.
    refine_folds: int = 3
    #: Training runs at once when a notebook recomputes a study (one process each, ``OMP_NUM_THREADS=1``): the
    #: smoke profile uses the CI machine's two cores; a long sweep sets its own (``recompute --workers``).
    train_workers: int = 1
    # Training constants stated by the paper (Section 2.2); shared by every profile.
    lr: float = 3e-4
    weight_decay: float = 1e-6
    ema_decay: float = 0.99
    energy_weight: float = 30.0
    forces_weight: float = 30.0
    seed: int = 42

    def __post_init__(self) -> None:
        def check(value, allowed, what):
            if value not in allowed:
                raise ValueError(f"profile {self.name!r}: unknown {what} {value!r}; allowed: {', '.join(allowed)}")

        check(self.device, DEVICES, "device")
        check(self.foundation, FOUNDATIONS, "foundation")
        check(self.dft_size, DFT_SIZES, "dft_size")
        check(self.lodo_scale, SCALES, "lodo_scale")
        check(self.goh_mini_generation, GOH_MINI_GENERATIONS, "GOHomS-mini generation")
        if not self.model_scales:
            raise ValueError(f"profile {self.name!r}: model_scales is empty")
        for s in self.model_scales:
            check(s, SCALES, "model scale")
        for s in self.iid_ene_scales or ():
            check(s, self.model_scales, "FT-E_NE scale (must be one of model_scales)")
        for el in self.lodo_elements or ():
            check(el, DOPANTS, "LODO element")
        for el in self.lodo_chgnet_elements or ():
            check(el, self.lodo_folds, "LODO element of the CHGNet runs (must be one of the LODO folds)")
        for field in ("max_epochs", "num_channels", "iid_repeats_e", "iid_repeats_ene", "refine_repeats", "batch_size",
                      "refine_folds", "paper_protocol_folds", "train_workers"):
            if getattr(self, field) is not None and int(getattr(self, field)) < 1:
                raise ValueError(f"profile {self.name!r}: {field} must be at least 1, got {getattr(self, field)!r}")
        if self.paper_protocol_folds is not None and self.paper_protocol_folds > self.iid_folds:
            raise ValueError(f"profile {self.name!r}: paper_protocol_folds ({self.paper_protocol_folds}) exceeds "
                             f"iid_folds ({self.iid_folds})")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"profile {self.name!r}: max_frames must be None or at least 1")

    @property
    def lodo_folds(self) -> tuple[str, ...]:
        """The held-out elements actually run: ``lodo_elements`` or all 11 dopants."""
        return tuple(DOPANTS) if self.lodo_elements is None else tuple(self.lodo_elements)

    @property
    def lodo_chgnet_folds(self) -> tuple[str, ...]:
        """The LODO folds that fine-tune CHGNet too (none when the profile runs no CHGNet rows)."""
        if not self.chgnet_rows:
            return ()
        return self.lodo_folds if self.lodo_chgnet_elements is None else tuple(self.lodo_chgnet_elements)

    def as_dict(self) -> dict:
        """Plain dict (tuples become lists): for provenance records and tables."""
        return dataclasses.asdict(self)

    def summary_rows(self) -> list[dict]:
        """Rows ``{"setting": ..., "value": ...}`` for a two-column table in a notebook."""
        rows = []
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "lodo_elements" and v is None:
                v = "all 11"
            elif f.name == "max_frames" and v is None:
                v = "all"
            elif f.name in ("iid_folds_ene", "paper_protocol_folds") and v is None:
                v = "all"
            elif isinstance(v, tuple):
                v = ", ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v)
            rows.append({"setting": f.name, "value": v})
        return rows


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="CI check of every code path in minutes on a CPU; numbers are meaningless",
        device="cpu",
        foundation="goh-mini",
        model_scales=("small",),
        lodo_scale="small",
        max_epochs=1,
        num_channels=8,
        max_L=0,
        iid_repeats_e=1,
        iid_repeats_ene=1,
        lodo_elements=("Nb",),
        refine_repeats=1,
        dft_size="small",
        max_frames=60,  # whole trajectories: 12 E frames, so each engine fold trains on at least one full batch
        batch_size=4,
        r_max=4.5,
        patience=1,
        iid_folds=2,
        iid_folds_ene=1,
        engine_max_epochs=2,
        engine_patience=1,
        refine_folds=2,
        tuned_lrs=(3e-4,),  # one lr: the tuned rows coincide with the paper's and are trained once
        train_workers=2,  # CI has two cores: the notebooks' smoke runs train two at a time
    ),
    "cpu": Profile(
        name="cpu",
        description="What the committed book shows: small models and few repeats, hours on 2 CPU cores",
        device="cpu",
        foundation="goh-mini",
        # GOHomS-mini v2, pretrained on Mo-X compounds with forces (issue 22); prior_study compares it with v1
        goh_mini_generation="v2",
        # Two of the paper's three scales: the large one trains about 3x slower per epoch on a CPU (benchmarks/
        # training.py), which the 2-core budget cannot carry for every Table 1 row; LODO uses medium, as the paper.
        model_scales=("small", "medium"),
        lodo_scale="medium",
        # the IID lr grid on fold 0 (patience 50): fine-tuning stopped early only at 5e-3 (epoch 347 at S, 265 at
        # M, best 296 and 214) and had the lowest validation loss there; at 3e-4 and 1e-3 it ran into the 400-epoch
        # cap at both scales; tests check the rate against the cached grid
        transfer_lr=5e-3,
        max_epochs=30,
        num_channels=32,
        max_L=0,
        iid_repeats_e=2,
        iid_repeats_ene=1,
        # four MACE folds: Cr and Y (the paper's two exceptions) and Nb and W. At patience 50 an M fine-tune at 5e-3
        # took a median 265 epochs on the IID folds, so lodo_study.estimate_core_hours puts them at about 2.7
        # core-hours on our 57 FT-E frames; all 11 MACE folds would take about 7.5. CHGNet on one of them, W, a
        # regular element, where the paper's protocol effect is largest (Strict 117.8 against Relaxed 8.0 meV/atom):
        # its fine-tunes at 3e-4 took 400 (cap), 386, 208, 332 and 57 epochs on IID folds 0-4, so each LODO fold
        # costs about 2.1 core-hours (W and Y would cost 4.1), on top of about 6.9 for its IID rows, where its issue
        # allowed about 5 for all CHGNet runs
        lodo_elements=("Cr", "Nb", "W", "Y"),
        lodo_chgnet_elements=("W",),
        # at patience 50 a random CHGNet trains at 3e-4: on IID fold 3, where at patience 20 its best model was
        # epoch 0's, early stopping ended it at epoch 170, best at 120 (valid energy MAE 5.5 meV/atom). The rescue
        # row at 1e-3 would cost about 2.4 core-hours of a CHGNet budget of about 5 (measured 10-13 s per epoch on
        # 42 frames, 2 runs on 2 cores), so this profile leaves it out; gpu and paper keep it
        chgnet_default_lr_scratch=False,
        # and no CHGNet FT-E_NE fine-tune: at as many optimizer steps as its FT-E fine-tunes it would train about 100
        # epochs of 240 frames, about 1.5 core-hours per fold, beyond that budget; the gpu and paper profiles run it
        chgnet_ene_rows=False,
        refine_repeats=2,
        dft_size="small",
        max_frames=1500,
        r_max=4.5,
        patience=10,
        # float32 MACE training: 1.7x faster per epoch than float64 on one core, with the same epochs to early
        # stopping and the same test errors to 0.01 meV (benchmarks/engine_speed.py on FT-E fold 0). GOHomS-mini
        # itself is pretrained in float64 (mace's advice for training); fine-tuning casts it.
        default_dtype="float32",
        # 5 folds of trajectories ((72:8):20 inside each); FT-E_NE rows at S only, on 2 of them. The IID study's
        # estimate (iid_study.estimate_core_hours, from the per-frame epoch costs and epochs to early stopping
        # measured on these folds at patience 50) is about 15.0 core-hours on our 57 / 300 frames, above the
        # "about 8" of its issue: patience 50 stops no run on a plateau, and at it MACE runs take 250-400 epochs (8.2
        # core-hours) and CHGNet at 3e-4 57-400 (6.9 core-hours of CHGNet rows).
        iid_folds=5,
        iid_folds_ene=2,
        iid_ene_scales=("small",),
        # The paper's lr 3e-4 on fold 0 only: there GOHomS-mini v2 fine-tunes reached the 400-epoch cap still
        # improving at S and M (34 min per M run on one core), so on more folds they would cost about 3 core-hours
        # and still feed no verdict. The tuned protocol (fine-tune S stopped early at 5e-3) runs on all 5 folds.
        paper_protocol_folds=1,
        # 3 folds of the 18 new-element trajectories: unseen_study.estimate_core_hours puts the study at about 3.3
        # core-hours on our 57 + 102 frames; 9 folds would take about three times the refine-tuning.
        refine_folds=3,
    ),
    "gpu": Profile(
        name="gpu",
        chgnet_max_epochs=2000,  # see the field: room for CHGNet fine-tunes at 3e-4 to stop early
        description="One GPU (e.g. Colab): MACE-MP-0 downloaded, all three scales, fewer repeats than the paper",
        device="cuda",
        foundation="mace-mp-0",
        model_scales=("small", "medium", "large"),
        lodo_scale="medium",
        max_epochs=100,
        num_channels=128,
        max_L=1,
        iid_repeats_e=3,
        iid_repeats_ene=2,
        lodo_elements=None,
        refine_repeats=3,
        dft_size="small",
        max_frames=None,
        batch_size=8,
        refine_folds=9,
    ),
    "paper": Profile(
        name="paper",
        chgnet_max_epochs=2000,  # see the field: room for CHGNet fine-tunes at 3e-4 to stop early
        description="The paper's protocol at full scale (a cluster): 10/5 IID repeats, 11 LODO folds, 10 refines",
        device="cuda",
        foundation="mace-mp-0",
        model_scales=("small", "medium", "large"),
        lodo_scale="medium",
        # The main text does not state the epoch count (its Table S1 is in the Supplementary Materials).
        max_epochs=200,
        num_channels=128,
        max_L=2,
        iid_repeats_e=10,
        iid_repeats_ene=5,
        lodo_elements=None,
        refine_repeats=10,
        dft_size="paper",
        max_frames=None,
        batch_size=8,
        patience=50,
        refine_folds=10,
    ),
}


def profile_names() -> tuple[str, ...]:
    """Names of the defined profiles, smallest first."""
    return tuple(PROFILES)


def get_profile(name: str | Profile) -> Profile:
    """The profile called ``name`` (a ``Profile`` passes through); unknown names raise a ``ValueError``."""
    if isinstance(name, Profile):
        return name
    key = str(name).strip().lower()
    if key not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; allowed: {', '.join(PROFILES)}")
    return PROFILES[key]


def profiles_table() -> list[dict]:
    """One row per profile with the sizes that differ between them (README and intro tables)."""
    rows = []
    for p in PROFILES.values():
        rows.append({
            "profile": p.name,
            "device": p.device,
            "foundation": p.foundation,
            "scales": "/".join(s[0].upper() for s in p.model_scales),
            "channels": p.num_channels,
            "max_L": p.max_L,
            "max_epochs": p.max_epochs,
            "IID repeats E / E_NE": f"{p.iid_repeats_e} / {p.iid_repeats_ene}",
            "LODO folds": len(p.lodo_folds),
            "refine folds": p.refine_folds,
            "DFT cells": "128/108 atoms" if p.dft_size == "paper" else "16/32 atoms",
            "max frames": "all" if p.max_frames is None else p.max_frames,
        })
    return rows
