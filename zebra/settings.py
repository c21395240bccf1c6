"""Range checks for the numbers a user passes on the command line.

argparse's `type=float` accepts `nan`, `inf` and any sign, and a NaN compares false with
everything: `--tau nan` admitted no pair and wrote an empty file with exit 0, `--rank-weight nan`
picked arbitrary pairs. Every script checks its numeric settings here before any work, so a bad
value stops the run with one line naming the flag, the value and the allowed range.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from zebra.errors import ZebraError


class SettingError(ZebraError):
    """A setting outside its range; the message names the flag."""


def check_number(flag: str, value: float | int | None, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, integer: bool = False,
                 optional: bool = False, hint: str = "") -> None:
    """Stop unless `value` is a finite number in [low, high] (bounds open where asked).

    `optional`: None means "not set" and passes. `hint` is appended to the message (why the range).
    """
    if value is None:
        if optional:
            return
        raise SettingError(f"{flag} must be set")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > sys.float_info.max:
        # 400 digits pass argparse's int, then float() raised OverflowError: a traceback in every script
        raise SettingError(f"{flag} is a {len(str(abs(value)))}-digit number, beyond what a float holds; "
                           f"pass a realistic value{_hint(hint)}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not float(value).is_integer()):
        raise SettingError(f"{flag} must be {'an integer' if integer else 'a number'}, not {value!r}")
    if not math.isfinite(value):
        raise SettingError(f"{flag} must be a finite number, not {value}{_hint(hint)}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        raise SettingError(f"{flag} must be {_range(low, high, low_open, high_open)}, not {value}{_hint(hint)}")


def _hint(hint: str) -> str:
    return f" ({hint})" if hint else ""


def _range(low, high, low_open, high_open) -> str:
    if high is None:
        return f"{'>' if low_open else '>='} {low}"
    if low is None:
        return f"{'<' if high_open else '<='} {high}"
    return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"


def _resolved(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


def _same_file(a: Path, b: Path) -> bool:
    """One file under two names (a hard link); False when either does not exist."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output_path(output: str | Path, inputs: Iterable[str | Path | None], flag: str = "--output") -> None:
    """Refuse an output that is a folder, or that is (or would replace) one of the `inputs`.

    An input folder counts too: writing into it would add a file that the next read of the
    folder picks up as data. Hub ids and names that do not exist on disk are not inputs here.
    However a path is spelled, it is the file that counts: `..`, symbolic links (of the file or a
    folder above it) and hard links (another name for the same file) are all caught.
    """
    out = _resolved(output)
    if out.is_dir():
        raise SettingError(f"{flag} {output} is a folder; name a file inside it")
    for given in inputs:
        if given is None:
            continue
        src = Path(given).expanduser()
        if not src.exists():
            continue
        src = src.resolve()
        if out == src or (src.is_dir() and src in out.parents) or _same_file(out, src):
            raise SettingError(f"{flag} {output} would overwrite the input {given}; choose another output name")


def check_output_folder(output: str | Path, inputs: Iterable[str | Path | None], flag: str = "--output-dir") -> None:
    """Refuse an output folder (written whole, replacing what was there) that is an input, holds
    one, or lies inside an input folder. Hub ids and names not on disk are not inputs here."""
    out = _resolved(output)
    for given in inputs:
        if given is None or not Path(given).expanduser().exists():
            continue
        src = _resolved(given)
        if out == src or src in out.parents or out in src.parents:
            raise SettingError(f"{flag} {output} would overwrite or hold the input {given}; choose another folder")


def check_writable_dir(path: str | Path, flag: str = "--output-dir") -> None:
    """Before any work: the output folder exists (made here) and a file can be created in it.

    Permission bits alone do not tell (root ignores them; a read-only mount does not), so a probe
    file is written and removed."""
    check_output_dir(path, flag)
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".zebra-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise SettingError(f"{flag} {path} is not writable ({err.strerror or err}); choose another folder") from None


def check_output_dir(path: str | Path, flag: str = "--output-dir") -> None:
    """Before any work: an output folder that exists must be a folder, and so must its parents
    (otherwise the run fails only when it saves, after the work); and this user must be able to
    write it, or create it in the nearest folder that exists (read-only mounts included)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SettingError(f"{flag} {path} is a file; pass a folder")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise SettingError(f"{flag} {path}: {parent} is a file, not a folder")
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SettingError(f"{flag} {path}: {existing} is not writable (permissions or a read-only file system); "
                           "choose another folder")
