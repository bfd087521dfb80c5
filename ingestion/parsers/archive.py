"""ZIP containers read safely in memory: every member is checked from the central directory before any byte
is decompressed, then read with a hard cap (the declared size and the upload's remaining budget)."""
from __future__ import annotations

import io
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath

from ingestion.parsers.common import error as _error
from ingestion.parsers.types import Limits, ParseError

CHUNK = 64 * 1024


def error(file: str, message: str, **loc: object) -> ParseError:
    """Every archive problem is a safety refusal: the archive it belongs to yields no items."""
    return _error(file, message, refused=True, **loc)


@dataclass
class Budget:
    """What is left of the upload's limits; shared by nested archives and Office containers."""

    limits: Limits
    uncompressed_left: int
    files_left: int

    @classmethod
    def start(cls, limits: Limits) -> Budget:
        return cls(limits, limits.max_total_uncompressed, limits.max_files)


def member_name(info: zipfile.ZipInfo) -> str:
    """The member's name; legacy Chinese Windows archives store GBK names without the UTF-8 flag."""
    name = info.filename
    if not info.flag_bits & 0x800:
        try:
            name = name.encode("cp437").decode("gbk")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return name


def unsafe_reason(info: zipfile.ZipInfo, name: str) -> str | None:
    """Why a member is refused by its header alone, or None."""
    if info.flag_bits & 0x1:
        return "成员已加密 member is encrypted"
    mode = info.external_attr >> 16
    if mode and stat.S_IFMT(mode) == stat.S_IFLNK:
        return "成员是符号链接 member is a symbolic link"
    if mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "成员不是普通文件 member is not a regular file"
    path = name.replace("\\", "/")
    if path.startswith("/") or (len(path) > 1 and path[1] == ":") or "\x00" in path:
        return "成员使用绝对路径 member has an absolute path"
    if ".." in PurePosixPath(path).parts:
        return "成员路径试图跳出目录 member path escapes the archive (../)"
    return None


def declared_entries(data: bytes) -> int | None:
    """The member count in the end-of-central-directory record, read before zipfile parses the directory."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 65557))
    if end < 0 or end + 12 > len(data):
        return None
    count = int.from_bytes(data[end + 10:end + 12], "little")
    return None if count == 0xFFFF else count  # 0xFFFF: a ZIP64 archive; zipfile reads the real count


def open_zip(file: str, data: bytes, max_files: int | None = None) -> tuple[zipfile.ZipFile | None, ParseError | None]:
    if max_files is not None and (declared_entries(data) or 0) > max_files:
        return None, error(file, f"压缩包成员过多 too many members: {declared_entries(data)} (上限 limit {max_files})")
    if not data.startswith(b"PK"):
        hint = ""
        if data.startswith(b"\xd0\xcf\x11\xe0"):
            hint = "（可能是加密的 Office 文件或旧版 .xls/.doc）(an encrypted Office file or legacy .xls/.doc?) "
        return None, error(file, f"不是有效的 ZIP 容器 {hint}not a valid ZIP container")
    try:
        return zipfile.ZipFile(io.BytesIO(data)), None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        return None, error(file, f"ZIP 结构损坏 not a valid ZIP container ({exc})")


def check_members(file: str, zf: zipfile.ZipFile, budget: Budget, *, depth: int,
                  nested_ext: tuple[str, ...] = (".zip",)) -> tuple[list[tuple[zipfile.ZipInfo, str]], list[ParseError]]:
    """Check every header; returns the regular members (info, display path) or the reasons to refuse."""
    limits = budget.limits
    infos = zf.infolist()
    errors: list[ParseError] = []
    files = [i for i in infos if not i.is_dir()]
    if len(infos) > limits.max_files or len(files) > budget.files_left:
        return [], [error(file, f"压缩包成员过多 too many members: {len(infos)} (上限 limit {limits.max_files})")]
    members: list[tuple[zipfile.ZipInfo, str]] = []
    declared = 0
    for info in infos:
        name = member_name(info)
        shown = f"{file}/{name}"
        reason = unsafe_reason(info, name)
        if reason is None and not info.is_dir():
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > 0 and ratio > limits.max_ratio:
                reason = (f"压缩比 {ratio:.0f} 超过上限 {limits.max_ratio}，疑似压缩炸弹 "
                          f"compression ratio {ratio:.0f} exceeds {limits.max_ratio} (zip bomb?)")
            elif info.file_size > limits.max_total_uncompressed:
                reason = (f"解压后 {info.file_size} 字节超过上限 uncompressed size {info.file_size} bytes exceeds the "
                          f"limit of {limits.max_total_uncompressed}")
            elif name.lower().endswith(nested_ext) and depth + 1 > limits.max_zip_depth:
                reason = (f"压缩包嵌套超过 {limits.max_zip_depth} 层 nested archives deeper than "
                          f"{limits.max_zip_depth} levels")
        if reason:
            errors.append(error(shown, f"已拒绝成员 {name} refused member {name}: {reason}"))
            continue
        if not info.is_dir():
            declared += info.file_size
            members.append((info, shown))
    if not errors and declared > budget.uncompressed_left:
        errors.append(error(file, f"解压后总大小 {declared} 字节超过上限 total uncompressed size {declared} bytes exceeds "
                                  f"the limit of {limits.max_total_uncompressed}"))
    return (members if not errors else []), errors


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, shown: str,
                budget: Budget) -> tuple[bytes | None, ParseError | None]:
    """Stream one member with a hard cap; never trusts the header beyond it."""
    cap = min(info.file_size, budget.uncompressed_left)
    parts: list[bytes] = []
    got = 0
    try:
        with zf.open(info) as handle:
            while True:
                chunk = handle.read(min(CHUNK, cap + 1 - got))
                if not chunk:
                    break
                got += len(chunk)
                parts.append(chunk)
                if got > cap:
                    return None, error(shown, "成员实际大小超过声明或上限 member is larger than declared or than the limit")
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError, ValueError) as exc:
        return None, error(shown, f"成员无法读取 member cannot be read ({exc})")
    if got > budget.limits.max_ratio * max(info.compress_size, 1):
        return None, error(shown, "压缩比超过上限，疑似压缩炸弹 compression ratio exceeds the limit (zip bomb?)")
    budget.uncompressed_left -= got
    budget.files_left -= 1
    return b"".join(parts), None


def read_all(file: str, data: bytes, budget: Budget, *, depth: int,
             only: set[str] | None = None) -> tuple[list[tuple[str, str, bytes]], list[ParseError]]:
    """All regular members as (name, display path, bytes), or nothing plus the errors when any check fails.

    `only` restricts reading to those member names (an Office container needs just a few parts).
    """
    zf, problem = open_zip(file, data, budget.limits.max_files)
    if zf is None:
        return [], [problem] if problem else []
    with zf:
        members, errors = check_members(file, zf, budget, depth=depth)
        if errors:
            return [], errors
        out: list[tuple[str, str, bytes]] = []
        for info, shown in members:
            name = member_name(info)
            if only is not None and name not in only:
                continue
            content, problem = read_member(zf, info, shown, budget)
            if problem:
                return [], [problem]
            out.append((name, shown, content or b""))
    return out, []
