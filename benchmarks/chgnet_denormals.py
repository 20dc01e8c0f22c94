"""CHGNet training steps with and without flushing float32 denormals to zero, printed, never asserted.

Fine-tuning CHGNet 0.3.0 on one core ran at 15-19 s per epoch in the cpu IID sweep where its random-init twin
(the scratch paradigm, the same architecture and frames) ran at 10: the pretrained weights drive intermediate
values into the denormal range, where x86 float arithmetic is many times slower. ``torch.set_flush_denormal(True)``
removes the difference, so ``engine.chgnet_training`` sets it (``FLUSH_DENORMALS``).

Usage: ``OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/chgnet_denormals.py [--frames 5] [--steps 4]``.
Reads the study's FT-E frames, writes nothing. Timings depend on what else runs on the machine.

Measured 2026-12-06 (commit after 20dfdf9, one thread, beside two one-core CHGNet fine-tunes on 2 cores), seconds
per Adam step on a batch of 5 bcc16 frames: fine-tune from 0.3.0 1.86-2.29 without, 1.09-1.16 with; scratch
(seeded random init) 1.08-1.20 without, 1.07-1.18 with. In the sweep, fine-tune epochs went from 15-19 s to 9-11 s.
The script itself, the same day (the first 5 FT-E frames of the study): fine-tune 1.21-1.34 s without, 0.72-0.73
with; scratch 0.63-0.64 without, 0.65-0.66 with. MACE (GOHomS-mini v2 S, float32) showed no such effect
(0.39-0.62 s against 0.32-0.39 s per step, within noise).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mo_transfer import study_common
from mo_transfer.profiles import get_profile

ROOT = Path(__file__).resolve().parents[1]


def step_seconds(net, graphs, targets, steps: int, flush: bool) -> list[float]:
    """Wall seconds of ``steps`` Adam steps (energy + force MSE) of ``net`` on one collated batch."""
    import torch

    torch.set_flush_denormal(flush)
    opt = torch.optim.Adam(net.parameters(), 3e-4)
    out_s = []
    for _ in range(steps):
        t0 = time.perf_counter()
        out = net(graphs, task="ef")
        loss = ((out["e"] - targets["e"]) ** 2).mean()
        loss = loss + sum(((f - g) ** 2).mean() for f, g in zip(out["f"], targets["f"]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        out_s.append(time.perf_counter() - t0)
    return out_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args()
    import torch
    from chgnet.data.dataset import collate_graphs
    from chgnet.model import CHGNet

    from mo_transfer.engine.chgnet_backend import load_model
    from mo_transfer.engine.chgnet_data import GraphSet

    torch.set_num_threads(1)
    _, frames = study_common.study_data(get_profile("cpu"), ROOT)
    frames = [a for a in frames if a.info.get("state") == "E"][: args.frames]
    fine = load_model(study_common.CHGNET_FOUNDATION)
    torch.manual_seed(42)
    scratch = CHGNet(**{k: v for k, v in fine.model_args.items() if k != "version"})
    print(f"{len(frames)} FT-E frames in one batch, {args.steps} Adam steps, one thread")
    for name, net in (("fine-tune (0.3.0 weights)", fine), ("scratch (random init)", scratch)):
        data = GraphSet(net, frames, "FT-E frames")
        graphs, targets = collate_graphs([data[i] for i in range(len(data))])
        for flush in (False, True):
            s = step_seconds(net, graphs, targets, args.steps, flush)
            print(f"{name:28s} flush_denormal={flush!s:5s} s/step: " + " ".join(f"{x:.2f}" for x in s))


if __name__ == "__main__":
    main()
