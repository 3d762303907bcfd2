"""Issue 14's bad inputs, failure reported as success, and the tracebacks left on odd options.

`CASES` join the reliability suite's (same contract: one error line naming the culprit, exit 1, no file changed);
`world_files` adds the files they need to the shared test world and returns their `{name}` placeholders.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from reliability_case import C, Case

OUT = ("--out", "{root}/out")
TRAIN = ("train", "--dataset", "{imgs}", "--epochs", "1", "--run-dir", "{root}/out/run", "--device", "cpu")
READERS_OF_D0 = {  # every command that reads a group, on groups rewritten with D = 0
    "info": ("info", "{store_d0}"),
    "neighbors": ("neighbors", "{store_d0}", "-g", "toy/train", "-k", "2"),
    "pairs": ("pairs", "{store_d0}", "-g", "toy/train", "-k", "2", "--out", "{root}/out/p.h5"),
    "probe": ("probe", "{store_d0}", "--train", "toy/train", "--test", "toy/test"),
    "retrieve": ("retrieve", "{store_d0}", "-g", "toy/train", "-k", "2", *OUT),
    "anomaly": ("anomaly", "{store_d0}", "--reference", "toy/train", "--normal", "toy/test", "--ood", "toy/ood", *OUT),
    "cluster": ("cluster", "{store_d0}", "-g", "toy/train", "-k", "3", "--map", "pca", *OUT),
    "plot-map": ("plot", "map", "{store_d0}", "-g", "toy/train", *OUT),
}

CASES: list[Case] = [
    # ---- item 6: a failure that used to exit 0
    *[
        C(f"train-{flag}-{value}", *TRAIN, f"--{flag}", value, names=f"{flag.replace('-', '_')} {value}")
        for flag, value in (
            ("lr", "inf"),
            ("lam", "inf"),
            ("mu", "nan"),
            ("nu", "-inf"),
            ("weight-decay", "nan"),
            ("warmup-epochs", "inf"),
        )
    ],
    C(
        "train-latent-lr-nan",
        "train",
        "--latent",
        "--source-store",
        "{cifar_store}",
        "--lr",
        "nan",
        "--out",
        "{root}/out/l.h5",
        names="lr nan",
    ),
    C(
        "encode-batch-size-negative",
        "encode",
        "{ckpt}",
        "--dataset",
        "{imgs}",
        "--split",
        "test",
        "--out",
        "{root}/out/s.h5",
        "--device",
        "cpu",
        "--batch-size",
        "-3",
        names="--batch-size",
    ),
    C("train-positives-made-on-the-test-split", *TRAIN, "--positives", "{pairs_imgs_test}", names="pairs-imgs-test.h5"),
    C("compare-k-anomaly-zero", "compare", "{cifar_store}", "--k-anomaly", "0", "--device", "cpu", names="--k-anomaly"),
    # ---- item 13: option values that crashed with a traceback
    *[
        C(f"{name}-seed-{label}", *args, "--seed", seed, names="--seed")
        for name, args in (
            ("plot-map", ("plot", "map", "{store}", "-g", "toy/train", *OUT)),
            ("cluster", ("cluster", "{store}", "-g", "toy/train", "-k", "3", "--map", "pca", *OUT)),
            ("retrieve", ("retrieve", "{store}", "-g", "toy/train", "-k", "2", *OUT)),
            ("train", TRAIN),
            (
                "laplacian",
                (
                    "baseline",
                    "laplacian",
                    "--dataset",
                    "{imgs}",
                    "--dim",
                    "2",
                    "--k",
                    "3",
                    "--pca-dim",
                    "0",
                    "--out",
                    "{root}/out/l.h5",
                ),
            ),
        )
        for label, seed in (("negative", "-1"), ("beyond-32-bits", "4294967296"))
    ],
    C(
        "plot-map-max-points-negative",
        "plot",
        "map",
        "{store}",
        "-g",
        "toy/train",
        "--max-points",
        "-5",
        *OUT,
        names="--max-points",
    ),
    C(
        "cluster-max-points-zero",
        "cluster",
        "{store}",
        "-g",
        "toy/train",
        "-k",
        "3",
        "--map",
        "pca",
        "--max-points",
        "0",
        *OUT,
        names="--max-points",
    ),
    *[
        C(
            f"anomaly-top-{top}",
            "anomaly",
            "{store}",
            "--reference",
            "toy/train",
            "--normal",
            "toy/test",
            "--ood",
            "toy/ood",
            "--top",
            top,
            *OUT,
            names="--top",
        )
        for top in ("0", "-2")
    ],
    C(
        "encode-batch-size-zero",
        "encode",
        "{ckpt}",
        "--dataset",
        "{imgs}",
        "--split",
        "test",
        "--out",
        "{root}/out/s.h5",
        "--device",
        "cpu",
        "--batch-size",
        "0",
        names="--batch-size",
    ),
    C("neighbors-limit-negative", "neighbors", "{store}", "-g", "toy/train", "--limit", "-1", names="--limit"),
    C(
        "neighbors-ids-23-digits",
        "neighbors",
        "{store}",
        "-g",
        "toy/train",
        "--ids",
        "1,12345678901234567890123",
        names="12345678901234567890123",
    ),
    *[C(f"{command}-group-of-dimension-zero", *args, names="D=0") for command, args in READERS_OF_D0.items()],
    # Rich markup in user text: printed verbatim, never read as styles (the '[/]' one crashed the error handler)
    C("neighbors-group-with-closing-tag", "neighbors", "{store}", "-g", "a[/]b", names="'a[/]b'"),
    C("neighbors-group-with-style-tag", "neighbors", "{store}", "-g", "[red]x", names="'[red]x'"),
    C("info-path-with-markup", "info", "{root}/[bold]nothing[/].h5", names="[bold]nothing[/].h5"),
    C(
        "add-embeddings-path-with-markup",
        "add",
        "{store}",
        "-g",
        "m/x",
        "--embeddings",
        "{root}/[/]x.npy",
        names="[/]x.npy",
    ),
    # typer/click usage errors keep the one-line contract too
    C("neighbors-k-not-a-number", "neighbors", "{store}", "-g", "toy/train", "-k", "abc", names="--k"),
    C("unknown-command", "neighbours", names="neighbours"),
    C("unknown-option", "plot", "map", "{store}", "--colour", "red", names="--colour"),
]


def world_files(root: Path, rng: np.random.Generator, paths: dict[str, str]) -> dict[str, str]:
    """A store whose toy/train, toy/test and toy/ood have D = 0 (h5py can write one; `add` refuses to), and a pairs
    file made on the image folder's test split (for training on its train split)."""
    import h5py

    from embedkit.search.index import make_pairs

    d0 = root / "store-d0.h5"
    shutil.copy(paths["store"], d0)
    with h5py.File(d0, "r+") as h5:
        for group in ("toy/train", "toy/test", "toy/ood"):  # all of them, so no dimension mismatch hides D = 0
            n = len(h5[f"{group}/ids"])
            del h5[f"{group}/embeddings"]
            h5[f"{group}/embeddings"] = np.zeros((n, 0), np.float32)
    pairs = make_pairs(paths["imgs-store"], "imgs/test", 2, root / "pairs-imgs-test.h5")
    return {"store:d0": str(d0), "pairs-imgs-test": str(pairs)}
