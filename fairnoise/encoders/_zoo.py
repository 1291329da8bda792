"""Adapters for the model zoos foundation models come from: torchvision, timm, CLIP, Hugging Face.

Each adapter takes a model the user has already built or loaded (weights from their own
disk or cache: fairnoise downloads nothing) and returns a frozen ``torch.nn.Module`` that
maps ``N×C×H×W`` images in [0, 1] to ``N×E`` embeddings, the model's input normalisation
inside it, so that the edit is learned in image space. The module is a *frozen view* of
the model: new module objects (in eval mode, parameters without gradients) over the same
weight tensors, so it costs no second copy of the weights and leaves the caller's model
exactly as it was (mode, ``requires_grad`` flags, classifier).

Every adapter imports nothing from its zoo: it works by the model's own methods and
attributes (``forward_features`` / ``forward_head`` for timm, ``encode_image`` for CLIP,
``pixel_values=`` and ``pooler_output`` for Hugging Face), so it needs no optional
package beyond the one the model came from.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from ._pretrained import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["from_open_clip", "from_timm", "from_torchvision", "from_transformers"]

#: The input normalisation of OpenAI's CLIP, the default of open_clip's preprocessing.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_HEADS = ("fc", "classifier", "heads", "head")  # torchvision's names for the classifier
_POOLING = ("auto", "pooler", "cls", "mean")


def _frozen_view(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model``'s modules that shares its weights and buffers, frozen.

    ``deepcopy`` with a memo that maps every parameter to a new, gradient-free
    ``Parameter`` over the same storage (and every buffer to itself): the view's modules
    have their own ``training`` and ``requires_grad`` flags, the tensors are shared.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"expected a torch.nn.Module; got {type(model).__name__}.")
    memo: dict[int, Any] = {id(b): b for b in model.buffers()}
    memo.update({id(p): torch.nn.Parameter(p.detach(), requires_grad=False)
                 for p in model.parameters()})
    return copy.deepcopy(model, memo).eval()


def _stats(values: Any, name: str) -> tuple[float, ...]:
    """Per-channel mean or std as a tuple of floats (one number: one channel)."""
    try:
        stats = tuple(float(v) for v in np.atleast_1d(np.asarray(values, dtype=float)))
    except (TypeError, ValueError):
        stats = ()
    if not stats or not np.all(np.isfinite(stats)) or (name == "std" and min(stats) <= 0):
        raise ValueError(f"{name} must be one finite number per channel"
                         f"{', all positive' if name == 'std' else ''}; got {values!r}.")
    return stats


class _ZooEncoder(torch.nn.Module):
    """Normalise ``[0, 1]`` images, run a frozen view of a model, return ``N×E``.

    Grayscale images (one channel) are repeated over the channels the normalisation has
    (three for the zoos' RGB models), so chest X-rays can be passed as they are.
    Subclasses say how the model turns normalised images into embeddings (:meth:`embed`).
    """

    def __init__(self, model: torch.nn.Module, mean: Any, std: Any) -> None:
        super().__init__()
        mean, std = _stats(mean, "mean"), _stats(std, "std")
        if len(mean) != len(std):
            raise ValueError(f"mean and std must have one value per channel; got "
                             f"{len(mean)} and {len(std)} values.")
        self.model = model
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))
        self.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = self.mean.shape[1]
        if x.ndim != 4 or x.shape[1] not in (1, channels):
            raise ValueError(
                f"{type(self.model).__name__} takes images N×{channels}×H×W (or grayscale "
                f"N×1×H×W, repeated over the channels) in [0, 1]; got a batch of shape "
                f"{tuple(x.shape)}.")
        x = x.expand(-1, channels, -1, -1)  # grayscale: the same image in every channel
        dtype = next((p.dtype for p in self.model.parameters()), x.dtype)
        z = self.embed(((x - self.mean) / self.std).to(dtype))
        return z.flatten(1).float()  # e.g. a convolutional pooler's N×C×1×1

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def from_torchvision(model: torch.nn.Module, *, mean: Any = IMAGENET_MEAN,
                     std: Any = IMAGENET_STD) -> torch.nn.Module:
    """A torchvision classifier as a frozen encoder: its classification layer removed.

    The final ``torch.nn.Linear`` of the classifier (``fc`` in ResNet, RegNet and
    Inception, ``classifier`` in DenseNet, EfficientNet, MobileNet, ConvNeXt and VGG,
    ``heads`` in ViT, ``head`` in Swin) is replaced by the identity in the view, so the
    module returns what the classifier saw: the pooled features (ResNet-50: 2,048, ViT-B:
    768). A model whose head is already ``torch.nn.Identity()`` is used as it is.

    Parameters
    ----------
    model : torch.nn.Module
        A torchvision classification model, e.g.
        ``torchvision.models.resnet50(weights="IMAGENET1K_V2")``. It is not modified.
    mean, std : sequence of float, default=ImageNet's
        The per-channel input normalisation of the weights (every torchvision
        classification checkpoint uses ImageNet's; ``weights.transforms().mean`` says).

    Returns
    -------
    torch.nn.Module
        Frozen, differentiable with respect to its input: ``N×C×H×W`` images in [0, 1]
        (grayscale ``N×1×H×W`` repeated over the channels) to ``N×E`` embeddings.

    Raises
    ------
    TypeError
        If the model has no classifier of that form (a SqueezeNet's convolution, say):
        remove it yourself and pass the model with ``torch.nn.Identity()`` in its place.

    Examples
    --------
    >>> import torch, torchvision  # doctest: +SKIP
    >>> resnet = torchvision.models.resnet18(weights=None)  # doctest: +SKIP
    >>> from_torchvision(resnet)(torch.rand(2, 1, 64, 64)).shape  # doctest: +SKIP
    torch.Size([2, 512])
    """
    view = _frozen_view(model)
    for name in _HEADS:
        head = view._modules.get(name)
        if isinstance(head, torch.nn.Identity):
            break
        if isinstance(head, torch.nn.Linear):
            setattr(view, name, torch.nn.Identity())
            break
        if isinstance(head, torch.nn.Sequential) and len(head) and (
                isinstance(head[-1], (torch.nn.Linear, torch.nn.Identity))):
            head[-1] = torch.nn.Identity()  # e.g. EfficientNet's Dropout, Linear
            break
    else:
        raise TypeError(
            f"from_torchvision found no classification layer on {type(model).__name__}: "
            f"none of {', '.join(_HEADS)} is a torch.nn.Linear or a torch.nn.Sequential "
            "ending in one. Replace the classifier by torch.nn.Identity() yourself and pass "
            "the model again.")
    return _ZooEncoder(view, mean, std)


class _TimmEncoder(_ZooEncoder):
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        # the pooled features before the classifier, by timm's own split of the forward
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)


def from_timm(model: torch.nn.Module, *, mean: Any = None, std: Any = None
              ) -> torch.nn.Module:
    """A timm model as a frozen encoder: its pooled pre-logits features.

    Runs ``model.forward_features`` then ``model.forward_head(..., pre_logits=True)``, so
    the classifier is skipped whatever ``num_classes`` the model was created with, and the
    model's own global pooling (average, CLS token, ...) gives ``model.num_features``
    dimensions.

    Parameters
    ----------
    model : torch.nn.Module
        A model from ``timm.create_model(name, pretrained=True)`` (or with weights you
        loaded from a file). It is not modified.
    mean, std : sequence of float, optional
        The input normalisation; by default the model's own ``pretrained_cfg["mean"]``
        and ``["std"]``, which timm sets for every architecture.

    Returns
    -------
    torch.nn.Module
        Frozen, differentiable with respect to its input: ``N×C×H×W`` images in [0, 1]
        (grayscale ``N×1×H×W`` repeated over the channels) to ``N×model.num_features``.

    Raises
    ------
    TypeError
        If the model lacks timm's ``forward_features`` / ``forward_head``.
    ValueError
        If no normalisation is given and the model has no ``pretrained_cfg`` holding one.
    """
    if not (callable(getattr(model, "forward_features", None))
            and callable(getattr(model, "forward_head", None))):
        raise TypeError(f"from_timm expects a timm model (with forward_features and "
                        f"forward_head); got {type(model).__name__}. For a torchvision "
                        "model use from_torchvision.")
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    mean = cfg.get("mean") if mean is None else mean
    std = cfg.get("std") if std is None else std
    if mean is None or std is None:
        raise ValueError(f"{type(model).__name__} has no pretrained_cfg with 'mean' and "
                         "'std'; pass mean= and std= (the normalisation its weights were "
                         "trained with).")
    return _TimmEncoder(_frozen_view(model), mean, std)


def from_open_clip(model: torch.nn.Module, *, mean: Any = None, std: Any = None
                   ) -> torch.nn.Module:
    """A CLIP model's image tower as a frozen encoder (open_clip or OpenAI's ``clip``).

    Returns the embedding of ``model.encode_image(x)`` (the projected image embedding
    CLIP compares with text, before L2 normalisation) by running the image tower
    ``model.visual``; the text tower is not used. The image tower itself may be passed.

    Parameters
    ----------
    model : torch.nn.Module
        From ``open_clip.create_model_and_transforms(name, pretrained=...)`` (or
        ``clip.load(name)`` of OpenAI's package), or its ``.visual``. It is not modified.
    mean, std : sequence of float, optional
        The input normalisation; by default what open_clip stored on the image tower
        (``visual.preprocess_cfg``, or the older ``image_mean`` / ``image_std``), else
        OpenAI CLIP's (mean 0.481, 0.458, 0.408; std 0.269, 0.261, 0.276).

    Returns
    -------
    torch.nn.Module
        Frozen, differentiable with respect to its input: ``N×C×H×W`` images in [0, 1]
        at the tower's input size (224 × 224 for most) to ``N×E`` embeddings.

    Raises
    ------
    TypeError
        If ``model`` is neither a CLIP model (with ``encode_image`` and ``visual``) nor
        a module.
    """
    tower = model.visual if callable(getattr(model, "encode_image", None)) else model
    if not isinstance(tower, torch.nn.Module):
        raise TypeError(f"from_open_clip expects a CLIP model (with encode_image and an "
                        f"image tower .visual) or its image tower; got "
                        f"{type(model).__name__}.")
    cfg = getattr(tower, "preprocess_cfg", None) or {}
    if mean is None:
        mean = cfg.get("mean") or getattr(tower, "image_mean", None) or CLIP_MEAN
    if std is None:
        std = cfg.get("std") or getattr(tower, "image_std", None) or CLIP_STD
    # the image tower alone computes what encode_image returns (before its L2 option)
    return _ZooEncoder(_frozen_view(tower), mean, std)


class _TransformersEncoder(_ZooEncoder):
    def __init__(self, model: torch.nn.Module, mean: Any, std: Any, pooling: str) -> None:
        super().__init__(model, mean, std)
        self.pooling = pooling

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if callable(getattr(self.model, "get_image_features", None)):  # CLIPModel, SigLIP
            out = self.model.get_image_features(pixel_values=x)
            # a tensor up to transformers 4, the projection as pooler_output from 5 on
            return out if isinstance(out, torch.Tensor) else out.pooler_output
        out = self.model(pixel_values=x)
        pooled = getattr(out, "pooler_output", None)
        if self.pooling == "pooler" or (self.pooling == "auto" and pooled is not None):
            if pooled is None:
                raise ValueError(f"{type(self.model).__name__} returns no pooler_output; "
                                 "use pooling='cls' or 'mean'.")
            return pooled
        hidden = out.last_hidden_state  # N×T×E tokens, or an N×C×H×W feature map
        if self.pooling == "mean" or (self.pooling == "auto" and hidden.ndim == 4):
            return hidden.mean(dim=1) if hidden.ndim == 3 else hidden.mean(dim=(2, 3))
        if hidden.ndim != 3:
            raise ValueError(f"pooling='cls' needs token embeddings (N×T×E); "
                             f"{type(self.model).__name__} returns shape "
                             f"{tuple(hidden.shape)}. Use pooling='mean'.")
        return hidden[:, 0]  # the CLS token


def from_transformers(model: torch.nn.Module, processor: Any = None, *,
                      pooling: str = "auto", mean: Any = None, std: Any = None
                      ) -> torch.nn.Module:
    """A Hugging Face ``transformers`` vision model as a frozen encoder.

    The model is called as ``model(pixel_values=x)`` and one embedding per image is read
    from its output by ``pooling``; a multimodal model with ``get_image_features``
    (``CLIPModel``, ``SiglipModel``) returns its projected image embedding instead. The
    processor's normalisation (``image_mean``, ``image_std``) is folded in; its resizing
    is not: pass images at the model's input size (``model.config.image_size``).

    Parameters
    ----------
    model : torch.nn.Module
        E.g. ``AutoModel.from_pretrained(name)`` (ViT, DINOv2, CLIPVision, Swin, ConvNeXt,
        ResNet, ...) or ``CLIPModel.from_pretrained(name)``. It is not modified.
    processor : image processor or processor, optional
        ``AutoImageProcessor.from_pretrained(name)`` or ``AutoProcessor`` (its
        ``image_processor`` is used). Required unless ``mean`` and ``std`` are given: a
        Hugging Face model does not carry its input normalisation.
    pooling : {"auto", "pooler", "cls", "mean"}, default="auto"
        ``"pooler"``: the output's ``pooler_output`` (ViT's tanh layer over the CLS
        token, DINOv2's normalised CLS token, a CNN's pooled features); ``"cls"``: the
        first token of ``last_hidden_state``; ``"mean"``: the mean over its tokens (or
        over the positions of a convolutional feature map). ``"auto"``: the pooler
        output where the model has one, else the CLS token (the mean of a feature map).
    mean, std : sequence of float, optional
        Override the processor's normalisation.

    Returns
    -------
    torch.nn.Module
        Frozen, differentiable with respect to its input: ``N×C×H×W`` images in [0, 1]
        (grayscale ``N×1×H×W`` repeated over the channels) to ``N×E`` embeddings.

    Raises
    ------
    ValueError
        If ``pooling`` is unknown, or neither a processor nor ``mean`` and ``std`` are
        given.
    """
    if pooling not in _POOLING:
        raise ValueError(f"pooling must be one of {', '.join(map(repr, _POOLING))}; "
                         f"got {pooling!r}.")
    if processor is not None:
        images = getattr(processor, "image_processor", processor)  # AutoProcessor's part
        normalises = getattr(images, "do_normalize", True)  # False: it only rescales
        if mean is None:
            mean = getattr(images, "image_mean", None) if normalises else (0.0, 0.0, 0.0)
        if std is None:
            std = getattr(images, "image_std", None) if normalises else (1.0, 1.0, 1.0)
    if mean is None or std is None:
        raise ValueError(
            f"from_transformers needs the model's image processor (e.g. "
            f"AutoImageProcessor.from_pretrained(name)) or mean= and std=: "
            f"{type(model).__name__} does not carry its input normalisation.")
    return _TransformersEncoder(_frozen_view(model), mean, std, pooling)
