"""Small models for the suite's self-tests, in the format that --model-file loads."""

import os

import torch
from torch import nn

from fixtures.zoo import Geometry, ModelSpec


class TinyConv(nn.Module):
    """A 3D convolution, BatchNorm, global pooling and a classifier: converts by every mode."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv = nn.Conv3d(3, 8, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(8)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.head = nn.Linear(8, classes)

    def forward(self, x):
        x = torch.relu(self.norm(self.conv(x)))
        return self.head(self.pool(x).flatten(1))


class SignBranch(nn.Module):
    """Takes a Python branch on the sign of the input's mean, which tracing freezes."""

    def __init__(self):
        super().__init__()
        self.body = TinyConv()

    def forward(self, x):
        features = self.body(x)
        if bool(x.mean() > 0):
            return features
        return -features


class ConstantOutput(nn.Module):
    """Ignores its input, so agreement with eager proves nothing."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.linspace(-1, 1, 10))

    def forward(self, x):
        return self.bias.expand(x.shape[0], -1) + 0 * x.mean()


class RejectsShortClips(nn.Module):
    """Rejects clips shorter than 8 frames, as a model with a fixed temporal kernel does."""

    def __init__(self):
        super().__init__()
        self.body = TinyConv()

    def forward(self, x):
        if x.shape[2] < 8:
            raise ValueError("expected at least 8 frames")
        return self.body(x)


def _spec(name, cls, frames=4):
    return ModelSpec(
        name=name,
        family="user",
        builder=lambda geometry: cls(),
        canonical=Geometry(frames, 32),
        quick=Geometry(frames, 16),
        clip_lengths=(frames,),
    )


MODEL_SPECS = [
    _spec("tiny_conv", TinyConv),
    _spec("tiny_sign_branch", SignBranch),
    _spec("tiny_constant", ConstantOutput),
    _spec("tiny_rejects_short", RejectsShortClips),
]


class BatchBakedScale(nn.Module):
    """Multiplies by the batch size read as a Python int, which tracing turns into a constant."""

    def __init__(self):
        super().__init__()
        self.body = TinyConv()

    def forward(self, x):
        return self.body(x) * int(x.shape[0])


class BatchBakedView(nn.Module):
    """Reshapes with the batch size read as a Python int, so a trace only runs at its own batch size."""

    def __init__(self):
        super().__init__()
        self.body = TinyConv()

    def forward(self, x):
        return self.body(x).reshape(int(x.shape[0]), 10)


class DeviceBaked(nn.Module):
    """Creates a tensor on the input's device, which tracing records as a device constant."""

    def __init__(self):
        super().__init__()
        self.body = TinyConv()

    def forward(self, x):
        features = self.body(x)
        return features + torch.arange(features.shape[-1], device=x.device)


class MutatesPathways(nn.Module):
    """A two-pathway model whose forward replaces the entries of its input list, as SlowFast does."""

    def __init__(self):
        super().__init__()
        self.slow = TinyConv()
        self.fast = TinyConv()

    def forward(self, pathways):
        pathways[0] = pathways[0] * 2
        return self.slow(pathways[0]) + self.fast(pathways[1])


MODEL_SPECS += [
    _spec("tiny_batch_scale", BatchBakedScale),
    _spec("tiny_batch_view", BatchBakedView),
    _spec("tiny_device_baked", DeviceBaked),
    ModelSpec(
        name="tiny_mutates_pathways",
        family="user",
        builder=lambda geometry: MutatesPathways(),
        canonical=Geometry(8, 32, alpha=4),
        quick=Geometry(8, 16, alpha=4),
        clip_lengths=(8,),
        input_kind="pathways",
    ),
]


def _broken_builder(geometry):
    raise FileNotFoundError("checkpoint for tiny_build_fails not found")


# A builder that raises, as a user's model with a missing checkpoint would. A RuntimeError or
# ValueError would instead mean that the model cannot be built at that geometry.
MODEL_SPECS += [
    ModelSpec(
        name="tiny_build_fails",
        family="user",
        builder=_broken_builder,
        canonical=Geometry(4, 16),
        quick=Geometry(4, 16),
        clip_lengths=(4,),
    ),
]


class AbortsWhenTraced(nn.Module):
    """Ends its process while torch.jit.trace runs it, as a crash inside TorchScript would."""

    def __init__(self):
        super().__init__()
        self.body = TinyConv()

    def forward(self, x):
        if torch.jit.is_tracing():
            os._exit(70)
        return self.body(x)


MODEL_SPECS += [_spec("tiny_aborts_when_traced", AbortsWhenTraced)]
