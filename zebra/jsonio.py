"""Reading JSON and JSON-lines files (and YAML recipes): one reader, one error style.

Every JSON document (summaries, settings.json, pool.json, lm-eval results, metrics) and every
file of JSON records (a `.jsonl` file, or a `.json` list) that the project reads goes through
here, so a fault reads the same in every script: one line, `FILE:LINE: reason`, a `ReadError`.
YAML recipes (`read_yaml`) and the CSV readers (through `read_text`) share the text layer, so
their faults read the same too.

API: read_json(path, what, expect) one document; iter_json_records(path) -> (line, object) and
read_json_records(path) for JSON lines or a JSON list; first_json_record(path) for sniffing;
read_yaml(path, what, expect); read_text(path, what) for CSV; check_json_data(path) before
`datasets` parses a file; MAX_DEPTH; ReadError (FileAccessError, NotJsonError).

What is refused, and why:
- a missing file, a folder, an unreadable file; 0 bytes or only blank lines (no records);
- bytes that are not UTF-8 text: compressed files (gzip: "decompress it first"), Parquet or
  Arrow files under a text name, UTF-16, any other byte that is not UTF-8 (its line and byte
  offset). A UTF-8 byte-order mark is accepted and dropped;
- JSON that does not parse (line and column; a file that ends inside a value is called
  truncated), a record that is not an object (what it is instead);
- a key given twice in one object: json.loads keeps the last value silently, `datasets` refuses
  the file, so the same data meant different things on two paths;
- `NaN`, `Infinity`, `-Infinity` (not JSON, though Python and pyarrow read them) and numbers
  too large for a float (`1e999` reads as inf);
- a lone UTF-16 surrogate escape (`"\\ud800"`): it decodes to a str that cannot be written back
  as UTF-8, so every later write of it fails; the line and the field are named;
- nesting deeper than `MAX_DEPTH` levels: Python's json raises RecursionError near 1,000 and
  pyarrow's JSON reader (under `datasets`) crashes the process near 10,000-20,000.

`check_json_data` applies the rules pyarrow breaks without a word or with a crash (nesting,
bytes that are not UTF-8) cheaply and in bounded memory, to a file that `datasets` parses
instead of us (zebra.data).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

from zebra.errors import ZebraError

if TYPE_CHECKING:  # numpy only where a big data file is scanned: build_table.py and --help need the standard library alone
    import numpy as np

# Deeper than any data the project reads (an UltraFeedback row nests 5 levels, an lm-eval
# result file 4) and far below the depths where Python's json (~1,000) or pyarrow (~10,000,
# a segfault) fail.
MAX_DEPTH = 100

_BOM = b"\xef\xbb\xbf"
# (leading bytes, what the file is): formats a user may hand over under a text name
_MAGIC = (
    (b"\x1f\x8b", "gzip-compressed: decompress it first (gunzip)"),
    (b"PK\x03\x04", "a zip archive: unpack it first"),
    (b"\xfd7zXZ\x00", "xz-compressed: decompress it first (unxz)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed: decompress it first (unzstd)"),
    (b"PAR1", "a Parquet file, not text: name it .parquet"),
    (b"ARROW1", "an Arrow file, not text: name it .arrow"),
    (b"\xff\xff\xff\xff", "an Arrow stream, not text: name it .arrow"),
    (b"\xff\xfe", "UTF-16 text: save it as UTF-8"),
    (b"\xfe\xff", "UTF-16 text: save it as UTF-8"),
)
_HEAD = 1 << 16  # bytes read to tell a file's kind
_CHUNK = 1 << 22  # check_json_data's read size: memory stays bounded by it


class ReadError(ZebraError):
    """A file that cannot be read as what it should be; one line `FILE[:LINE]: reason[; action]`."""

    def __init__(self, message: str, action: str = ""):
        super().__init__(f"{message}; {action}" if action else message)
        self.message, self.action = message, action

    def with_hint(self, hint: str) -> "ReadError":
        """The same fault with the caller's advice (how that file is remade) as its action."""
        return type(self)(self.message, hint)


class FileAccessError(ReadError):
    """No file to read: missing, a folder, no permission (no advice about its content applies)."""


class NotJsonError(ReadError):
    """Text that does not parse as JSON at all (as opposed to JSON this module refuses)."""


# ----------------------------------------------------------------------------- text


def read_bytes(path: str | Path, what: str = "file") -> bytes:
    """The file's bytes, or a one-line error for a missing file, a folder or no permission."""
    path = Path(path)
    try:
        return path.read_bytes()
    except OSError as err:
        raise FileAccessError(_open_failure(path, what, err)) from None


def not_a_file(path: str | Path, what: str = "file") -> str | None:
    """None if `path` is a file; else the one-line reason, as a failed open would give it ("no such
    {what}", or "is a folder, not a {what}"): for callers that check a path before reading it."""
    path = Path(path)
    if path.is_file():
        return None
    return f"{path}: is a folder, not a {what}" if path.is_dir() else f"{path}: no such {what}"


def not_a_folder(path: str | Path, what: str = "folder") -> str | None:
    """None if `path` is a folder; else the one-line reason ("no such {what}", or "is a file, not a {what}")."""
    path = Path(path)
    if path.is_dir():
        return None
    return f"{path}: is a file, not a {what}" if path.exists() else f"{path}: no such {what}"


def _open_failure(path: Path, what: str, err: OSError) -> str:
    if isinstance(err, FileNotFoundError):
        return f"{path}: no such {what}"
    if isinstance(err, IsADirectoryError) or path.is_dir():
        return f"{path}: is a folder, not a {what}"
    return f"{path}: cannot be read ({err.strerror or err})"


def binary_kind(head: bytes) -> str | None:
    """What a file that starts with `head` is, when it is certainly not text; None otherwise."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[:4] in (b"BZh1", b"BZh2", b"BZh3", b"BZh4", b"BZh5", b"BZh6", b"BZh7", b"BZh8", b"BZh9") \
            and head[4:10] == b"1AY&SY":
        return "bzip2-compressed: decompress it first (bunzip2)"
    nul = head.find(b"\x00", 0, 8192)
    if nul >= 0:
        return f"binary, not text (a NUL byte at byte {nul})"
    return None


def decode_text(data: bytes, path: str | Path) -> str:
    """UTF-8 text of `data` (a leading BOM dropped); one-line errors for binary or other bytes."""
    kind = binary_kind(data[:_HEAD])
    if kind:
        raise ReadError(f"{path}: {kind}")
    skip = len(_BOM) if data.startswith(_BOM) else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as err:
        at = err.start + skip
        raise ReadError(*_not_utf8(path, 1 + data.count(b"\n", 0, at), at, err.reason)) from None


def _not_utf8(path, line: int, at: int, reason: str) -> tuple[str, str]:
    return f"{path}:{line}: not UTF-8 text (byte {at}: {reason})", "save it as UTF-8"


def read_text(path: str | Path, what: str = "file") -> str:
    """A text file (CSV, YAML, JSON) as str, checked by `decode_text`. 0 bytes are an error."""
    data = read_bytes(path, what)
    if not data:
        raise ReadError(f"{path}: empty file (0 bytes)")
    return decode_text(data, path)


# ----------------------------------------------------------------------------- strict parsing


class _Fault(ValueError):
    """Raised inside the decoder's hooks; `kind` says which rule, `detail` what broke it."""

    def __init__(self, kind: str, detail: str):
        super().__init__(kind, detail)
        self.kind, self.detail = kind, detail


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Fault("duplicate", key)
            seen.add(key)
    return obj


def _constant(name: str) -> Any:
    raise _Fault("constant", name)


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _Fault("huge", text)
    return value


_DECODER = json.JSONDecoder(object_pairs_hook=_unique, parse_constant=_constant, parse_float=_float)
_WS = re.compile(r"[ \t\n\r]*")
# Tokens that matter when locating a fault (error path only): strings (unrolled, no backtracking
# blow-up on long texts), brackets, colons, the non-JSON constants and numbers with a fraction
# or exponent.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|(?P<open>[\[{])|(?P<close>[\]}])|(?P<colon>:)'
                     r"|(?P<const>-?Infinity|NaN)|(?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)")
_SURROGATE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"  # a pair: one character
                        r"|(?P<lone>\\u[dD][89a-fA-F][0-9a-fA-F]{2})")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"a string ({value[:40]!r})"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return "an object"


def _parse(text: str, path: str | Path, start: int = 0, end: int | None = None, first_line: int = 1,
           whole: bool = True, unit: str = "file") -> tuple[Any, int]:
    """(value, end) of the JSON value at text[start:]; `whole`: nothing but whitespace may follow
    (up to `end`). Every rule of the module docstring; errors name the file line."""
    end = len(text) if end is None else end
    idx = _WS.match(text, start).end()
    try:
        value, stop = _DECODER.raw_decode(text, idx)
        if whole and (extra := _WS.match(text, stop).end()) < end:
            raise json.JSONDecodeError("extra data after the JSON value", text, extra)
    except json.JSONDecodeError as err:
        line = first_line + text.count("\n", start, err.pos)
        if err.pos >= start + len(text[start:end].rstrip()) or err.msg.startswith("Unterminated string"):
            raise NotJsonError(f"{path}:{line}: the {unit} ends inside a JSON value "
                               f"({err.msg.removesuffix(' at')}): truncated?") from None
        column = err.pos - text.rfind("\n", 0, err.pos)
        raise NotJsonError(f"{path}:{line}: not valid JSON ({err.msg.removesuffix(' at')} "
                           f"at column {column})") from None
    except RecursionError:
        raise ReadError(_deep_message(text, path, idx, end, first_line)) from None
    except _Fault as fault:
        raise ReadError(*_fault_message(fault, text, path, idx, end, first_line)) from None
    # both checks below are skipped, at the cost of two substring counts, when they cannot apply
    if text.count("[", idx, stop) + text.count("{", idx, stop) > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        raise ReadError(_deep_message(text, path, idx, stop, first_line))
    if text.find("\\ud", idx, stop) >= 0 or text.find("\\uD", idx, stop) >= 0:
        field = surrogate_field(value)
        if field is not None:
            raise ReadError(*_surrogate_message(text, path, idx, stop, first_line, field))
    return value, stop


def _depth(value: Any) -> int:
    """Nesting depth of a parsed value (a scalar is 0, `[]` is 1), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, level)
            stack.extend((c, level + 1) for c in children if isinstance(c, (dict, list)))
    return deepest


def surrogate_field(value: Any) -> str | None:
    """The path (`completions[0].response`) of the first string or key holding a lone surrogate."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _has_surrogate(item):
                return where or "the value"
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                if not key.isascii() and _has_surrogate(key):
                    return f"the key {key.encode('utf-8', 'backslashreplace').decode()!r}"
                stack.append((child, f"{where}.{key}" if where else key))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]") for i, child in reversed(list(enumerate(item))))
    return None


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _tokens(text: str, start: int, end: int) -> Iterator[re.Match]:
    return _TOKENS.finditer(text, start, end)


def _deep_message(text: str, path, start: int, end: int, first_line: int) -> str:
    level = 0
    at = start
    for m in _tokens(text, start, end):
        if m.lastgroup == "open":
            level += 1
            if level > MAX_DEPTH:
                at = m.start()
                break
        elif m.lastgroup == "close":
            level -= 1
    return (f"{path}:{first_line + text.count(chr(10), start, at)}: nested deeper than {MAX_DEPTH} levels "
            "(the limit is zebra.jsonio.MAX_DEPTH; no record the project reads needs more)")


def _fault_message(fault: _Fault, text: str, path, start: int, end: int, first_line: int) -> tuple[str, str]:
    at = _fault_position(fault, text, start, end)
    line = first_line + text.count("\n", start, at) if at is not None else first_line
    if fault.kind == "duplicate":
        return (f"{path}:{line}: the key {fault.detail!r} appears twice in one object "
                "(json keeps the last, datasets refuses the file)", "keep one")
    if fault.kind == "constant":
        return f"{path}:{line}: {fault.detail} is not JSON", "write null or a number"
    return f"{path}:{line}: the number {fault.detail} is too large for a float", ""


def _fault_position(fault: _Fault, text: str, start: int, end: int) -> int | None:
    """Where in `text` the first instance of `fault` is (error path only)."""
    keys: list[set[str] | None] = []  # per open container: the keys seen (None for a list)
    for m in _tokens(text, start, end):
        group = m.lastgroup
        if group == "open":
            keys.append(set() if m.group() == "{" else None)
        elif group == "close":
            if keys:
                keys.pop()
        elif group == "const" and fault.kind == "constant":
            return m.start()
        elif group == "num" and fault.kind == "huge" and math.isinf(float(m.group())):
            return m.start()
        elif group is None and fault.kind == "duplicate" and keys and keys[-1] is not None:
            if _WS.match(text, m.end()).end() < end and text[_WS.match(text, m.end()).end()] == ":":
                key = json.loads(m.group())
                if key == fault.detail and key in keys[-1]:
                    return m.start()
                keys[-1].add(key)
    return None


def _surrogate_message(text: str, path, start: int, end: int, first_line: int, field: str) -> tuple[str, str]:
    at = start
    for m in _SURROGATE.finditer(text, start, end):
        backslashes = len(m.string[:m.start()]) - len(m.string[:m.start()].rstrip("\\"))
        if m.group("lone") and backslashes % 2 == 0:
            at = m.start()
            break
    line = first_line + text.count("\n", start, at)
    return (f"{path}:{line}: {field} holds a lone surrogate ({text[at:at + 6]}), which is not Unicode text "
            "and cannot be written back", "fix or drop that text")


# ----------------------------------------------------------------------------- readers


def read_json(path: str | Path, what: str = "JSON file", expect: type | None = None) -> Any:
    """One JSON document (a summary, settings.json, lm-eval results), checked as the module
    docstring says. `expect=dict` (or list): anything else is an error saying what it is."""
    text = read_text(path, what)
    if not text.strip():
        raise ReadError(f"{path}: holds only blank lines, no JSON")
    value, _ = _parse(text, path)
    if expect is not None and not isinstance(value, expect):
        raise ReadError(f"{path}: expected a JSON {'object' if expect is dict else 'list'}, got {_kind(value)}")
    return value


def read_yaml(path: str | Path, what: str = "YAML file", expect: type | None = None) -> Any:
    """One YAML document (a training recipe) through the same text layer, with the JSON rules
    YAML has a counterpart for: a key twice in one mapping is refused (PyYAML keeps the last),
    and so is any tag beyond plain data (`!!python/object`: safe_load refuses it in four lines)."""
    import yaml

    text = read_text(path, what)
    try:
        value = yaml.load(text, Loader=_yaml_loader())  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(err.problem or "").split())
        tag = re.search(r"constructor for the tag '([^']*)'", problem)
        if tag:
            shown = tag.group(1).replace("tag:yaml.org,2002:", "!!")
            raise ReadError(f"{path}{line}: the YAML tag {shown} is not allowed "
                            "(only plain data: mappings, lists, strings, numbers)") from None
        if problem.startswith("the key "):
            raise ReadError(f"{path}{line}: {problem}") from None
        context = " ".join(str(err.context or "").split())
        raise ReadError(f"{path}{line}: not valid YAML ({context + ': ' if context else ''}{problem})") from None
    except yaml.YAMLError as err:
        raise ReadError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    except RecursionError:
        raise ReadError(f"{path}: nested deeper than Python can read") from None
    if expect is not None and not isinstance(value, expect):
        raise ReadError(f"{path}: expected a YAML {'mapping' if expect is dict else 'list'}, got {_kind(value)}")
    return value


def _yaml_loader():
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                self.flatten_mapping(node)
                seen = set()
                for key_node, _ in node.value:
                    key = self.construct_object(key_node, deep=True)
                    if isinstance(key, (str, int, float, bool)) and key in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"the key {key!r} appears twice in one mapping; keep one", key_node.start_mark)
                    seen.add(key) if isinstance(key, (str, int, float, bool)) else None
            return super().construct_mapping(node, deep)

    return StrictLoader


def iter_json_records(path: str | Path, what: str = "records file", allow_empty: bool = False
                      ) -> Iterator[tuple[int, dict]]:
    """(line number, object) of each record of a JSON-lines file or a JSON list.

    Which one is decided by the first character, as `datasets` does (`[`: a list; else one
    object per line), whatever the suffix. Blank lines are skipped. A record that is not an
    object is an error naming its line and what it is; so is a file without records unless
    `allow_empty`.
    """
    text = read_text(path, what)
    body = _WS.match(text).end()
    count = 0
    if body < len(text) and text[body] == "[":
        for line, value in _list_items(text, path, body):
            count += 1
            yield line, value
    else:
        for line, value in _lines(text, path):
            count += 1
            yield line, value
    if not count and not allow_empty:
        raise ReadError(f"{path}: no records ({'an empty list' if body < len(text) else 'only blank lines'})")


def stream_json_records(path: str | Path, what: str = "records file", allow_empty: bool = False
                        ) -> Iterator[tuple[int, dict]]:
    """`iter_json_records(path)` holding one line of the file at a time, not its whole text, for
    the layouts with one record per line: JSON lines, and a JSON list with one item per line
    (`[`, items each ending in `,` but the last, `]`: what zebra.records.RecordWriter writes).

    Each line is parsed by the same rules as the whole-file reader. Anything else (items that
    share or span lines, a fault of any kind, no record at all) hands over to
    iter_json_records from the start, skipping the records already given, so the records and
    every message are the whole-file reader's (issue 23: a 10× binarize output is 3 GB of text).
    """
    given = 0
    try:
        for line, value in _stream_lines(path):
            given += 1
            yield line, value
        if given:
            return
    except (_Fallback, ReadError, UnicodeDecodeError):
        pass
    except OSError:
        pass  # the whole-file reader names what is wrong with the file
    for k, (line, value) in enumerate(iter_json_records(path, what, allow_empty)):
        if k >= given:
            yield line, value


class _Fallback(Exception):
    """A layout stream_json_records does not read line by line."""


def _stream_lines(path: str | Path) -> Iterator[tuple[int, dict]]:
    in_list, closed, comma = None, False, True
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            text = raw.decode("utf-8")
            if number == 1:
                text = text.removeprefix("\ufeff")
            body = text.strip(" \t\r\n")
            if not body:
                continue
            if closed:
                raise _Fallback
            if in_list is None:
                in_list = body == "["
                if body.startswith("[") and not in_list:
                    raise _Fallback
                if in_list:
                    continue
            if in_list and body == "]":
                if comma and number > 2:  # `[`, `]` is the empty list; a trailing comma is not JSON
                    raise _Fallback
                closed = True
                continue
            if in_list:
                if not comma:
                    raise _Fallback
                comma = body.endswith(",")
                body = body[:-1] if comma else body
            value, _ = _parse(body, path, first_line=number, unit="line")
            if not isinstance(value, dict):
                raise _Fallback
            yield number, value
    if in_list and not closed:
        raise _Fallback


def read_json_records(path: str | Path, what: str = "records file", allow_empty: bool = False) -> list[dict]:
    """Every record of `iter_json_records(path)`, without line numbers."""
    return [value for _, value in iter_json_records(path, what, allow_empty)]


def iter_json_record_chunks(path: str | Path, what: str = "records file", rows: int = 65536, allow_empty: bool = False,
                            block: int = _CHUNK) -> Iterator[list[tuple[int, dict]]]:
    """`iter_json_records` in lists of at most `rows` records: the same records, line numbers and
    errors, but a JSON-lines file is read `block` bytes at a time (memory: one block, or the longest
    line, and the records of one list) instead of whole. A JSON list is parsed whole, as
    `iter_json_records` (and `datasets`) does."""
    path = Path(path)
    try:
        fh = open(path, "rb")
    except OSError as err:
        raise FileAccessError(_open_failure(path, what, err)) from None
    with fh:
        head = fh.read(_HEAD)
        skip = len(_BOM) if head.startswith(_BOM) else 0
        first = head[skip:].lstrip(b" \t\r\n")[:1]
        if not head or binary_kind(head) or first in (b"[", b""):  # its errors, a list, or blank so far: whole
            yield from _batched(iter_json_records(path, what, allow_empty), rows)
            return
        fh.seek(skip)
        line, offset, count, held, batch = 1, skip, 0, b"", []
        while True:
            got = fh.read(block)
            data = held + got
            cut = data.rfind(b"\n") + 1 if got else len(data)
            if got and not cut:  # a line longer than a block
                held = data
                continue
            part, held = data[:cut], data[cut:]
            try:
                text = part.decode("utf-8")
            except UnicodeDecodeError as err:  # a line break never sits inside a UTF-8 sequence
                raise ReadError(*_not_utf8(path, line + part.count(b"\n", 0, err.start), offset + err.start,
                                           err.reason)) from None
            try:
                for item in _lines(text, path, line, at_start=offset == skip):
                    batch.append(item)
                    if len(batch) == rows:
                        count += len(batch)
                        yield batch
                        batch = []
            except NotJsonError:
                if offset == skip and not count:  # maybe one object over several lines: the whole-file reader says so
                    for _ in iter_json_records(path, what, allow_empty):
                        pass
                raise
            line += text.count("\n")
            offset += cut
            if not got:
                break
    if batch:
        count += len(batch)
        yield batch
    if not count and not allow_empty:
        raise ReadError(f"{path}: no records (only blank lines)")


def _batched(items: Iterator, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _lines(text: str, path, first_line: int = 1, at_start: bool = True) -> Iterator[tuple[int, dict]]:
    # split on "\n" only: str.splitlines() also breaks at U+2028 and friends, which JSON keeps
    # unescaped inside strings (MMLU-Pro's test split has them)
    start = 0
    number = first_line - 1
    while start < len(text):
        stop = text.find("\n", start)
        stop = len(text) if stop < 0 else stop
        number += 1
        if _WS.match(text, start).end() < stop:
            try:
                value, _ = _parse(text[start:stop], path, first_line=number, unit="line")
            except NotJsonError:
                if at_start and not text[:start].strip():
                    _one_document(text, path)  # a pretty-printed object is not a records file: say so
                raise
            if not isinstance(value, dict):
                raise ReadError(f"{path}:{number}: expected a JSON object, got {_kind(value)}")
            yield number, value
        start = stop + 1


def _one_document(text: str, path) -> None:
    if "\n" not in text.strip():
        return
    try:
        value = json.loads(text)  # permissive on purpose: only the shape matters here
    except (ValueError, RecursionError):
        return
    if isinstance(value, dict):
        raise ReadError(f"{path}: holds one JSON object over several lines; expected a JSON list of records "
                        "or one object per line")


def _list_items(text: str, path, idx: int) -> Iterator[tuple[int, dict]]:
    """The items of the JSON list starting at text[idx] ('['), each parsed on its own so that
    its line is known and one bad item stops the read there."""
    line = 1 + text.count("\n", 0, idx)
    pos = _WS.match(text, idx + 1).end()
    if text.startswith("]", pos):
        _check_end(text, path, pos + 1)
        return
    item, previous = 0, None
    while True:
        line += text.count("\n", idx, pos)
        idx = pos
        item += 1
        # where items share a line (a list written on one line) the line alone does not say which record
        shared = previous == line
        previous = line
        try:
            value, stop = _parse(text, path, pos, first_line=line, whole=False)
        except ReadError as err:
            head, sep, rest = err.message.partition(": ")  # FILE:LINE: reason -> FILE:LINE: list item N: reason
            if not (shared and sep and head.startswith(f"{path}:")):
                raise
            raise type(err)(f"{head}: list item {item}: {rest}", err.action) from None
        if not isinstance(value, dict):
            which = f"list item {item}" if shared else "list item"
            raise ReadError(f"{path}:{line}: {which} expected to be a JSON object, got {_kind(value)}")
        yield line, value
        pos = _WS.match(text, stop).end()
        if text.startswith(",", pos):
            pos = _WS.match(text, pos + 1).end()
            continue
        if text.startswith("]", pos):
            _check_end(text, path, pos + 1)
            return
        where = line + text.count("\n", idx, pos)
        if pos >= len(text):
            raise NotJsonError(f"{path}:{where}: the file ends inside the JSON list: truncated?")
        raise NotJsonError(f"{path}:{where}: not valid JSON (expected ',' or ']' after a list item, got {text[pos]!r})")


def _check_end(text: str, path, pos: int) -> None:
    rest = _WS.match(text, pos).end()
    if rest < len(text):
        raise NotJsonError(f"{path}:{1 + text.count(chr(10), 0, rest)}: not valid JSON (extra data after the list)")


def first_json_record(path: str | Path, limit: int = 64 << 20) -> dict | None:
    """The first record of a JSON list or JSON-lines file, reading no more than needed (up to
    `limit` bytes); None when there is none or it is not an object. Faults in what was read are
    the readers' one-line errors."""
    path = Path(path)
    try:
        fh = open(path, "rb")
    except OSError as err:
        raise FileAccessError(_open_failure(path, "file", err)) from None
    with fh:
        data = fh.read(_HEAD)
        if not data:
            raise ReadError(f"{path}: empty file (0 bytes)")
        eof = len(data) < _HEAD
        while True:
            text = _head_text(data, path, eof)
            body = _WS.match(text).end()
            listed = text.startswith("[", body)
            start = _WS.match(text, body + 1 if listed else body).end()
            if start == len(text) and eof:
                return None
            if listed and text.startswith("]", start):
                return None
            stop = -1 if listed else text.find("\n", start)
            if listed or stop >= 0 or eof:
                try:
                    value, _ = _parse(text[start:] if listed else text[start:None if stop < 0 else stop], path,
                                      first_line=1 + text.count("\n", 0, start), whole=not listed)
                    return value if isinstance(value, dict) else None
                except NotJsonError:
                    if eof or not listed or len(data) >= limit:
                        return None  # not records; the reader that reads the whole file says why
            more = fh.read(len(data))
            eof = not more
            data += more


def _head_text(data: bytes, path, eof: bool) -> str:
    """The text of a file's first bytes; a multi-byte character cut by the read is left out."""
    try:
        return decode_text(data, path)
    except ReadError:
        if eof:
            raise
        for cut in (1, 2, 3):
            try:
                return decode_text(data[:-cut], path)
            except ReadError:
                continue
        raise


# ----------------------------------------------------------------------------- files datasets reads


def check_json_data(path: str | Path) -> None:
    """Before `datasets`/pyarrow read a JSON(-lines) file: refuse what they would crash on or copy
    in unchecked, in bounded memory and without parsing every record.

    pyarrow crashes the process on deep nesting and copies bytes that are not UTF-8 into its
    strings; the other faults make it raise (bad JSON, duplicate keys, surrogates), after which
    zebra.data re-reads the file with `iter_json_records` to name the line, or read NaN/Infinity
    as numbers, which zebra.data looks for in the loaded float columns (`non_finite_row`).

    JSON lines, the large case, are read in chunks of 4 MB (memory: one chunk, or the longest
    line). A line's nesting depth is at most its count of `[` and `{` bytes (brackets inside
    strings only add to the count), and that count is at most the count of the 4 KB blocks the
    line touches, from the block of the newline before it to the block of its own. Only lines
    whose blocks hold more than MAX_DEPTH such bytes are counted one by one, and only lines with
    more than MAX_DEPTH are parsed (strictly, as `iter_json_records` would); an UltraFeedback row
    has about 35 in 7 KB. A JSON list is read whole by `datasets` anyway (into Python objects),
    so it is parsed whole here.
    """
    path = Path(path)
    with open(path, "rb", buffering=0) as fh:
        head = fh.read(_HEAD)
        kind = binary_kind(head)
        if kind:
            raise ReadError(f"{path}: {kind}")
        skip = len(_BOM) if head.startswith(_BOM) else 0
        if head[skip:].lstrip(b" \t\r\n")[:1] == b"[":
            for _ in iter_json_records(path, allow_empty=True):
                pass
            return
        fh.seek(skip)
        buf = bytearray(_CHUNK)
        scratch = _Scratch()
        held = 0  # bytes of an unfinished line at the front of buf
        line, offset = 1, skip  # line number and file offset of buf[0]
        while True:
            if held == len(buf):  # a line longer than the buffer: make room for the rest of it
                buf.extend(bytes(len(buf)))
            with memoryview(buf) as view:
                got = fh.readinto(view[held:])
            end = held + got
            if not got:
                if held:
                    _check_lines(bytes(buf[:held]) + b"\n", path, line, offset)
                return
            cut = buf.rfind(b"\n", 0, end) + 1
            if not cut:
                held = end
                continue
            with memoryview(buf) as view:
                line += _check_lines(view[:cut], path, line, offset, scratch)
            offset += cut
            held = end - cut
            buf[:held] = buf[cut:end]


_BLOCK = 4096


class _Scratch:
    """Work arrays reused from block to block: a fresh 4 MB temporary per operation costs page
    faults that took longer than the comparisons themselves."""

    def __init__(self):
        self.size = 0

    def get(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import numpy as np

        if n > self.size:
            self.size = n
            self.bytes_, self.newline, self.opens = np.empty(n, np.uint8), np.empty(n, bool), np.empty(n, bool)
        return self.bytes_[:n], self.newline[:n], self.opens[:n]


def _check_lines(block, path, first_line: int, offset: int, scratch: _Scratch | None = None) -> int:
    """Check the whole lines of `block` (bytes ending in a newline) as check_json_data says;
    returns how many lines it held."""
    import numpy as np

    a = np.frombuffer(block, dtype=np.uint8)
    if a.max(initial=0) >= 0x80:  # not ASCII: decode to find a byte that is not UTF-8
        try:
            str(block, "utf-8")
        except UnicodeDecodeError as err:
            line = first_line + int(np.count_nonzero(a[:err.start] == 0x0A))
            raise ReadError(*_not_utf8(path, line, offset + err.start, err.reason)) from None
    work, newline, opens = (scratch or _Scratch()).get(len(a))
    np.equal(a, 0x0A, out=newline)
    # '[' (0x5B) and '{' (0x7B) are the only bytes that OR 0x20 makes 0x7B
    np.equal(np.bitwise_or(a, 0x20, out=work), 0x7B, out=opens)
    whole = len(a) // _BLOCK * _BLOCK
    # per block: the bools as 64-bit words, one bit set per true byte, popcounted (5x a plain sum)
    words = np.bitwise_count(opens[:whole].view(np.uint64)).reshape(-1, _BLOCK // 8)
    counts = np.append(words.sum(axis=1, dtype=np.int64), opens[whole:].sum())
    ends_in = np.append(newline[:whole].reshape(-1, _BLOCK).any(axis=1), newline[whole:].any())
    ends = np.flatnonzero(ends_in)  # blocks where a line ends; the block holds ends[-1]
    total = np.cumsum(counts)
    starts = np.r_[0, ends[:-1]]  # a line ending in block ends[k] started in block ends[k-1] (or 0)
    bound = total[ends] - total[starts] + counts[starts]
    for k in np.flatnonzero(bound > MAX_DEPTH):
        lo, hi = int(starts[k]) * _BLOCK, min(len(a), (int(ends[k]) + 1) * _BLOCK)
        cuts = np.flatnonzero(newline[lo:hi]) + lo
        if k == 0:  # the block's first line starts at 0
            begins, stops = np.r_[0, cuts[:-1] + 1], cuts
        else:  # the line ending at cuts[0] ended the segment before: checked there
            begins, stops = cuts[:-1] + 1, cuts[1:]
        for start, stop in zip(begins.tolist(), stops.tolist()):
            if np.count_nonzero(opens[start:stop]) > MAX_DEPTH:
                number = first_line + int(np.count_nonzero(newline[:start]))
                try:
                    _parse(str(block[start:stop], "utf-8"), path, first_line=number)
                except NotJsonError:
                    pass  # pyarrow refuses the file for it, and zebra.data's re-read names the line
    return int(np.count_nonzero(newline))


def check_json_constants(path: str | Path) -> None:
    """Refuse `NaN`/`Infinity` in a JSON-lines file by searching its text (chunked, bounded
    memory), parsing only the lines that hold those bytes. zebra.data calls it when `datasets`
    re-encoded a mixed-type field through ujson, which writes them as null: the loaded floats no
    longer show them."""
    path = Path(path)
    with open(path, "rb") as fh:
        carry, line = b"", 1
        while chunk := fh.read(_CHUNK):
            block = carry + chunk
            cut = block.rfind(b"\n") + 1
            if not cut:
                carry = block
                continue
            _constants_in(block[:cut], path, line)
            line += block.count(b"\n", 0, cut)
            carry = block[cut:]
        if carry:
            _constants_in(carry + b"\n", path, line)


def _constants_in(block: bytes, path, first_line: int) -> None:
    starts = []
    for word in (b"NaN", b"Infinity"):
        at = block.find(word)
        while at >= 0:
            start = block.rfind(b"\n", 0, at) + 1
            starts.append(start)
            at = block.find(word, block.find(b"\n", at) + 1)
    for start in sorted(set(starts)):
        text = block[start:block.find(b"\n", start)].decode("utf-8", "replace")
        try:
            _parse(text, path, first_line=first_line + block.count(b"\n", 0, start))
        except NotJsonError:
            pass  # pyarrow refused the file for it before this is called

