"""The server's configuration: ``--config-dir DIR`` (``DIR/conf.d/*.toml``, as Faktory
Enterprise reads it) or the same thing as Python data (``EmbeddedServer(config=...)``),
read once per start or reload into one :class:`Config` that every server extension gets
in ``Extension.read_config``.

For extension authors (cron, throttles)
---------------------------------------
``config.cron`` is every ``[[cron]]`` entry of every file, in file order (files sorted by
name), each a :class:`Section`; ``config.throttles`` maps each name of ``[throttles]``
(merged over the files; a name set in two files is refused) to its :class:`Section`;
``config.table(name)`` is any other top-level table an extension declared in
``Extension.config_tables``. A :class:`Section` is a read-only mapping of plain values
(TOML dates become RFC 3339 strings) that knows where each key was written, so a check
can refuse a value with the file and line (``... must be a string, not 60``)::

    >>> config = Config.from_data({"throttles": {"api": {"concurrency": 2, "timeout": 60}}})
    >>> api = config.throttles["api"]
    >>> api.check_keys(allowed={"concurrency", "worker", "timeout"})
    >>> api.integer("concurrency", minimum=1)
    2
    >>> api.integer("timeout", minimum=1), api.integer("worker", default=None)
    (60, None)
    >>> api.string("timeout")
    Traceback (most recent call last):
    ...
    werk.ConfigurationError: config["throttles"]["api"]["timeout"]: throttles.api.timeout ...

From files the origin reads ``conf.d/throttles.toml:3: ...``. Raise
``section.error(message, key)`` for checks of your own.

What is refused (werk's choices, docs/enterprise.md section 7.2): TOML syntax errors (with
tomllib's line), a top-level key or table nobody reads (``[faktory]``, ``[web]`` and
``[statsd]`` are Faktory's and accepted unread), ``cron`` that is not an array of tables,
``throttles`` that is not a table of tables, a throttle or declared table set in two files.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from werk._errors import ConfigurationError

__all__ = ["CONF_D", "KNOWN_TABLES", "Config", "Section", "load_config"]

log = logging.getLogger("werk.server")

CONF_D = "conf.d"
KNOWN_TABLES = frozenset({"cron", "throttles"})  # what werk's own extensions read
FAKTORY_TABLES = frozenset({"faktory", "web", "statsd"})  # Faktory's: accepted, unread

Path_ = tuple[str | int, ...]  # ("cron", 2, "job", "retry")

_MISSING: Any = object()


class _Origins:
    """Where each key path of one source was written."""

    def __init__(self, source: str, lines: dict[Path_, int] | None = None) -> None:
        self.source = source  # "conf.d/cron.toml", or "config" for Python data
        self.lines = lines  # None: Python data

    def of(self, path: Path_) -> str:
        if self.lines is None:
            return self.source + "".join(f"[{json.dumps(p)}]" for p in path)
        for end in range(len(path), 0, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return f"{self.source}:{line}"
        return self.source


def _dotted(path: Path_) -> str:
    return ".".join(str(p) for p in path if isinstance(p, str))


def _describe(value: object) -> str:
    return repr(value) if isinstance(value, str) else json.dumps(value, default=str)


class Section(Mapping[str, Any]):
    """One table of the configuration (a ``[[cron]]`` entry, a throttle, ``[cron.job]``)
    with the origin of each key; see the module docstring for an example."""

    def __init__(self, data: Mapping[str, Any], path: Path_, origins: _Origins) -> None:
        self.data = dict(data)
        self.path = path
        self._origins = origins

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"Section({self.origin()}, {self.data!r})"

    @property
    def name(self) -> str:
        """The dotted name of the table, for messages (``cron.job``)."""
        return _dotted(self.path)

    def origin(self, key: str | None = None) -> str:
        """Where ``key`` (or the table) was written: ``conf.d/cron.toml:12`` or
        ``config["cron"][2]["job"]``."""
        return self._origins.of(self.path if key is None else (*self.path, key))

    def error(self, message: str, key: str | None = None) -> ConfigurationError:
        """A :class:`~werk.ConfigurationError` for ``message`` at ``key``'s origin."""
        return ConfigurationError(f"{self.origin(key)}: {message}")

    def check_keys(self, allowed: Iterable[str], required: Iterable[str] = ()) -> None:
        """Refuse a key outside ``allowed`` or a missing ``required`` one."""
        allowed = set(allowed)
        for key in self.data:
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                raise self.error(f"unknown key {self.name}.{key} (known: {known})", key)
        for key in required:
            if key not in self.data:
                raise self.error(f"{self.name}.{key} is required")

    def _typed(self, key: str, default: Any, ok: bool, what: str) -> Any:
        if key not in self.data:
            if default is _MISSING:
                raise self.error(f"{self.name}.{key} is required")
            return default
        if not ok:
            value = _describe(self.data[key])
            raise self.error(f"{self.name}.{key} must be {what}, not {value}", key)
        return self.data[key]

    def string(self, key: str, default: Any = _MISSING) -> Any:
        """``key``'s string (``default`` when absent; required without one)."""
        return self._typed(key, default, isinstance(self.data.get(key), str), "a string")

    def integer(self, key: str, default: Any = _MISSING, minimum: int | None = None) -> Any:
        """``key``'s integer, at least ``minimum`` (a bool is not an integer)."""
        value = self.data.get(key)
        ok = isinstance(value, int) and not isinstance(value, bool)
        what = "an integer" if minimum is None else f"an integer >= {minimum}"
        ok = ok and (minimum is None or int(value or 0) >= minimum)
        return self._typed(key, default, ok, what)

    def array(self, key: str, default: Any = _MISSING) -> Any:
        """``key``'s list."""
        return self._typed(key, default, isinstance(self.data.get(key), list), "an array")

    def table(self, key: str) -> Section | None:
        """The nested table ``key`` as a :class:`Section` (None when absent)."""
        if key not in self.data:
            return None
        value = self.data[key]
        if not isinstance(value, Mapping):
            raise self.error(f"{self.name}.{key} must be a table, not {_describe(value)}", key)
        return Section(value, (*self.path, key), self._origins)


class Config:
    """The whole configuration of one (re)load (see the module docstring).

    Example::

        >>> Config.from_data({}).cron
        ()
        >>> Config.from_data({"cron": [{"schedule": "@daily"}]}).cron[0].origin("schedule")
        'config["cron"][0]["schedule"]'
    """

    def __init__(self, source: str = "no configuration") -> None:
        self.source = source  # for logs: where it was read from
        self.cron: tuple[Section, ...] = ()
        self.throttles: dict[str, Section] = {}
        self.tables: dict[str, Section] = {}  # other top-level tables, by name
        self.arrays: dict[str, tuple[Section, ...]] = {}  # other arrays of tables
        self.origins: dict[str, str] = {}  # top-level name -> where it was first written

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Config:
        """The configuration given as Python data, shaped like the merged TOML."""
        if not isinstance(data, Mapping) or not all(isinstance(k, str) for k in data):
            raise ConfigurationError(f"config must be a mapping of table names, not {data!r}")
        config = cls("Python data")
        config._merge(_plain(data), _Origins("config"))
        return config

    def table(self, name: str) -> Section | None:
        """The top-level table ``name`` (one an extension declared), or None; an array
        of tables (``[[name]]``) is in ``config.arrays[name]``."""
        return self.tables.get(name)

    def check_tables(self, known: Iterable[str]) -> None:
        """Refuse a top-level name that no one reads (werk's tables, Faktory's, ``known``)."""
        allowed = KNOWN_TABLES | FAKTORY_TABLES | set(known)
        for name, origin in self.origins.items():
            if name not in allowed:
                tables = ", ".join(sorted(allowed))
                raise ConfigurationError(f"{origin}: unknown table {name!r} (known: {tables})")

    def _merge(self, data: dict[str, Any], origins: _Origins) -> None:
        for name, value in data.items():
            where = origins.of((name,))
            self.origins.setdefault(name, where)
            if name in FAKTORY_TABLES:
                log.debug("%s: [%s] is Faktory's own; werk does not read it", where, name)
                continue
            if name == "cron":
                if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                    raise ConfigurationError(f"{where}: cron must be an array of tables ([[cron]])")
                self.cron += tuple(Section(v, ("cron", i), origins) for i, v in enumerate(value))
            elif name == "throttles":
                throttles = _table(name, value, where)
                for queue, limit in throttles.items():
                    at = origins.of((name, queue))
                    if not isinstance(limit, dict):
                        raise ConfigurationError(
                            f"{at}: throttles.{queue} must be a table such as "
                            f"{{ concurrency = 5, timeout = 60 }}, not {_describe(limit)}"
                        )
                    if queue in self.throttles:
                        first = self.throttles[queue].origin()
                        raise ConfigurationError(f"{at}: throttles.{queue} is also set in {first}")
                    self.throttles[queue] = Section(limit, (name, queue), origins)
            elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                more = tuple(Section(v, (name, i), origins) for i, v in enumerate(value))
                self.arrays[name] = self.arrays.get(name, ()) + more
            elif isinstance(value, dict):
                if name in self.tables:
                    first = self.tables[name].origin()
                    raise ConfigurationError(f"{where}: [{name}] is also set in {first}")
                self.tables[name] = Section(value, (name,), origins)
            else:
                raise ConfigurationError(
                    f"{where}: top-level key {name!r} (= {_describe(value)}) is not a table"
                )


def _table(name: str, value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigurationError(f"{where}: {name} must be a table ([{name}])")
    return value


def _plain(value: Any) -> Any:
    """TOML (or Python) values as JSON-like data: dates and times become RFC 3339 text."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return value


def load_config(config_dir: Path | None, data: Mapping[str, Any] | None = None) -> Config:
    """Read ``config_dir/conf.d/*.toml`` (sorted by name) or take ``data``; neither
    gives an empty configuration. A bad file is a :class:`~werk.ConfigurationError`
    naming it and the line."""
    if data is not None:
        return Config.from_data(data)
    if config_dir is None:
        return Config()
    conf_d = Path(config_dir) / CONF_D
    if not conf_d.is_dir():
        raise ConfigurationError(
            f"{str(config_dir)!r} has no {CONF_D} directory (werk reads {CONF_D}/*.toml in it)"
        )
    config = Config(f"{config_dir}/{CONF_D}")
    for path in sorted(conf_d.glob("*.toml")):
        if path.is_file():
            name = f"{CONF_D}/{path.name}"
            config._merge(*_read_toml(path, name))
    return config


_SYNTAX_LINE = re.compile(r"at line (\d+)")


def _read_toml(path: Path, name: str) -> tuple[dict[str, Any], _Origins]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigurationError(f"{name}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"{name}: not UTF-8 text ({exc.reason})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = _SYNTAX_LINE.search(message)
        where = f"{name}:{m.group(1)}" if m else name
        raise ConfigurationError(f"{where}: TOML syntax error: {message}") from None
    return _plain(data), _Origins(name, _key_lines(text))


# -- where each key was written (tomllib reports lines only for syntax errors) -----------

_BARE = r"[A-Za-z0-9_-]+"
_BASIC = r'"(?:[^"\\\n]|\\.)*"'
_LITERAL = r"'[^'\n]*'"
_PART = re.compile(f"{_BASIC}|{_LITERAL}|{_BARE}")
_DOTTED = rf"(?:{_BASIC}|{_LITERAL}|{_BARE})(?:\s*\.\s*(?:{_BASIC}|{_LITERAL}|{_BARE}))*"
_HEADER = re.compile(rf"\s*(\[\[?)\s*({_DOTTED})\s*\]")
_KEY = re.compile(rf"\s*({_DOTTED})\s*=")


def _parts(dotted: str) -> list[str]:
    out = []
    for part in _PART.findall(dotted):
        if part.startswith('"'):
            out.append(json.loads(part))
        elif part.startswith("'"):
            out.append(part[1:-1])
        else:
            out.append(part)
    return out


def _key_lines(text: str) -> dict[Path_, int]:
    """The line of each table header and key of a valid TOML document, by key path with
    the index of each array of tables (``("cron", 1, "job", "retry")``); keys inside
    inline tables and arrays are found through their parent's line."""
    lines: dict[Path_, int] = {}
    arrays: dict[Path_, int] = {}  # path of an array of tables -> its length so far
    table: Path_ = ()
    in_string: str | None = None  # the delimiter of a multi-line string being skipped
    for number, line in enumerate(text.splitlines(), 1):
        rest = line
        if in_string is None:
            header = _HEADER.match(line)
            key = None if header else _KEY.match(line)
            if header:
                path: list[str | int] = []
                parts = _parts(header.group(2))
                for i, part in enumerate(parts):
                    path.append(part)
                    here = tuple(path)
                    lines.setdefault(here, number)
                    if header.group(1) == "[[" and i == len(parts) - 1:
                        arrays[here] = arrays.get(here, 0) + 1
                        path.append(arrays[here] - 1)
                    elif here in arrays:
                        path.append(arrays[here] - 1)
                table = tuple(path)
                lines.setdefault(table, number)
                rest = line[header.end() :]
            elif key:
                parts = _parts(key.group(1))
                for end in range(1, len(parts) + 1):
                    lines.setdefault((*table, *parts[:end]), number)
                rest = line[key.end() :]
        in_string = _string_state(rest, in_string)
    return lines


def _string_state(text: str, in_string: str | None) -> str | None:
    """Whether a multi-line string is still open at the end of ``text``."""
    i = 0
    while i < len(text):
        if in_string is not None:
            end = text.find(in_string, i)
            if end < 0:
                return in_string
            i = end + 3
            in_string = None
            continue
        ch = text[i]
        if ch == "#":
            return None
        if text.startswith('"""', i) or text.startswith("'''", i):
            in_string = text[i : i + 3]
            i += 3
        elif ch == '"':
            m = re.compile(_BASIC).match(text, i)
            i = m.end() if m else len(text)
        elif ch == "'":
            end = text.find("'", i + 1)
            i = end + 1 if end >= 0 else len(text)
        else:
            i += 1
    return in_string
