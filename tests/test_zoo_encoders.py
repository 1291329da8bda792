"""The model-zoo adapters: torchvision, timm, CLIP (open_clip) and Hugging Face models.

Where the zoo's package is installed, each adapter is tested on its real models built
without weights (nothing is downloaded). torchvision, timm and open_clip cannot be
installed next to a CPU build of torch without replacing it (they pull a CUDA torch, and
PyPI's torchvision does not import beside the CPU build), so in CI their adapters are
tested on stand-ins that reproduce what the adapter relies on, written from the zoos'
sources: torchvision's classifier attributes (``fc``, ``classifier``, ``heads``), timm's
``forward_features`` / ``forward_head(pre_logits=True)`` / ``pretrained_cfg``, and
open_clip's ``encode_image`` / ``visual.preprocess_cfg``. ``transformers`` needs no torch
of its own and is tested for real (it is in the ``test`` extra).
"""

from __future__ import annotations

import importlib
import pickle
from collections import OrderedDict
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fairnoise import DebiasedNoiseTransformer
from fairnoise.encoders import from_open_clip, from_timm, from_torchvision, from_transformers
from fairnoise.encoders._zoo import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD


def _import_or_skip(name: str):
    """The package, or a skip that says why (a torchvision beside the wrong torch raises
    RuntimeError, not ImportError, on import)."""
    try:
        return importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 (any failure to import means: not usable here)
        pytest.skip(f"{name} is not usable here: {type(exc).__name__}: {exc}")


def _seeded(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights from a local generator (the global seed is left alone)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.2)
    return module


def _normalised(x: torch.Tensor, mean, std) -> torch.Tensor:
    return (x.expand(-1, 3, -1, -1) - torch.tensor(mean).view(1, 3, 1, 1)) \
        / torch.tensor(std).view(1, 3, 1, 1)


def _trunk() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())


# -- stand-ins of the zoos' models, as their sources define them ------------------------
class ResNetLike(torch.nn.Module):
    """torchvision's ResNet / RegNet / Inception: pooled features, then ``self.fc``."""

    def __init__(self) -> None:
        super().__init__()
        self.features, self.fc = _trunk(), torch.nn.Linear(6, 10)

    def forward(self, x):
        return self.fc(self.features(x))


class EfficientNetLike(torch.nn.Module):
    """torchvision's EfficientNet / MobileNet / ConvNeXt / VGG: ``classifier`` ends in a Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.features = _trunk()
        self.classifier = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(6, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


class ViTLike(torch.nn.Module):
    """torchvision's VisionTransformer: ``heads = Sequential(OrderedDict(head=Linear))``."""

    def __init__(self) -> None:
        super().__init__()
        self.features = _trunk()
        self.heads = torch.nn.Sequential(OrderedDict(head=torch.nn.Linear(6, 10)))

    def forward(self, x):
        return self.heads(self.features(x))


class TimmLike(torch.nn.Module):
    """timm's split of the forward: ``forward_features``, ``forward_head(pre_logits=)``."""

    def __init__(self) -> None:
        super().__init__()
        self.pretrained_cfg = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
        self.num_features = 6
        self.conv = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.global_pool, self.fc = torch.nn.AdaptiveAvgPool2d(1), torch.nn.Linear(6, 10)

    def forward_features(self, x):
        return torch.relu(self.conv(x))

    def forward_head(self, x, pre_logits: bool = False):
        x = self.global_pool(x).flatten(1)
        return x if pre_logits else self.fc(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


class CLIPLike(torch.nn.Module):
    """open_clip's CLIP: ``encode_image(image, normalize=False) = visual(image)``."""

    def __init__(self, preprocess_cfg: dict | None = None) -> None:
        super().__init__()
        self.visual = torch.nn.Sequential(_trunk(), torch.nn.Linear(6, 4))  # tower + projection
        if preprocess_cfg is not None:
            self.visual.preprocess_cfg = preprocess_cfg
        self.text = torch.nn.Embedding(10, 4)

    def encode_image(self, image, normalize: bool = False):
        features = self.visual(image)
        return torch.nn.functional.normalize(features, dim=-1) if normalize else features


def _classifier_input(model: torch.nn.Module, layer: torch.nn.Module, x: torch.Tensor):
    """What ``layer`` (the classifier) receives when ``model`` runs on ``x``."""
    seen = []
    handle = layer.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        handle.remove()
    return seen[0]


# -- torchvision ------------------------------------------------------------------------
@pytest.mark.parametrize("build, head", [
    (ResNetLike, lambda m: m.fc),
    (EfficientNetLike, lambda m: m.classifier[-1]),
    (ViTLike, lambda m: m.heads.head),
])
def test_torchvision_embeddings_are_what_the_classifier_saw(build, head):
    model = _seeded(build())
    x = torch.rand(4, 3, 8, 8)
    expected = _classifier_input(model, head(model), _normalised(x, IMAGENET_MEAN,
                                                                 IMAGENET_STD))
    with torch.no_grad():
        torch.testing.assert_close(from_torchvision(model)(x), expected)


def test_torchvision_head_already_removed_is_used_as_it_is():
    model = _seeded(ResNetLike())
    model.fc = torch.nn.Identity()
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(from_torchvision(model)(x),
                                   model.eval()(_normalised(x, IMAGENET_MEAN, IMAGENET_STD)))


def test_torchvision_without_a_linear_classifier_is_refused():
    squeezenet_like = torch.nn.Module()
    squeezenet_like.classifier = torch.nn.Sequential(torch.nn.Conv2d(6, 10, 1),
                                                     torch.nn.AdaptiveAvgPool2d(1))
    with pytest.raises(TypeError, match="found no classification layer on Module.*Identity"):
        from_torchvision(squeezenet_like)


def test_the_callers_model_is_left_as_it_was_and_its_weights_are_shared():
    model = _seeded(ResNetLike()).train()
    encoder = from_torchvision(model)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert isinstance(model.fc, torch.nn.Linear)  # the view lost the head, not the model
    assert not encoder.training and not any(p.requires_grad for p in encoder.parameters())
    assert encoder.model.features[0].weight.data_ptr() == model.features[0].weight.data_ptr()


def test_grayscale_is_repeated_and_the_encoder_is_differentiable_in_its_input():
    encoder = from_torchvision(_seeded(ResNetLike()))
    gray = torch.rand(3, 1, 8, 8, requires_grad=True)
    z = encoder(gray)
    torch.testing.assert_close(z, encoder(gray.detach().expand(-1, 3, -1, -1)))
    z.sum().backward()
    assert gray.grad is not None and torch.isfinite(gray.grad).all() and gray.grad.abs().sum() > 0


def test_the_normalisation_can_be_given():
    model = _seeded(ResNetLike())
    x = torch.rand(2, 3, 8, 8)
    mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    with torch.no_grad():
        torch.testing.assert_close(from_torchvision(model, mean=mean, std=std)(x),
                                   _classifier_input(model, model.fc, _normalised(x, mean, std)))


@pytest.mark.parametrize("kwargs, message", [
    ({"mean": (0.5, 0.5), "std": (0.2, 0.2, 0.2)}, "one value per channel; got 2 and 3"),
    ({"std": (0.2, 0.0, 0.2)}, "std must be one finite number per channel, all positive"),
    ({"mean": "imagenet"}, "mean must be one finite number per channel"),
])
def test_bad_normalisation_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        from_torchvision(ResNetLike(), **kwargs)


def test_images_with_the_wrong_channels_are_refused_with_the_shapes():
    with pytest.raises(ValueError, match=r"takes images N×3×H×W .* got a batch of shape "
                                         r"\(2, 2, 8, 8\)"):
        from_torchvision(ResNetLike())(torch.rand(2, 2, 8, 8))


def test_a_non_module_is_refused():
    with pytest.raises(TypeError, match="expected a torch.nn.Module; got str"):
        from_torchvision("resnet50")


def test_an_adapted_model_learns_an_edit_and_the_fitted_transformer_pickles():
    rng = np.random.default_rng(0)
    X = rng.random((60, 1, 8, 8)).astype(np.float32)
    a = rng.integers(0, 2, 60)
    X[a == 1, :, :2, :2] = 1.0  # a corner marker gives the group away
    dne = DebiasedNoiseTransformer(from_torchvision(_seeded(ResNetLike())), max_epochs=2,
                                   batch_size=30, random_state=0)
    Z = dne.fit(X, sensitive_features=a).transform(X)
    assert Z.shape == (60, 6) and dne.mask_.shape == (1, 8, 8)
    np.testing.assert_allclose(pickle.loads(pickle.dumps(dne)).transform(X), Z, rtol=1e-5)


# -- timm -------------------------------------------------------------------------------
def test_timm_embeddings_are_the_pre_logits_features_with_the_models_normalisation():
    model = _seeded(TimmLike())
    x = torch.rand(2, 1, 8, 8)
    normalised = _normalised(x, (0.5,) * 3, (0.25,) * 3)
    with torch.no_grad():
        expected = model.forward_head(model.forward_features(normalised), pre_logits=True)
        torch.testing.assert_close(from_timm(model)(x), expected)
        given = from_timm(model, mean=(0.0,) * 3, std=(1.0,) * 3)(x)
        torch.testing.assert_close(given, model.forward_head(
            model.forward_features(x.expand(-1, 3, -1, -1)), pre_logits=True))


def test_timm_needs_its_forward_split_and_a_normalisation():
    with pytest.raises(TypeError, match="expects a timm model .* got ResNetLike.*"
                                        "from_torchvision"):
        from_timm(ResNetLike())
    model = TimmLike()
    model.pretrained_cfg = {}
    with pytest.raises(ValueError, match="no pretrained_cfg with 'mean' and 'std'"):
        from_timm(model)


# -- CLIP -------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg, mean, std", [
    ({"mean": (0.5,) * 3, "std": (0.5,) * 3}, (0.5,) * 3, (0.5,) * 3),
    (None, CLIP_MEAN, CLIP_STD),  # OpenAI's clip package stores none
])
def test_clip_embeddings_are_encode_image_of_the_normalised_images(cfg, mean, std):
    model = _seeded(CLIPLike(cfg))
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        expected = model.encode_image(_normalised(x, mean, std))
        torch.testing.assert_close(from_open_clip(model)(x), expected)
        torch.testing.assert_close(from_open_clip(model.visual)(x), expected)  # the tower


def test_clip_legacy_normalisation_attributes_are_read():
    model = _seeded(CLIPLike())
    model.visual.image_mean, model.visual.image_std = (0.4,) * 3, (0.3,) * 3
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(from_open_clip(model)(x),
                                   model.encode_image(_normalised(x, (0.4,) * 3, (0.3,) * 3)))


def test_clip_view_holds_the_image_tower_only():
    encoder = from_open_clip(_seeded(CLIPLike()))
    assert not any(isinstance(m, torch.nn.Embedding) for m in encoder.modules())


def test_clip_needs_a_model():
    with pytest.raises(TypeError, match="expects a CLIP model .* got SimpleNamespace"):
        from_open_clip(SimpleNamespace(encode_image=lambda x: x, visual=None))


# -- Hugging Face transformers (real, tiny random configurations) -----------------------
@pytest.fixture(scope="module")
def transformers():
    return _import_or_skip("transformers")


def _tiny_vit(transformers, **kwargs):
    config = transformers.ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                    intermediate_size=20, image_size=16, patch_size=8)
    torch.manual_seed(0)  # transformers initialises from the global generator
    return transformers.ViTModel(config, **kwargs).eval()


@pytest.mark.parametrize("pooling, read", [
    ("auto", lambda out: out.pooler_output),
    ("pooler", lambda out: out.pooler_output),
    ("cls", lambda out: out.last_hidden_state[:, 0]),
    ("mean", lambda out: out.last_hidden_state.mean(dim=1)),
])
def test_transformers_vit_pooling_and_processor_normalisation(transformers, pooling, read):
    with torch.random.fork_rng():
        model = _tiny_vit(transformers)
    processor = transformers.ViTImageProcessor(image_mean=[0.4, 0.5, 0.6],
                                               image_std=[0.2, 0.3, 0.4])
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        expected = read(model(pixel_values=_normalised(x, (0.4, 0.5, 0.6), (0.2, 0.3, 0.4))))
        z = from_transformers(model, processor, pooling=pooling)(x)
    torch.testing.assert_close(z, expected)


def test_transformers_without_a_pooler_auto_takes_the_cls_token(transformers):
    with torch.random.fork_rng():
        model = _tiny_vit(transformers, add_pooling_layer=False)
    x = torch.rand(2, 3, 16, 16)
    encoder = from_transformers(model, mean=(0.0,) * 3, std=(1.0,) * 3)
    with torch.no_grad():
        torch.testing.assert_close(encoder(x), model(pixel_values=x).last_hidden_state[:, 0])
    with pytest.raises(ValueError, match="returns no pooler_output; use pooling='cls'"):
        from_transformers(model, mean=(0.0,) * 3, std=(1.0,) * 3, pooling="pooler")(x)


def test_transformers_convolutional_model_is_flattened_or_averaged(transformers):
    config = transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1])
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = transformers.ResNetModel(config).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = model(pixel_values=x)
        pooled = from_transformers(model, mean=(0.0,) * 3, std=(1.0,) * 3)(x)  # N×16×1×1
        mean = from_transformers(model, mean=(0.0,) * 3, std=(1.0,) * 3, pooling="mean")(x)
    torch.testing.assert_close(pooled, out.pooler_output.flatten(1))
    torch.testing.assert_close(mean, out.last_hidden_state.mean(dim=(2, 3)))
    with pytest.raises(ValueError, match="pooling='cls' needs token embeddings"):
        from_transformers(model, mean=(0.0,) * 3, std=(1.0,) * 3, pooling="cls")(x)


def test_transformers_clip_gives_its_projected_image_features(transformers):
    vision = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=20, image_size=16, patch_size=8)
    text = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                intermediate_size=20, vocab_size=50000)
    config = transformers.CLIPConfig(vision_config=vision, text_config=text, projection_dim=5)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = transformers.CLIPModel(config).eval()
    # an AutoProcessor holds the image processor as .image_processor
    processor = SimpleNamespace(image_processor=transformers.CLIPImageProcessor())
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        features = model.get_image_features(pixel_values=_normalised(x, CLIP_MEAN, CLIP_STD))
        expected = features if isinstance(features, torch.Tensor) else features.pooler_output
        torch.testing.assert_close(from_transformers(model, processor)(x), expected)
    assert expected.shape == (2, 5)


def test_transformers_processor_that_does_not_normalise_is_respected(transformers):
    with torch.random.fork_rng():
        model = _tiny_vit(transformers)
    processor = transformers.ViTImageProcessor(do_normalize=False)
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(from_transformers(model, processor)(x),
                                   model(pixel_values=x).pooler_output)


def test_transformers_needs_a_normalisation_and_a_known_pooling(transformers):
    with torch.random.fork_rng():
        model = _tiny_vit(transformers)
    with pytest.raises(ValueError, match="needs the model's image processor .* ViTModel"):
        from_transformers(model)
    with pytest.raises(ValueError, match="pooling must be one of 'auto', 'pooler', 'cls', "
                                         "'mean'; got 'max'"):
        from_transformers(model, mean=(0.5,) * 3, std=(0.5,) * 3, pooling="max")


# -- the real torchvision, timm and open_clip, where they are installed -----------------
@pytest.mark.parametrize("name, size, dim", [
    ("resnet18", 32, 512), ("densenet121", 32, 1024), ("efficientnet_b0", 32, 1280),
    ("mobilenet_v3_small", 32, 1024), ("convnext_tiny", 32, 768), ("swin_t", 32, 768),
    ("vit_b_16", 224, 768),
])
def test_real_torchvision_classifiers(name, size, dim):
    torchvision = _import_or_skip("torchvision")
    with torch.random.fork_rng():
        model = getattr(torchvision.models, name)(weights=None)
    with torch.no_grad():
        z = from_torchvision(model)(torch.rand(1, 1, size, size))
    assert z.shape == (1, dim) and torch.isfinite(z).all()
    with torch.no_grad():  # the model kept its classifier
        assert model.eval()(torch.rand(1, 3, size, size)).shape == (1, 1000)


@pytest.mark.parametrize("name", ["resnet18", "vit_tiny_patch16_224", "convnext_atto"])
def test_real_timm_models(name):
    timm = _import_or_skip("timm")
    with torch.random.fork_rng():
        model = timm.create_model(name, pretrained=False, num_classes=3)
    x = torch.rand(1, 3, 224, 224)
    encoder = from_timm(model)
    with torch.no_grad():
        expected = model.eval().forward_head(model.forward_features(_normalised(
            x, model.pretrained_cfg["mean"], model.pretrained_cfg["std"])), pre_logits=True)
        torch.testing.assert_close(encoder(x), expected)
    assert expected.shape == (1, model.num_features)


def test_real_open_clip_model():
    open_clip = _import_or_skip("open_clip")
    with torch.random.fork_rng():
        model = open_clip.CLIP(
            embed_dim=8, vision_cfg={"layers": 1, "width": 32, "patch_size": 8,
                                     "image_size": 32, "head_width": 16},
            text_cfg={"context_length": 8, "vocab_size": 100, "width": 32, "heads": 2,
                      "layers": 1})
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        expected = model.eval().encode_image(_normalised(x, CLIP_MEAN, CLIP_STD))
        torch.testing.assert_close(from_open_clip(model)(x), expected)
