"""The stand-in encoder: the one builder of the random CNNs the demo, tests and benchmarks use."""

from __future__ import annotations

import torch

_POOLING = {"avg": torch.nn.AvgPool2d, "max": torch.nn.MaxPool2d}


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    return value


def make_standin_encoder(
    n_channels: int = 1,
    random_state: int | None = 0,
    *,
    width: int = 16,
    depth: int = 3,
    kernel_size: int = 5,
    pooling: str = "avg",
    grid: int = 4,
    init_std: float | None = None,
) -> torch.nn.Module:
    """A small frozen CNN with random weights that stands in for a foundation model.

    **This is not a foundation model.** It has never been trained: ``depth`` random
    convolution layers with ``width``, ``2 * width``, ``4 * width``, ... channels (ReLU
    after each, a 2 × 2 pooling between them) and a final ``grid`` × ``grid`` average
    pooling map an image to ``width * 2**(depth - 1) * grid**2`` features that keep coarse
    spatial layout and local contrast. That is enough for the synthetic data of
    :func:`fairnoise.datasets.make_spurious_images` and lets the demo, the examples and
    the tests run in seconds on a CPU. Results on it do not carry over to real encoders:
    measure on a pretrained one too. The module is in eval mode with gradients off for
    its parameters, and stays differentiable with respect to its input, so both
    :class:`~fairnoise.DebiasedNoiseTransformer` (white-box) and
    :class:`~fairnoise.GeZONoiseTransformer` (black-box) can use it.

    To use a real foundation model instead, pass any frozen ``torch.nn.Module`` that maps
    ``N×C×H×W`` images to ``N×E`` embeddings wherever this one is used, e.g. a
    torchvision ResNet with its classification layer removed::

        import torchvision
        model = torchvision.models.resnet50(weights="IMAGENET1K_V2")
        model.fc = torch.nn.Identity()             # N×3×224×224 → N×2048
        encoder = torch.nn.Sequential(normalise, model).eval()

    or ``timm.create_model(name, pretrained=True, num_classes=0)``. Put the model's input
    normalisation into the module (images reach it as floats in [0, 1]).

    Parameters
    ----------
    n_channels : int, default=1
        Channels of the input images (1 for grayscale, 3 for RGB).
    random_state : int or None, default=0
        Seed of the random weights (a local ``torch.Generator``: the global torch seed is
        neither used nor changed).
    width : int, default=16
        Channels of the first layer; each further layer doubles them.
    depth : int, default=3
        Number of convolution layers.
    kernel_size : int, default=5
        Kernel size of the first layer (the others use 3).
    pooling : {"avg", "max"}, default="avg"
        The 2 × 2 pooling between layers.
    grid : int, default=4
        Side of the final average pooling's output grid.
    init_std : float or None, default=None
        ``None``: He-initialised weights (their scale kept through the ReLUs) and biases
        of standard deviation 0.1. A number: every weight and bias drawn with this
        standard deviation.

    Returns
    -------
    torch.nn.Module
        Frozen encoder mapping ``N×C×H×W`` float images to 2-D embeddings.

    Examples
    --------
    >>> import torch
    >>> from fairnoise.encoders import make_standin_encoder
    >>> encoder = make_standin_encoder(n_channels=1, random_state=0)
    >>> encoder(torch.rand(5, 1, 32, 32)).shape
    torch.Size([5, 1024])
    >>> any(p.requires_grad for p in encoder.parameters())
    False
    >>> tiny = make_standin_encoder(1, 0, width=8, depth=2, kernel_size=3, grid=2)
    >>> tiny(torch.rand(5, 1, 16, 16)).shape
    torch.Size([5, 64])
    """
    n_channels = _positive_int(n_channels, "n_channels")
    width = _positive_int(width, "width")
    depth = _positive_int(depth, "depth")
    kernel_size = _positive_int(kernel_size, "kernel_size")
    grid = _positive_int(grid, "grid")
    if pooling not in _POOLING:
        raise ValueError(f"pooling must be one of {sorted(_POOLING)}; got {pooling!r}.")
    if init_std is not None and not (isinstance(init_std, (int, float)) and init_std > 0):
        raise ValueError(f"init_std must be None or a positive number; got {init_std!r}.")
    layers: list[torch.nn.Module] = []
    with torch.random.fork_rng(devices=[]):  # torch's default init draws from the global RNG
        channels_in = n_channels
        for i in range(depth):
            channels_out = width * 2**i
            k = kernel_size if i == 0 else 3
            layers += [torch.nn.Conv2d(channels_in, channels_out, k, padding=k // 2),
                       torch.nn.ReLU()]
            if i < depth - 1:
                layers.append(_POOLING[pooling](2))
            channels_in = channels_out
        layers += [torch.nn.AdaptiveAvgPool2d(grid), torch.nn.Flatten()]
        encoder = torch.nn.Sequential(*layers)
    generator = torch.Generator().manual_seed(0 if random_state is None else int(random_state))
    with torch.no_grad():
        for layer in encoder:
            if not isinstance(layer, torch.nn.Conv2d):
                continue
            if init_std is None:
                fan_in = layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]
                # He initialisation keeps the activations' scale through the ReLUs
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator)
                                   * (2.0 / fan_in) ** 0.5)
                layer.bias.copy_(0.1 * torch.randn(layer.bias.shape, generator=generator))
            else:
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator)
                                   * init_std)
                layer.bias.copy_(torch.randn(layer.bias.shape, generator=generator) * init_std)
    return encoder.eval().requires_grad_(False)
