"""Issue 14's bad inputs, image sources: links, bombs, endless reads, crafted tar headers, pickles.

`CASES` join the reliability suite's (same contract: one error line naming the culprit, exit 1, no file changed);
`world_files` adds the files they need to the shared test world and returns their `{name}` placeholders. Files that
no checksum may read (a FIFO, a link to /dev/zero) live beside the world, under `specials/`.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
from reliability_case import C, Case


def _encode(dataset: str, split: str = "train") -> tuple[str, ...]:
    return ("encode", "{ckpt}", "--dataset", dataset, "--split", split, "--out", "{root}/out/enc.h5", "--device", "cpu")


CASES: list[Case] = [
    # crafted tar headers: each once hung, looped forever or raised a traceback
    C("encode-tar-pax-record-length-zero", *_encode("{td_tar_pax0}"), names="pax0.tar.gz"),
    C("encode-tar-negative-size", *_encode("{td_tar_negsize}"), names="negsize.tar.gz"),
    C("encode-tar-pax-size-not-a-number", *_encode("{td_tar_paxsize}"), names="paxsize.tar.gz"),
    C(
        "data-prepare-tar-pax-record-length-zero",
        "data",
        "--data-root",
        "{td_root_pax0}",
        "--prepare",
        names="cifar10.tar.gz",
    ),
    # bombs and endless reads
    C("encode-png-declaring-16000x16000", *_encode("{td_pngbomb}"), names="0.png"),
    C("encode-png-larger-than-the-first", *_encode("{td_pngbigger}"), names="1.png"),
    C("encode-image-is-a-fifo", *_encode("{td_fifo}"), names="0.png"),
    C("encode-image-links-to-dev-zero", *_encode("{td_devzero}"), names="0.png"),
    C("encode-tar-link-leaves-the-archive", *_encode("{td_tar_outside}"), names="0.png"),
    C("encode-tar-link-to-nothing", *_encode("{td_tar_dangling}"), names="1.png"),
    # names and pixels that were tracebacks
    C("encode-folder-name-not-utf8", *_encode("{td_nonutf8}"), names="\\xff"),
    C("encode-tar-name-not-utf8", *_encode("{td_tar_nonutf8}"), names="\\xff"),
    # pickles under the data root are never run
    C(
        "encode-cifar-batches-meta-pickle-runs-code",
        *_encode("cifar10"),
        "--data-root",
        "{td_root_pickle}",
        names="batches.meta",
    ),
]


# ---------------------------------------------------------------- builders, shared with test_trust_data.py


def png_bytes(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A small, valid-looking PNG whose header declares width x height RGB pixels (a decompression bomb's head)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + chunk(b"IEND", b"")
    )


def tar_bytes(members: list[tarfile.TarInfo | tuple[str, bytes]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """An uncompressed tar of (name, bytes) files and ready TarInfos (links, folders)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tar.addfile(info, io.BytesIO(member[1]))
    return buffer.getvalue()


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def with_checksum(header: bytearray) -> bytearray:
    """Recompute a tar header's checksum after editing it, so only the edited field is wrong."""
    header[148:156] = b" " * 8
    header[148:155] = f"{sum(header):06o}\0".encode()
    return header


def crafted_tars(pixels: bytes) -> dict[str, bytes]:
    """Uncompressed tars whose headers are each broken in one way the issue found."""
    good = tar_bytes([("train/a/0.png", pixels)], tarfile.USTAR_FORMAT)
    pax = tar_bytes([tarfile.TarInfo("train/a/" + "x" * 120 + ".png")] + [("train/a/0.png", pixels)])
    start = pax.index(b" path=") - 3  # the record length digits of the long name's path record
    pax0 = bytearray(pax)
    pax0[start : start + 3] = b"000"
    negsize = bytearray(good)
    negsize[124:136] = b"\xff" + (-1536).to_bytes(11, "big", signed=True)
    badoctal = bytearray(good)
    badoctal[124:136] = b"00000000abc\0"
    paxsize = tarfile.TarInfo("train/a/0.png")
    paxsize.size, paxsize.pax_headers = len(pixels), {"size": "abc"}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(paxsize, io.BytesIO(pixels))
    return {
        "pax0": bytes(pax0),
        "negsize": bytes(with_checksum(negsize[:512])) + good[512:],
        "badoctal": bytes(with_checksum(badoctal[:512])) + good[512:],
        "paxsize": buffer.getvalue(),
    }


def write_huge_member_tar(path: Path, size: int) -> Path:
    """A .tar.gz whose one image member holds `size` bytes of zeros (more than any allowed image needs), written in
    chunks so the test itself never holds it."""
    info = tarfile.TarInfo("train/a/0.png")
    info.size = size
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(info.tobuf(tarfile.GNU_FORMAT))
        for _ in range(size >> 20):
            f.write(bytes(1 << 20))
        f.write(bytes(size % (1 << 20) + 1024 + -size % 512))
    return path


def evil_pickle(marker: Path) -> bytes:
    """A pickle that, unpickled, writes `marker`: what a hostile batches.meta does."""

    class Evil:
        def __reduce__(self):
            return (Path.write_text, (marker, "unpickled"))

    return pickle.dumps({"label_names": ["a"], "x": Evil()})


def folder(root: Path, files: dict[str, bytes]) -> Path:
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(content)
    return root


def world_files(root: Path, rng: np.random.Generator, paths: dict[str, str]) -> dict[str, str]:
    base = root / "trust-data"
    base.mkdir()
    pixels = png_bytes(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    out = {}
    for name, raw in crafted_tars(pixels).items():
        if name == "badoctal":  # refused before this issue too: test_trust_data's crafted-header test keeps it
            continue
        out[f"td:tar-{name}"] = str(base / f"{name}.tar.gz")
        (base / f"{name}.tar.gz").write_bytes(gzip.compress(raw, 1))
    (base / "root-pax0").mkdir()
    (base / "root-pax0" / "cifar10.tar.gz").write_bytes(gzip.compress(crafted_tars(pixels)["pax0"], 1))
    out["td:root-pax0"] = str(base / "root-pax0")
    out["td:pngbomb"] = str(folder(base / "pngbomb", {"train/a/0.png": png_declaring(16000, 16000)}))
    out["td:pngbigger"] = str(
        folder(base / "pngbigger", {"train/a/0.png": pixels, "train/a/1.png": png_declaring(8000, 8000)})
    )
    out["td:nonutf8"] = str(folder(base / "nonutf8", {"train/a/0.png": pixels, "train/b\udcff/0.png": pixels}))
    nonutf8 = io.BytesIO()
    with tarfile.open(
        fileobj=nonutf8, mode="w:gz", format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape"
    ) as tar:
        for name in ("train/a/0.png", "train/b\udcff/0.png"):
            info = tarfile.TarInfo(name)
            info.size = len(pixels)
            tar.addfile(info, io.BytesIO(pixels))
    (base / "nonutf8.tar.gz").write_bytes(nonutf8.getvalue())
    out["td:tar-nonutf8"] = str(base / "nonutf8.tar.gz")
    for name, member in (
        ("outside", link("train/a/0.png", "/etc/hostname")),
        ("dangling", link("train/a/1.png", "nothing.png")),
    ):
        raw = tar_bytes([("train/b/0.png", pixels), member])
        (base / f"link-{name}.tar.gz").write_bytes(gzip.compress(raw, 1))
        out[f"td:tar-{name}"] = str(base / f"link-{name}.tar.gz")
    meta = base / "root-pickle" / "cifar-10-batches-py"
    meta.mkdir(parents=True)
    for batch in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"):
        (meta / batch).write_bytes(b"")
    (meta / "batches.meta").write_bytes(evil_pickle(root.parent / "specials-unpickled.txt"))
    out["td:root-pickle"] = str(base / "root-pickle")
    specials = root.parent / "specials"  # outside the world: no checksum may read these
    specials.mkdir()
    for name in ("fifo", "devzero"):
        (specials / name / "train" / "a").mkdir(parents=True)
    os.mkfifo(specials / "fifo" / "train" / "a" / "0.png")
    os.symlink("/dev/zero", specials / "devzero" / "train" / "a" / "0.png")
    out.update({f"td:{name}": str(specials / name) for name in ("fifo", "devzero")})
    return out
