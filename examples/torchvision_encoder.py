"""Plug in a torchvision or timm backbone as the frozen encoder.

Any ``torch.nn.Module`` that maps a batch of images to a 2-D batch of embeddings works.
The adapters of ``fairnoise.encoders`` make one from a classification backbone:

1. they skip its classification layer, so that it returns embeddings
   (``from_torchvision``: the input of ``fc`` / ``classifier`` / ``heads``; ``from_timm``:
   timm's pooled pre-logits features);
2. they put its input normalisation into the module: fairnoise hands the encoder float
   images in [0, 1], and learns the edit in that space;
3. they repeat grayscale images over the three channels ImageNet models expect.

The adapter is a frozen view of your model: it shares the weights (no second copy) and
leaves your module as it was, in whatever mode and with whatever ``requires_grad`` flags
it had. On a GPU, wrap it in ``TorchEncoder(encoder, device="cuda", precision="bf16",
batch_size=256)``.

    python examples/torchvision_encoder.py --quick                 # random weights (CI)
    python examples/torchvision_encoder.py --weights pretrained    # downloads ImageNet weights

Needs torchvision or timm. Install them so that they keep the torch you have: torchvision
pinned with its torch (``pip install torch==2.13.0 torchvision==0.28.0``, from the index
your torch came from), timm without its dependencies (``pip install --no-deps
timm==1.0.31`` and ``pip install pyyaml huggingface_hub safetensors``); see
docs/encoders.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys

import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from fairnoise import DebiasedNoiseTransformer, TorchEncoder
from fairnoise.datasets import make_spurious_images
from fairnoise.encoders import from_timm, from_torchvision
from fairnoise.metrics import fairness_report, leakage_auc


def build_backbone(pretrained: bool) -> tuple[torch.nn.Module, torch.nn.Module, str]:
    """A ResNet-18 from torchvision or else timm, and its adapter as the encoder."""
    if importlib.util.find_spec("torchvision") is not None:
        import torchvision

        weights = torchvision.models.ResNet18_Weights.DEFAULT if pretrained else None
        model = torchvision.models.resnet18(weights=weights)
        return model, from_torchvision, "torchvision resnet18"  # N×3×H×W → N×512
    if importlib.util.find_spec("timm") is not None:
        import timm

        model = timm.create_model("resnet18", pretrained=pretrained)
        return model, from_timm, "timm resnet18"
    sys.exit("This example needs torchvision or timm; see its docstring for install lines "
             "that keep your torch.")


def main(quick: bool = False, pretrained: bool = False) -> None:
    backbone, adapter, name = build_backbone(pretrained)
    if not pretrained:  # random weights: seeded, so that the run is reproducible
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in backbone.parameters():
                if p.dim() > 1:
                    p.copy_(torch.randn(p.shape, generator=generator)
                            * (2.0 / p[0].numel()) ** 0.5)
    # left in train mode on purpose: the adapter's view is frozen, the backbone untouched
    encoder = adapter(backbone)
    print(f"encoder: {name} ({'ImageNet' if pretrained else 'random'} weights)")

    n, size = (120, 32) if quick else (1000, 64)
    train = make_spurious_images(n, image_size=size, n_channels=3, correlation=0.8,
                                 random_state=0)
    test = make_spurious_images(n, image_size=size, n_channels=3, correlation=0.0,
                                random_state=1)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    pipe = Pipeline([
        ("noise", DebiasedNoiseTransformer(
            TorchEncoder(encoder, device=device, batch_size=64),
            batch_size=32 if quick else 64, max_epochs=2 if quick else 20,
            random_state=0, verbose=1)),
        ("scale", StandardScaler()),
        ("clf", LogisticRegression(max_iter=2000)),
    ])
    pipe.fit(train.images, train.y, noise__sensitive_features=train.sensitive_features)

    dne = pipe.named_steps["noise"]
    Z_train, Z_test = dne.transform(train.images), dne.transform(test.images)
    proba = pipe[1:].predict_proba(Z_test)[:, 1]
    summary = fairness_report(test.y, proba, sensitive_features=test.sensitive_features).summary
    leak = leakage_auc(Z_train, train.sensitive_features, y=train.y, Z_test=Z_test,
                       sensitive_features_test=test.sensitive_features, y_test=test.y)
    print(f"embeddings: {Z_test.shape[1]} features; test task AUC "
          f"{summary['overall_auc']:.3f}, equalized-odds gap "
          f"{summary['equalized_odds_difference']:.3f}, conditional leakage {leak:.3f}")
    print(f"the module is as it was: training={backbone.training}, requires_grad="
          f"{next(backbone.parameters()).requires_grad}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run, for CI")
    parser.add_argument("--weights", choices=("random", "pretrained"), default="random",
                        help="random weights (no download) or the library's ImageNet "
                             "weights (downloaded on first use)")
    args = parser.parse_args()
    main(args.quick, args.weights == "pretrained")
