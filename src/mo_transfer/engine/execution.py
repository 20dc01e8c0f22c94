"""Where a training run executes, as opposed to what it is. Like its thread count, the device a run trains on is
left to the machine: a run of the ``cpu`` profile may train on a lent GPU without becoming another run (its
identity, folder and stored file stay those of the profile's run), and its record says where it trained."""

from __future__ import annotations

import os

#: Environment variable that moves every training run of a process (and of the workers it starts) to a device.
TRAIN_DEVICE_ENV = "MO_TRANSFER_TRAIN_DEVICE"
#: Devices a run may train on.
TRAIN_DEVICES: tuple[str, ...] = ("cpu", "cuda")


def execution_device(spec_device: str) -> str:
    """The device a run of ``spec_device`` trains on: ``$MO_TRANSFER_TRAIN_DEVICE`` when set, else the spec's own.
    A value naming no device, or ``cuda`` where torch sees no GPU, stops with a message naming the variable."""
    value = os.environ.get(TRAIN_DEVICE_ENV, "").strip()
    if not value:
        return spec_device
    if value not in TRAIN_DEVICES:
        raise ValueError(f"${TRAIN_DEVICE_ENV}={value!r} names no training device; allowed: {', '.join(TRAIN_DEVICES)}")
    if value == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError(f"${TRAIN_DEVICE_ENV}=cuda, but torch {torch.__version__} sees no CUDA device")
    return value


def device_description(device: str) -> dict:
    """What a run's record keeps about where it trained: the device and, on a GPU, its name."""
    out = {"device": device}
    if device == "cuda":
        import torch

        out["gpu"] = torch.cuda.get_device_name(0)
    return out
