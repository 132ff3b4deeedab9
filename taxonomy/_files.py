"""The one reader of user-supplied files: taxonomy, config, policy, recorded run settings,
datasets, canaries, reports.

Every way a user's file can be unusable as text is refused here with one line that names the
file (and the line, or the key path, where there is one): missing, a directory or other
non-regular file, unreadable, larger than ``MAX_FILE_BYTES``, not UTF-8, a NUL byte (binary
data), malformed JSON or YAML, nesting too deep to parse, a string holding a lone surrogate
(``"\\ud800"`` in JSON or YAML decodes to text no file can hold), the wrong top-level type.
A UTF-8 byte-order mark is accepted and stripped, for every format alike.

Errors are ``UserFileError``; each package re-raises it as its own bad-input error
(``TaxonomyError``, ``ReportError``, ``DatasetError``, ``BadInput``), so the message is the same
whichever file it was.
"""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from taxonomy._messages import yaml_message

# The largest user file read, in bytes: every reader holds the whole text in memory, and no
# taxonomy, policy, config, report or dataset of this tool comes near it (RealToxicityPrompts,
# ~100k prompts, is about 60 MiB).
MAX_FILE_BYTES = 256 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"
_SURROGATE = re.compile("[\ud800-\udfff]")


class UserFileError(ValueError):
    """A user file that cannot be read as what it should be. One line: ``FILE: [WHERE: ]problem``,
    where WHERE is ``line N`` or a key path (``areas[0].name``)."""

    def __init__(self, path: Path | str, problem: str, where: str = "") -> None:
        self.path = str(path)
        self.where = where
        self.problem = problem
        super().__init__(f"{self.path}: {where}: {problem}" if where else f"{self.path}: {problem}")


def _size_text(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n} bytes"


def read_user_bytes(path: Path | str, what: str = "file", max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (default ``MAX_FILE_BYTES``); ``what``
    names it in errors (``taxonomy file``, ``report``)."""
    path = Path(path)
    max_bytes = MAX_FILE_BYTES if max_bytes is None else max_bytes
    try:
        info = path.stat()
    except FileNotFoundError:
        raise UserFileError(path, "file not found") from None
    except NotADirectoryError:
        raise UserFileError(path, "file not found (a parent in the path is not a directory)") from None
    except OSError as exc:
        raise UserFileError(path, f"cannot read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise UserFileError(path, f"is a directory, not a {what}")
    if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block or never end
        raise UserFileError(path, f"is not a regular file (expected a {what})")
    if info.st_size > max_bytes:
        raise UserFileError(path, f"too large for a {what} ({_size_text(info.st_size)}; the limit is "
                                  f"{_size_text(max_bytes)})")
    try:
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)  # the file may have grown since stat
    except OSError as exc:
        raise UserFileError(path, f"cannot read: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise UserFileError(path, f"too large for a {what} (over {_size_text(max_bytes)})")
    return data


def _line_of(data: bytes | str, index: int) -> int:
    return data.count(b"\n" if isinstance(data, bytes) else "\n", 0, index) + 1


def read_user_text(path: Path | str, what: str = "file", max_bytes: int | None = None) -> str:
    """A user file as text: UTF-8 (a byte-order mark is stripped), no NUL bytes. UserFileError
    otherwise, naming the file and the line."""
    data = read_user_bytes(path, what, max_bytes).removeprefix(_BOM)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start:exc.start + 1].hex()
        raise UserFileError(path, f"not UTF-8 text (byte 0x{bad}); save the {what} as UTF-8",
                            f"line {_line_of(data, exc.start)}") from None
    nul = text.find("\0")
    if nul >= 0:
        raise UserFileError(path, f"holds a NUL character (binary data, not a text {what})",
                            f"line {_line_of(text, nul)}")
    return text


def surrogate_at(value: Any) -> tuple[str, str] | None:
    """(key path, the surrogate as an escape) of the first string (or key) in ``value`` that holds
    a lone surrogate, else None. Each container is visited once (YAML aliases share them)."""
    seen: set[int] = set()
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, str):
            hit = _SURROGATE.search(node)
            if hit:
                return where, f"\\u{ord(hit.group()):04x}"
            continue
        if not isinstance(node, (dict, list)) or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, dict):
            items = list(node.items())
            for key, _ in items:
                hit = _SURROGATE.search(key) if isinstance(key, str) else None
                if hit:
                    return where, f"\\u{ord(hit.group()):04x}"
            stack.extend((f"{where}.{k}" if where else str(k), v) for k, v in reversed(items))
        else:
            stack.extend((f"{where}[{i}]", v) for i, v in reversed(list(enumerate(node))))
    return None


def check_unicode(path: Path | str, value: Any, line: int | None = None) -> None:
    """UserFileError when a decoded string holds a lone surrogate (``"\\ud800"`` escaped in JSON
    or YAML): such text cannot be written to a report, a cache or a terminal."""
    hit = surrogate_at(value)
    if hit is None:
        return
    key, escape = hit
    where = ": ".join(w for w in (f"line {line}" if line else "", key) if w)
    raise UserFileError(path, f"a string holds the lone surrogate {escape}, which is not a character "
                              "(write the character itself)", where)


def _json_value(path: Path | str, text: str, line: int | None = None) -> Any:
    """One JSON value; ``line``: the JSONL line ``text`` is (errors then give that line)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {line}" if line else f"line {exc.lineno}, column {exc.colno}"
        raise UserFileError(path, f"malformed JSON: {exc.msg}", where) from None
    except RecursionError:
        raise UserFileError(path, "malformed JSON: nested too deeply", f"line {line}" if line else "") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise UserFileError(path, f"malformed JSON: {exc}", f"line {line}" if line else "") from None
    check_unicode(path, value, line)
    return value


def kind_of(value: Any) -> str:
    """What a parsed JSON or YAML value is, in words: ``a mapping``, ``a list``, ``null`` ..."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "null"}.get(type(value),
                                                                                      type(value).__name__)


def require_type(path: Path | str, value: Any, expected: type, what: str) -> None:
    """UserFileError unless the top level of the file is ``expected`` (dict: a mapping/object)."""
    if not isinstance(value, expected):
        shape = "a mapping" if expected is dict else "a list" if expected is list else expected.__name__
        raise UserFileError(path, f"expected {shape} at the top level of a {what}, got {kind_of(value)}")


def read_user_json(path: Path | str, what: str = "JSON file", expect: type | None = dict) -> Any:
    """A JSON document, checked through ``read_user_text`` and ``check_unicode``; its top level
    must be ``expect`` (None: any)."""
    value = _json_value(path, read_user_text(path, what), None)
    if expect is not None:
        require_type(path, value, expect, what)
    return value


def read_user_json_lines(path: Path | str, what: str = "JSONL file") -> Iterator[tuple[int, Any]]:
    """(line number, value) for each non-blank line of a JSONL file (lines end at ``\\n`` only: a
    U+2028 inside a string is text, not a line break). The whole text is read and decoded first."""
    text = read_user_text(path, what)
    for lineno, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield lineno, _json_value(path, line, lineno)


MAX_YAML_ALIASES = 20  # more risks an "alias bomb": nested aliases that expand a 1 KB file to gigabytes
# (20 bound the expansion of shared references to about 1,500x the file)


def _too_many_aliases(text: str) -> bool:
    """Whether the document has more than ``MAX_YAML_ALIASES`` aliases, counted on the parser's events,
    before anything is composed or expanded."""
    count = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            count += 1
            if count > MAX_YAML_ALIASES:
                return True
    return False


def read_user_yaml(path: Path | str, what: str = "YAML file", expect: type | None = dict) -> Any:
    """A YAML document (``yaml.safe_load``, with at most ``MAX_YAML_ALIASES`` aliases), checked like
    ``read_user_json``. An empty file is None, accepted whatever ``expect`` is (the caller decides
    what empty means)."""
    text = read_user_text(path, what)
    try:
        bomb = _too_many_aliases(text)
        value = None if bomb else yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserFileError(path, yaml_message(exc)) from None
    except RecursionError:
        raise UserFileError(path, "malformed YAML: nested too deeply") from None
    except ValueError as exc:  # a timestamp such as 2024-02-30
        raise UserFileError(path, f"malformed YAML: {exc}") from None
    if bomb:
        raise UserFileError(path, f"more than {MAX_YAML_ALIASES} YAML aliases (*name): refused, since nested "
                                  "aliases can expand a small file beyond memory")
    check_unicode(path, value)
    if value is not None and expect is not None:
        require_type(path, value, expect, what)
    return value
