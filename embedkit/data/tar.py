"""Stream the members of an uncompressed tar archive, fast and strictly, in bounded memory.

`tarfile` spends ~50 us of Python per member building a TarInfo (a 60,000-image archive: 1.9 s against 0.5 s here,
measured on CIFAR-10's .tar.gz). This reader only takes what decoding needs (name, kind, size, link target) and
understands the formats tools write: POSIX ustar (name prefix), GNU (long names and link names), pax (extended
path, linkpath and size records). It is as strict as `tarfile` where that matters for trust: a header whose checksum,
numbers or pax records do not parse is an error, sizes are never negative, so every read moves forward and ends.
Bodies are read only for the members the caller keeps; the rest are skipped in bounded chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from embedkit.errors import DataError

BLOCK = 512
MAX_META_BYTES = 1 << 20  # a pax or GNU long-name header holds a few names: far below this
_SKIP_CHUNK = 1 << 20
_KINDS = {
    b"0": "file",
    b"\0": "file",
    b"7": "file",
    b"1": "hardlink",
    b"2": "symlink",
    b"5": "dir",
    b"3": "device",
    b"4": "device",
    b"6": "fifo",
}  # other flags: unknown, their body skipped as tar does


@dataclass(frozen=True)
class Member:
    """One archive entry: kind is file, hardlink, symlink, dir, device, fifo or other; `target` is a link's."""

    name: str
    kind: str
    size: int
    target: str = ""


def iter_tar_members(
    stream: BinaryIO, where: str = "archive", keep: Callable[[Member], bool] = lambda member: False
) -> Iterator[tuple[Member, bytes | None]]:
    """Yield (member, body) for every entry but pax and GNU meta headers; body is read only when `keep(member)`.

    DataError naming `where` for a corrupt or truncated archive.
    """
    long_name = long_link = None
    pax: dict[str, str] = {}
    offset = 0
    while True:
        header = stream.read(BLOCK)
        if not header.strip(b"\0"):
            return  # the end-of-archive marker (or the end of the data, as tar itself accepts)
        if len(header) < BLOCK:
            raise DataError(f"{where}: truncated tar archive (ends inside the header at byte {offset})")
        if sum(header) - sum(header[148:156]) + 8 * 32 != _number(header[148:156], where, offset):
            raise DataError(f"{where}: corrupt tar header at byte {offset} (checksum mismatch)")
        flag, size = header[156:157], _number(header[124:136], where, offset)
        if flag in (b"L", b"K", b"x", b"g"):
            if size > MAX_META_BYTES:
                raise DataError(f"{where}: corrupt tar header at byte {offset} ({size}-byte name or pax header)")
            body = _read_body(stream, size, where, offset)
            _skip(stream, _padding(size), where, offset)
            if flag == b"L":
                long_name = _text(body.rstrip(b"\0"))
            elif flag == b"K":
                long_link = _text(body.rstrip(b"\0"))
            elif flag == b"x":
                pax = _pax_records(body, where, offset)
            # a global pax header ("g") sets defaults we do not need
        else:
            kind = _KINDS.get(flag, "other")
            if kind == "file" and "size" in pax:
                size = _pax_size(pax["size"], where, offset)
            name = long_name or pax.get("path") or _ustar_name(header)
            target = long_link or pax.get("linkpath") or _text(header[157:257].split(b"\0", 1)[0])
            size = size if kind in ("file", "other") else 0  # links, folders and devices have no body
            member = Member(name, kind, size, target if kind.endswith("link") else "")
            body = _read_body(stream, size, where, offset) if kind == "file" and keep(member) else None
            yield member, body  # before skipping the rest: a caller that refuses the member reads no further
            _skip(stream, _padding(size) if body is not None else size + _padding(size), where, offset)
            long_name = long_link = None
            pax = {}
        offset += BLOCK + size + _padding(size)


def _padding(size: int) -> int:
    return -size % BLOCK


def _read_body(stream: BinaryIO, size: int, where: str, offset: int) -> bytes:
    body = stream.read(size)
    if len(body) < size:
        raise DataError(f"{where}: truncated tar archive (member at byte {offset} runs past the end)")
    return body


def _skip(stream: BinaryIO, size: int, where: str, offset: int) -> None:
    """Read past `size` bytes (a member's body and padding) in bounded chunks."""
    while size > 0:
        got = len(stream.read(min(size, _SKIP_CHUNK)))
        if got == 0:
            raise DataError(f"{where}: truncated tar archive (member at byte {offset} runs past the end)")
        size -= got


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _ustar_name(header: bytes) -> str:
    name = header[:100].split(b"\0", 1)[0]
    if header[257:263] == b"ustar\0":  # POSIX: a prefix field extends the name (GNU uses those bytes otherwise)
        prefix = header[345:500].split(b"\0", 1)[0]
        name = prefix + b"/" + name if prefix else name
    return _text(name)


def _number(field: bytes, where: str, offset: int) -> int:
    """A numeric header field: octal ASCII, or base-256 when the first byte is 0x80 (0xff, negative, is refused)."""
    if field[0] == 0x80:
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip(b" ")
    if text and all(48 <= c <= 55 for c in text):  # octal digits only: no sign, no '0x', no '_'
        return int(text, 8)
    if not text:
        return 0
    raise DataError(f"{where}: corrupt tar header at byte {offset} (bad number {text!r})")


def _pax_size(text: str, where: str, offset: int) -> int:
    if not (text.isascii() and text.isdigit()):
        raise DataError(f"{where}: corrupt pax header at byte {offset} (size {text!r} is not a byte count)")
    return int(text)


def _pax_records(body: bytes, where: str, offset: int) -> dict[str, str]:
    """Records `<length> <key>=<value>\\n` of a pax extended header; each length must cover its whole record."""
    records, pos = {}, 0
    while pos < len(body.rstrip(b"\0")):
        space = body.find(b" ", pos, pos + 21)
        digits = body[pos:space] if space > pos else b""
        length = int(digits) if digits.isdigit() else 0
        record = body[pos : pos + length]
        if length <= len(digits) + 1 or len(record) < length or not record.endswith(b"\n") or b"=" not in record:
            raise DataError(f"{where}: corrupt pax header at byte {offset} (bad record at byte {pos})")
        key, _, value = record[len(digits) + 1 : -1].partition(b"=")
        records[_text(key)] = _text(value)
        pos += length
    return records
