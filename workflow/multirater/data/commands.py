"""Commands of the data stage (workflow/rules/data.smk): synth, check, split, import, consensus.

The library names a bad setting by its name (``size``, ``val_fraction``); these handlers, the only
place that knows the command line, report it under its flag. Heavy libraries (scipy, PIL) are
imported inside the handlers so the CLI starts fast; the rater-model presets (numpy only) name the
choices of ``synth --preset``.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

from multirater.core.errors import UserError, UserErrors
from multirater.data.formats import IMPORT_FORMATS  # the format registry, a light module: --help stays fast
from multirater.data.manifest import COVERAGES
from multirater.data.synthetic.presets import DEFAULT_PRESET, PRESET_NAMES, SETTING_RANGES  # numpy only

RATER_STYLE_FLAG = "--rater-style"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``synth``, ``check``, ``split`` and ``import`` subcommands."""
    p = subparsers.add_parser("synth", help="write a synthetic multi-rater organoid dataset")
    p.add_argument("--out", required=True,
                   help="output folder (gets dataset.yaml, images/, rater*.json, consensus.json)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--images", type=int, default=80, help="multi-rater images (default 80)")
    p.add_argument("--consensus-images", type=int, default=20, help="consensus (test) images (default 20)")
    p.add_argument("--raters", type=int, default=2, help="number of raters (default 2)")
    p.add_argument("--size", type=int, default=256, help="image width and height in px (default 256)")
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESET_NAMES),
                   help=f"rater model (default {DEFAULT_PRESET}): biased = distinct systematic styles, small noise; "
                        "noisy = one style, disagreement from noise; classic = the original generator; graded = "
                        "from noise (--bias 0) to systematic thresholds (--bias 1) at one inter-rater agreement")
    p.add_argument("--bias", type=float, default=None,
                   help="the graded preset's bias in [0, 1] (required with it, refused with the others)")
    p.add_argument("--rater-coverage", choices=COVERAGES, default="complete",
                   help="complete (default): every rater labels every multi-rater image; partial: each image is "
                        "labelled by one rater (image k by rater k mod raters), as in MultiOrg")
    p.add_argument("--rater-test-labels", action="store_true",
                   help="also write each rater's labels of the consensus images as a test label set "
                        "<rater>_test (test_objects.csv records who labelled which object either way)")
    p.add_argument("--rater-style", action="append", default=[], metavar="RATER:KEY=VALUE[,KEY=VALUE...]",
                   help="override settings of one rater's style on top of the preset, e.g. "
                        "rater2:threshold=0.5,jitter=0.05 (repeatable; keys: " + ", ".join(SETTING_RANGES) + ")")
    p.add_argument("--repeat-images", type=int, default=0,
                   help="give every rater a second annotation pass on this many multi-rater images, for "
                        "intra-rater agreement (default 0)")
    p.add_argument("--labels", choices=("raters", "detector"), default="raters",
                   help="raters (default): the multi-rater dataset; detector: a base dataset for the pretrain job, "
                        "other images (a random stream of their own) labelled by the simulated pre-annotation "
                        "detector, one rater 'detector', no consensus images (only --seed, --images, --size apply)")
    p.set_defaults(func=_synth)

    p = subparsers.add_parser("check", help="validate a dataset manifest and report every problem")
    p.add_argument("--dataset", required=True, help="dataset.yaml")
    p.set_defaults(func=_check)

    p = subparsers.add_parser("split", help="train/validation/test split, stratified by object count")
    p.add_argument("--dataset", required=True, help="dataset.yaml")
    p.add_argument("--out", required=True, help="splits.json to write")
    p.add_argument("--val-fraction", type=float, default=0.1875,
                   help="share of multi-rater images for validation (default 0.1875 = 15/80)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.set_defaults(func=_split)

    p = subparsers.add_parser("import",
                              help=f"convert {' / '.join(IMPORT_FORMATS)} annotations into a dataset")
    p.add_argument("--format", required=True, choices=list(IMPORT_FORMATS))
    p.add_argument("--images", required=True,
                   help="folder of the images (PNG, TIFF, JPEG; nested folders too); multiorg without --labels: "
                        "the unpacked MultiOrg download, holding train/ and test/")
    p.add_argument("--labels", default=None,
                   help="annotations of the rater images (docs/own-data.md describes each format); multiorg: "
                        "leave out for the published layout, labels beside the images")
    p.add_argument("--consensus-labels", default=None, help="annotations of the consensus (test) images, same format")
    p.add_argument("--test-labels", default=None,
                   help="each rater's own annotations of the test images, in the layout of --labels (no consensus "
                        "needed): one test label set test_<rater> per rater; with no consensus the workflow "
                        "evaluates against their majority")
    p.add_argument("--out", required=True, help="new dataset folder (gets dataset.yaml and one COCO file per rater)")
    p.add_argument("--name", default=None, help="dataset name (default: the --out folder's name)")
    p.add_argument("--axes", choices=("rc", "xy"), default="rc",
                   help="napari-organoid-counter only: rc (default) reads x1/x2 as rows, as napari stores them; "
                        "xy as columns")
    p.add_argument("--majority", action="store_true",
                   help="also write the majority consensus of the test label sets, as the label set 'majority' "
                        "(see multirater consensus)")
    p.set_defaults(func=_import)

    p = subparsers.add_parser("consensus",
                              help="majority consensus of a dataset's test label sets (a COCO file, a new label set)")
    p.add_argument("--dataset", required=True, help="dataset.yaml")
    p.add_argument("--out", required=True, help="COCO file to write; list it under test_label_sets in the manifest")
    p.add_argument("--label-sets", nargs="+", default=None, metavar="NAME",
                   help="the label sets that vote (default: every original test label set: not 'consensus', nor a set "
                        "derived from others such as 'majority')")
    p.add_argument("--iou", type=float, default=0.5, help="IoU of the complete-linkage grouping (default 0.5)")
    p.set_defaults(func=_consensus)


@contextlib.contextmanager
def _settings_as_flags(*settings: str) -> Iterator[None]:
    """Report an error about one of ``settings`` (a library parameter name) under its flag."""
    flags = {name: "--" + name.replace("_", "-") for name in settings}

    def renamed(error: UserError) -> UserError:
        return UserError(error.problem, error.file, flags.get(error.item or "", error.item))

    try:
        yield
    except UserErrors as exc:
        raise UserErrors([renamed(e) for e in exc.errors]) from None
    except UserError as exc:
        raise renamed(exc) from None


def _synth(args: argparse.Namespace) -> int:
    from multirater.data.synthetic import generate, generate_base, rater_names

    if args.labels == "detector":
        with _settings_as_flags("images", "size"):
            manifest = generate_base(args.out, seed=args.seed, images=args.images, size=args.size)
        print(f"wrote {manifest}")
        return 0
    overrides = parse_rater_styles(args.rater_style, rater_names(max(args.raters, 0)))
    try:
        with _settings_as_flags("images", "consensus_images", "raters", "size", "preset", "repeat_images", "bias",
                                "rater_coverage"):
            manifest = generate(args.out, seed=args.seed, images=args.images, consensus_images=args.consensus_images,
                                raters=args.raters, size=args.size, preset=args.preset, rater_overrides=overrides,
                                repeat_images=args.repeat_images, bias=args.bias,
                                rater_coverage=args.rater_coverage, rater_test_labels=args.rater_test_labels)
    except UserError as exc:
        if not (exc.item or "").startswith("rater_styles"):
            raise
        # rater_styles[1].jitter -> --rater-style rater2: jitter
        index, _, key = (exc.item or "").removeprefix("rater_styles[").partition("].")
        raise UserError(exc.problem, exc.file, f"{RATER_STYLE_FLAG} rater{int(index) + 1}: {key}") from None
    print(f"wrote {manifest}")
    return 0


def parse_rater_styles(values: list[str], raters: list[str]) -> list[dict[str, float]] | None:
    """``--rater-style RATER:KEY=VALUE,...`` values as per-rater overrides, one dict per rater (None: none)."""
    if not values:
        return None
    overrides: list[dict[str, float]] = [{} for _ in raters]
    for value in values:
        rater, sep, settings = value.partition(":")
        if not sep or rater not in raters:
            raise UserError(f"expected RATER:KEY=VALUE[,KEY=VALUE...] with RATER one of {', '.join(raters)}, "
                            f"got {value!r}", None, RATER_STYLE_FLAG)
        for setting in settings.split(","):
            key, sep, number = (part.strip() for part in setting.partition("="))
            try:
                overrides[raters.index(rater)][key] = float(number)
            except ValueError:
                raise UserError(f"expected KEY=NUMBER, got {setting!r} in {value!r}", None, RATER_STYLE_FLAG) from None
    return overrides


def synthetic_flags(synthetic: dict) -> str:
    """The ``multirater synth`` flags of a config's ``dataset.synthetic`` settings that are not the defaults
    (bias, coverage, rater test labels, per-rater overrides), for the synth rule's shell command."""
    flags = [] if synthetic.get("bias") is None else [f"--bias {synthetic['bias']!r}"]
    if synthetic.get("rater_coverage", "complete") != "complete":
        flags.append(f"--rater-coverage {synthetic['rater_coverage']}")
    if synthetic.get("rater_test_labels"):
        flags.append("--rater-test-labels")
    styles = rater_style_flags(synthetic.get("rater_styles"))
    return " ".join(flags + ([styles] if styles else []))


def rater_style_flags(overrides: list[dict[str, float] | None] | None) -> str:
    """The ``--rater-style`` flags of per-rater overrides (a config's ``dataset.synthetic.rater_styles``),
    for a workflow rule's shell command; empty when there are none."""
    flags = []
    for k, override in enumerate(overrides or []):
        if override:
            settings = ",".join(f"{key}={value!r}" for key, value in override.items())
            flags.append(f"{RATER_STYLE_FLAG} rater{k + 1}:{settings}")
    return " ".join(flags)


def _check(args: argparse.Namespace) -> int:
    from multirater.data.dataset import load_dataset
    from multirater.data.validation import check_images

    dataset = load_dataset(args.dataset)
    check_images(dataset.images).raise_if_any()
    n_ann = {s: len(dataset.coco(s)["annotations"]) for s in dataset.sources}
    repeats = [f"{r} {len(dataset.repeat_image_ids(r))} images" for r in dataset.repeated_raters]
    raters = [f"{r} {len(dataset.rater_image_ids(r))}" for r in dataset.rater_names]
    label_sets = [f"{s} {len(dataset.label_set_image_ids(s))}" for s in dataset.label_sets]
    print(
        f"{args.dataset}: ok: {len(dataset.rater_image_ids)} multi-rater images, "
        f"{len(dataset.consensus_image_ids)} consensus images, "
        + ", ".join(f"{s} {n} boxes" for s, n in n_ann.items())
        + (f"; second passes: {', '.join(repeats)}" if repeats else "")
        # only for datasets beyond the classic design (every rater on every image, one consensus)
        + (f"; images per rater: {', '.join(raters)}" if dataset.rater_coverage == "partial" else "")
        + (f"; test images per label set: {', '.join(label_sets)}"
           if dataset.label_sets not in ([], ["consensus"]) else "")
    )
    return 0


def _split(args: argparse.Namespace) -> int:
    from multirater.core.files import write_json
    from multirater.data.dataset import load_dataset
    from multirater.data.splits import make_splits

    dataset = load_dataset(args.dataset)
    with _settings_as_flags("val_fraction"):
        splits = make_splits(dataset, val_fraction=args.val_fraction, seed=args.seed)
    write_json(args.out, splits, indent=None)
    print(f"wrote {args.out}: {len(splits['train'])} train, {len(splits['val'])} val, {len(splits['test'])} test")
    return 0


def _import(args: argparse.Namespace) -> int:
    from multirater.data.importers import import_dataset

    with _settings_as_flags("format", "images", "labels", "consensus_labels", "axes", "test_labels"):
        imported = import_dataset(args.format, args.images, args.labels, args.out, args.consensus_labels, args.name,
                                  args.axes, args.majority, args.test_labels)
    for line in imported.found:
        print(f"found: {line}")
    print(f"wrote {imported.manifest}")
    return 0


def _consensus(args: argparse.Namespace) -> int:
    from multirater.core.files import write_json
    from multirater.data.consensus import derived_label_sets, majority_consensus
    from multirater.data.dataset import load_dataset

    if not 0.0 < args.iou <= 1.0:
        raise UserError(f"must lie in (0, 1], got {args.iou}", None, "--iou")
    dataset = load_dataset(args.dataset)
    sets = dataset.label_sets
    for name in args.label_sets or []:
        if name not in sets:
            known = ", ".join(sets) or "none"
            raise UserError(f"{name!r} is not a test label set of this manifest (label sets: {known})", args.dataset,
                            "--label-sets")
    derived = derived_label_sets({name: dataset.coco(name) for name in sets})
    if args.label_sets is None:  # the original label sets: never the joint consensus, never a derived set
        names = [s for s in sets if s != "consensus" and s not in derived]
        if len(names) < 2:
            skipped = [s for s in sets if s not in names]
            raise UserError(f"a majority needs at least 2 original test label sets, this manifest has "
                            f"{len(names)} ({', '.join(names) or 'none'}"
                            + (f"; not voting: {', '.join(skipped)}" if skipped else "") + "): name them with",
                            args.dataset, "--label-sets")
    else:
        names = list(args.label_sets)
        for name in names:
            if name in derived:
                sources = f" from {', '.join(derived[name])}" if derived[name] else ""
                raise UserError(f"{name!r} is derived{sources} (a majority consensus), not an original label set: "
                                "it cannot vote", args.dataset, "--label-sets")
        if len(names) < 2:
            raise UserError(f"a majority needs at least 2 label sets, got {len(names)} ({', '.join(names)})",
                            args.dataset, "--label-sets")
    coco = majority_consensus({name: dataset.coco(name) for name in names}, iou=args.iou)
    write_json(args.out, coco, indent=None)
    print(f"wrote {args.out}: majority of {', '.join(names)} at IoU {args.iou:g}: {len(coco['images'])} images, "
          f"{len(coco['annotations'])} boxes")
    return 0
