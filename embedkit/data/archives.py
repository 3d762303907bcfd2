"""Image trees read straight from a .tar.gz, without extracting: the same rows as the folder it was made from.

Two streaming passes: the first reads member headers only (names, sizes, links), the second decodes the members that
images resolve to, a chunk at a time, so memory is the decoded pixels plus one chunk of files, whatever the archive
declares. Hard and symbolic links resolve as the file system resolves them in the extracted folder.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from embedkit._util.progress import ProgressFn
from embedkit.data.images import (
    Entry,
    check_file_size,
    decode_all,
    is_image_path,
    shown,
    split_tree,
    stack_images,
)
from embedkit.data.tar import Member, iter_tar_members
from embedkit.errors import DataError

_MAX_DEPTH = 4  # top folder / split / class / file
_MAX_LINK_HOPS = 40  # as Linux's symlink limit


@dataclass(frozen=True)
class ArchiveListing:
    """A .tar.gz's image tree from its headers: the top folder, split -> entries, and each image path -> the regular
    member holding its bytes (links resolved)."""

    top: str
    tree: dict[str, list[Entry]]
    holder: dict[str, str]


def read_archive_tree(path: Path, on_progress: ProgressFn | None = None) -> dict[str, tuple[list[Entry], np.ndarray]]:
    """Decode every split of a .tar.gz tree without extracting: split -> (entries, (N,H,W,3) uint8).

    A single top folder shared by every image (`tar czf pets.tar.gz pets/`) is the tree's root. Links resolve as in
    the folder the archive was made from (see `archive_links`). Two streaming passes (list, then decode the
    members that images resolve to, a chunk at a time) keep memory to the decoded pixels plus one chunk of files.
    Progress counts the images decoded, over all splits.
    """
    listing = list_archive(path)
    images = decode_archive_entries(path, listing, listing.tree, on_progress)
    return {split: (entries, images[split]) for split, entries in listing.tree.items()}


def decode_archive_entries(
    path: Path, listing: ArchiveListing, wanted: dict[str, list[Entry]], on_progress: ProgressFn | None = None
) -> dict[str, np.ndarray]:
    """Decode only the `wanted` entries of a listed archive (one streaming pass): split -> (N,H,W,3) uint8 in the
    entries' order. Members no wanted image resolves to are skipped unread; progress counts images decoded."""
    names = {split: [listing.top + rel for _, _, rel in entries] for split, entries in wanted.items()}
    needed = {listing.holder[name] for split_names in names.values() for name in split_names}
    items = (
        (member.name, body, f"{path}:{member.name}")
        for member, body in _archive_members(path, lambda m: m.kind == "file" and m.name in needed)
        if body is not None
    )
    decoded = decode_all(items, len(needed), on_progress)
    if needed - decoded.keys():  # the second pass read another archive than the first
        raise DataError(f"{path}: changed while it was read ({shown(min(needed - decoded.keys()))} vanished)")
    return {
        split: stack_images(
            [decoded[listing.holder[name]] for name in in_split], [f"{path}:{name}" for name in in_split]
        )
        for split, in_split in names.items()
    }


def list_archive_tree(path: Path) -> dict[str, list[Entry]]:
    """The image tree of a .tar.gz from its member headers only (nothing decoded, bodies skipped)."""
    return list_archive(path).tree


def list_archive(path: Path) -> ArchiveListing:
    """One pass over the member headers (bodies skipped): the tree and where each image's bytes are."""
    members = {}
    for member, _ in _archive_members(path):
        if member.kind == "file" and is_image_path(member.name):  # refused before its body is even skipped
            check_file_size(member.size, f"{path}:{shown(member.name)}")
        members[member.name] = member
    holder = archive_links(members, str(path))
    top = _common_top(holder)
    tree = split_tree((name[len(top) :] for name in holder), str(path))
    for name in holder.values():
        check_file_size(members[name].size, f"{path}:{name}")
    return ArchiveListing(top, tree, holder)


def _archive_members(path: Path, keep=lambda member: False) -> Iterator[tuple[Member, bytes | None]]:
    """Stream the members of a .tar.gz (see `iter_tar_members`); gzip errors become DataError naming the file."""
    try:
        with gzip.open(path) as gz, io.BufferedReader(gz, 1 << 20) as stream:  # C-level reads of each header
            for member, body in iter_tar_members(stream, str(path), keep):
                yield replace(member, name=_member_name(member.name)), body
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: corrupt or truncated .tar.gz ({exc})") from None


def archive_links(members: dict[str, Member], where: str) -> dict[str, str]:
    """Each image path a folder extracted from the archive would list -> the regular member whose bytes it has.

    Hard links name an earlier member; symbolic links resolve as the file system would (relative to the link's
    folder, through linked folders). A link to outside the archive, to nothing, to a non-file or in a loop is an
    error naming it, never a silently missing row; devices and FIFOs named as images are refused the same way.
    """
    folders = {name.rsplit("/", i)[0] for name in members for i in range(1, name.count("/") + 1)}
    folders |= {name for name, m in members.items() if m.kind == "dir"}
    visible = {name for name, m in members.items() if m.kind != "dir"}
    for _ in range(_MAX_DEPTH):  # linked folders show their target's files under the link's name
        added = set()
        for name, m in members.items():
            if m.kind == "symlink" and name.count("/") < _MAX_DEPTH - 1:
                target = _resolve(members, name, where)
                if target in folders:
                    added |= {
                        f"{name}/{other[len(target) + 1 :]}"
                        for other in visible
                        if other.startswith(target + "/") and other.count("/") < _MAX_DEPTH
                    }
        if added <= visible:
            break
        visible |= added
    holder = {}
    for name in sorted(visible):
        if is_image_path(name):
            target = _resolve(members, name, where)
            if members.get(target) is None or members[target].kind != "file":
                kind = "a folder" if target in folders else (members[target].kind if target in members else "nothing")
                raise DataError(f"{where}:{shown(name)}: resolves to {kind}, not an image file in the archive")
            holder[name] = target
    return holder


def _resolve(members: dict[str, Member], name: str, where: str, hops: int = 0) -> str:
    """The archive path `name` points to after every symbolic and hard link on the way."""
    if hops > _MAX_LINK_HOPS:
        raise DataError(f"{where}:{shown(name)}: too many levels of links (a loop)")
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise DataError(f"{where}:{shown(name)}: a link leads outside the archive")
            parts.pop()
            continue
        parts.append(part)
        here = "/".join(parts)
        member = members.get(here)
        if member is not None and member.kind == "symlink":
            if member.target.startswith("/"):
                raise DataError(f"{where}:{shown(here)}: links to {shown(member.target)}, outside the archive")
            parts = _resolve(members, "/".join(parts[:-1] + [member.target]), where, hops + 1).split("/")
    resolved = "/".join(parts)
    member = members.get(resolved)
    if member is not None and member.kind == "hardlink":  # names the member, from the archive's root
        return _resolve(members, _member_name(member.target), where, hops + 1)
    return resolved


def _member_name(name: str) -> str:
    return (name.removeprefix("./")).rstrip("/")


def _common_top(names: Iterable[str]) -> str:
    """`'top/'` when every name sits in the same top folder, else `''`."""
    tops = {name.split("/", 1)[0] if "/" in name else "" for name in names}
    return f"{tops.pop()}/" if len(tops) == 1 and "" not in tops else ""
