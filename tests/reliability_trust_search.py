"""Issue 14's bad inputs, exact answers on any data: offsets, ties, self-exclusion, extreme values.

`CASES` join the reliability suite's (same contract: one error line naming the culprit, exit 1, no file changed);
`world_files` adds the files they need to the shared test world and returns their `{name}` placeholders.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
from reliability_case import C, Case

# A row longer than sqrt(float32 max) / 2 (about 9.2e18) cannot be searched: its squared distances overflow float32.
# Refused where it would be written, and where a store holding one (written behind its back) is read.
CASES: list[Case] = [
    C("add-row-too-long", "add", "{store}", "-g", "m/x", "--embeddings", "{npy_row_1e19}", names="row 5"),
    C(
        "add-row-too-long-new-store",
        "add",
        "{root}/new.h5",
        "-g",
        "m/x",
        "--embeddings",
        "{npy_row_1e19}",
        names="row 5",
    ),
    C("add-row-norm-too-long", "add", "{store}", "-g", "m/x", "--embeddings", "{npy_row_norm_1e19}", names="row 2"),
    C(
        "neighbors-query-group-row-too-long",
        "neighbors",
        "{store_long_row}",
        "-g",
        "toy/test",
        "--query-group",
        "toy/train",
        "-k",
        "2",
        names="row 7",
    ),
    C(
        "neighbors-ids-row-too-long",
        "neighbors",
        "{store_long_row}",
        "-g",
        "toy/train",
        "--ids",
        "7",
        "-k",
        "2",
        names="row 7",
    ),
    # a scored group that is the reference leaves each row out of its own neighbours: at most N - 1 of them
    C(
        "anomaly-leave-one-out-k-too-large",
        "anomaly",
        "{store}",
        "--reference",
        "toy/train",
        "--normal",
        "toy/train",
        "--ood",
        "toy/ood",
        "-k",
        "40",
        "--out",
        "{root}/out",
        names="k=40",
    ),
    C(
        "probe-leave-one-out-single-row",
        "probe",
        "{store_one_row}",
        "--train",
        "one/x",
        "--test",
        "one/x",
        names="at least 2",
    ),
    # every reader of toy/train (as reliability_cases.STORE_READERS) on the store holding such a row
    *(
        C(f"{args[0]}-store-long-row", *args, names="row 7")
        for args in (
            ("info", "{store_long_row}"),
            ("neighbors", "{store_long_row}", "-g", "toy/train", "-k", "2"),
            ("pairs", "{store_long_row}", "-g", "toy/train", "-k", "2", "--out", "{root}/out/pairs.h5"),
            ("probe", "{store_long_row}", "--train", "toy/train", "--test", "toy/test"),
            ("retrieve", "{store_long_row}", "-g", "toy/train", "-k", "2", "--out", "{root}/out"),
            (
                "anomaly",
                "{store_long_row}",
                "--reference",
                "toy/train",
                "--normal",
                "toy/test",
                "--ood",
                "toy/ood",
                "-k",
                "2",
                "--out",
                "{root}/out",
            ),
            ("cluster", "{store_long_row}", "-g", "toy/train", "-k", "3", "--map", "pca", "--out", "{root}/out"),
        )
    ),
]


def world_files(root: Path, rng: np.random.Generator, paths: dict[str, str]) -> dict[str, str]:
    """A copy of the good store with row 7 of toy/train at 1e19 (written with h5py, behind the store's back), a
    store whose group has one row, and .npy files with a value of 1e19 or a row of norm 1.4e19."""
    from embedkit.store.store import open_store

    long_row = root / "long-row.h5"
    shutil.copy(paths["store"], long_row)
    with h5py.File(long_row, "r+") as h5:
        h5["toy/train/embeddings"][7] = [1e19, 0, 0, 0]
    one_row = root / "one-row.h5"
    open_store(one_row, create=True).write_group("one/x", np.ones((1, 4), np.float32), np.zeros(1, np.int64))
    x = rng.normal(size=(30, 4)).astype(np.float32)
    files = {"row-1e19": x.copy(), "row-norm-1e19": x.copy()}
    files["row-1e19"][5, 1] = 1e19
    files["row-norm-1e19"][2] = 7e18  # every value fits float32 comfortably; the row's norm (1.4e19) does not
    out = {"store:long-row": str(long_row), "store:one-row": str(one_row)}
    for name, array in files.items():
        np.save(root / f"{name}.npy", array)
        out[f"npy:{name}"] = str(root / f"{name}.npy")
    return out
