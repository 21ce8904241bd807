"""The configuration directory (``DIR/conf.d/*.toml``) and its Python-data twin: merged
in file order, each key traced to its file and line, bad files refused with both."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.server.seam_extension import Recorder
from tests.servers import ServerFactory

import werk
from werk.server._confd import Config, load_config
from werk.server._extension import Extension

CRON_A = """\
# first file
[[cron]]
  schedule = "*/5 * * * *"
  [cron.job]
    type = "FiveJob"
    retry = 3

[[cron]]
  schedule = "@hourly"
  [cron.job]
    type = "Hourly"
    queue = "low"
    [cron.job.custom]
      note = \"\"\"
not = a key
\"\"\"
      when = 2025-01-02T03:04:05Z
"""

CRON_B = """\
[[cron]]
schedule = "0 0 * * *"
job = { type = "Nightly", args = [1, 2] }
"""


def conf_dir(tmp_path: Path, **files: str) -> Path:
    (tmp_path / "conf.d").mkdir(exist_ok=True)
    for name, text in files.items():
        (tmp_path / "conf.d" / name).write_text(text)
    return tmp_path


def test_cron_entries_of_every_file_are_merged_in_file_order(tmp_path: Path) -> None:
    config = load_config(conf_dir(tmp_path, **{"b.toml": CRON_B, "a.toml": CRON_A}))
    assert [entry["job"]["type"] for entry in config.cron] == ["FiveJob", "Hourly", "Nightly"]
    five, hourly, nightly = config.cron
    assert five.origin() == "conf.d/a.toml:2"
    assert five.origin("schedule") == "conf.d/a.toml:3"
    job = five.table("job")
    assert job is not None and job.name == "cron.job"
    assert job.origin("retry") == "conf.d/a.toml:6"
    custom = hourly.table("job").table("custom")  # type: ignore[union-attr]
    assert custom is not None
    assert custom.origin() == "conf.d/a.toml:13"
    assert custom["note"] == "not = a key\n"
    assert custom.origin("when") == "conf.d/a.toml:17"  # the multi-line string is skipped
    assert custom["when"] == "2025-01-02T03:04:05+00:00"  # TOML dates become RFC 3339 text
    assert nightly.table("job").origin("args") == "conf.d/b.toml:3"  # type: ignore[union-attr]


def test_checks_name_the_file_and_line(tmp_path: Path) -> None:
    config = load_config(conf_dir(tmp_path, **{"a.toml": CRON_A}))
    job = config.cron[0].table("job")
    assert job is not None
    with pytest.raises(werk.ConfigurationError, match=r"^conf.d/a.toml:6: cron.job.retry must"):
        job.string("retry")
    with pytest.raises(
        werk.ConfigurationError, match=r"^conf.d/a.toml:5: unknown key cron.job.type"
    ):
        job.check_keys({"queue", "retry"})
    with pytest.raises(
        werk.ConfigurationError, match=r"^conf.d/a.toml:4: cron.job.args is required"
    ):
        job.array("args")
    assert job.integer("retry", minimum=0) == 3
    assert job.array("args", default=[]) == []


def test_throttles_merge_by_name_and_a_name_in_two_files_is_refused(tmp_path: Path) -> None:
    d = conf_dir(
        tmp_path,
        **{
            "t1.toml": "[throttles]\napi = { concurrency = 2, timeout = 60 }\n",
            "t2.toml": "[throttles.mail]\nworker = 1\ntimeout = 30\n",
        },
    )
    config = load_config(d)
    assert {name: dict(t) for name, t in config.throttles.items()} == {
        "api": {"concurrency": 2, "timeout": 60},
        "mail": {"worker": 1, "timeout": 30},
    }
    assert config.throttles["api"].origin("timeout") == "conf.d/t1.toml:2"
    assert config.throttles["mail"].origin("timeout") == "conf.d/t2.toml:3"
    (d / "conf.d" / "t3.toml").write_text("\n[throttles]\napi = { concurrency = 1, timeout = 1 }\n")
    with pytest.raises(
        werk.ConfigurationError,
        match=r"^conf.d/t3.toml:3: throttles.api is also set in conf.d/t1.toml:2$",
    ):
        load_config(d)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[cron]]\nschedule = \n", r"^conf.d/bad.toml:2: TOML syntax error: .*line 2"),
        ("\n\n[[crons]]\nschedule = '@daily'\n", r"^conf.d/bad.toml:3: unknown table 'crons'"),
        ("[cron]\nschedule = '@daily'\n", r"^conf.d/bad.toml:1: cron must be an array of tables"),
        ("schedule = '@daily'\n", r"^conf.d/bad.toml:1: top-level key 'schedule'"),
        ("[[throttles]]\nx = 1\n", r"^conf.d/bad.toml:1: throttles must be a table"),
        ("[throttles]\napi = 3\n", r"^conf.d/bad.toml:2: throttles.api must be a table such"),
        ("[cron]]\n", r"^conf.d/bad.toml:1: TOML syntax error"),
    ],
)
def test_a_bad_file_is_refused_with_its_name_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(werk.ConfigurationError, match=message):
        load_config(conf_dir(tmp_path, **{"bad.toml": text})).check_tables(())


def test_faktory_tables_are_accepted_and_other_files_ignored(tmp_path: Path) -> None:
    d = conf_dir(
        tmp_path,
        **{
            "faktory.toml": '[faktory]\nbinding = ":7419"\n[web]\nbinding = ":7420"\n',
            "statsd.toml": '[statsd]\nlocation = "localhost:8125"\n',
            "notes.txt": "not toml [[[",
        },
    )
    (d / "conf.d" / "sub.toml").mkdir()  # a directory is not a file to read
    config = load_config(d)
    config.check_tables(())
    assert config.cron == () and config.throttles == {} and config.tables == {}


def test_a_directory_without_conf_d_is_refused(tmp_path: Path) -> None:
    with pytest.raises(werk.ConfigurationError, match=r"has no conf\.d directory"):
        load_config(tmp_path)
    with pytest.raises(werk.ConfigurationError, match="is not a directory"):
        werk.server.EmbeddedServer(config_dir=tmp_path / "missing")


def test_python_data_is_traced_by_its_keys() -> None:
    config = Config.from_data({"cron": [{"schedule": "@daily", "job": {"type": "T"}}]})
    job = config.cron[0].table("job")
    assert job is not None
    with pytest.raises(werk.ConfigurationError, match=r'^config\["cron"\]\[0\]\["job"\]\["type"\]'):
        job.integer("type")
    with pytest.raises(werk.ConfigurationError, match=r"mapping of table names"):
        Config.from_data(["cron"])  # type: ignore[arg-type]
    with pytest.raises(werk.ConfigurationError, match=r'^config\["nope"\]: unknown table'):
        Config.from_data({"nope": {}}).check_tables(())
    Config.from_data({"nope": {}}).check_tables(["nope"])  # an extension's own table


def test_config_dir_and_config_data_are_exclusive(tmp_path: Path) -> None:
    with pytest.raises(werk.ConfigurationError, match="config_dir or config, not both"):
        werk.server.EmbeddedServer(config_dir=conf_dir(tmp_path), config={})
    with pytest.raises(werk.ConfigurationError, match="config must be a mapping"):
        werk.server.EmbeddedServer(config=[1])


def test_a_bad_reload_keeps_the_old_configuration_of_every_extension(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    d = conf_dir(tmp_path, **{"a.toml": "[seam]\nlimit = 2\n"})
    first = Recorder()

    class Second(Extension):
        config_tables = ("other",)
        limit = 0

        def read_config(self, config: Config) -> object:
            other = config.table("other")
            return 1 if other is None else other.integer("limit", minimum=1)

        def use_config(self, config: object) -> None:
            assert isinstance(config, int)
            self.limit = config

    second = Second()
    srv = make_server(config_dir=d, extensions=[first, second])
    assert (first.limit, second.limit) == (2, 1)
    (d / "conf.d" / "a.toml").write_text("[seam]\nlimit = 5\n")
    (d / "conf.d" / "b.toml").write_text("[other]\nlimit = 0\n")
    with pytest.raises(werk.ConfigurationError, match=r"^conf.d/b.toml:2: other.limit must"):
        srv.reload_config()
    assert (first.limit, second.limit) == (2, 1)  # the first read its part, used nothing
    (d / "conf.d" / "b.toml").write_text("[other]\nlimit = 3\n[[cron]]\nschedule = = 1\n")
    with pytest.raises(werk.ConfigurationError, match=r"^conf.d/b.toml:4: TOML syntax error"):
        srv.reload_config()
    assert (first.limit, second.limit) == (2, 1)
    (d / "conf.d" / "b.toml").write_text("[other]\nlimit = 3\n")
    srv.reload_config()
    assert (first.limit, second.limit) == (5, 3)


_NOISE = st.lists(st.sampled_from(["", "# a comment", "  # [[cron]] in a comment"]), max_size=2)
_KEY = st.sampled_from(["retry", '"retry"', "'retry'"])


@st.composite
def cron_documents(draw: st.DrawFn) -> tuple[str, list[tuple[int, int]]]:
    """A TOML file of cron entries written in the styles TOML allows, and for each entry
    the line of its ``retry`` key and its value."""
    lines: list[str] = []
    expected = []
    for _ in range(draw(st.integers(1, 4))):
        lines += draw(_NOISE)
        lines += ["[[cron]]", 'schedule = "@daily"']
        retry = draw(st.integers(0, 99))
        style = draw(st.sampled_from(["table", "inline", "dotted"]))
        if style == "table":
            lines.append("[ cron . job ]" if draw(st.booleans()) else "[cron.job]")
            lines += draw(_NOISE)
            if draw(st.booleans()):  # a multi-line string that looks like keys
                lines += ['note = """', "retry = 1", "[cron.job]", '"""']
            lines.append(f"{draw(_KEY)} = {retry}")
            expected.append((len(lines), retry))
            lines.append('type = "T"')
            if draw(st.booleans()):
                lines += ["[cron.job.custom]", "retry = 1234"]  # same name, other table
        elif style == "inline":
            lines.append(f'job = {{ type = "T", retry = {retry} }}')
            expected.append((len(lines), retry))
        else:
            lines += draw(_NOISE)
            lines.append('job.type = "T"')
            lines.append(f"job.{draw(_KEY)} = {retry}")
            expected.append((len(lines), retry))
    return "\n".join(lines) + "\n", expected


@settings(max_examples=150, deadline=None)
@given(cron_documents())
def test_each_key_is_traced_to_its_line(document: tuple[str, list[tuple[int, int]]]) -> None:
    text, expected = document
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(conf_dir(Path(tmp), **{"x.toml": text}))
    assert len(config.cron) == len(expected)
    for entry, (line, retry) in zip(config.cron, expected, strict=True):
        job = entry.table("job")
        assert job is not None
        assert job.integer("retry") == retry
        assert job.origin("retry") == f"conf.d/x.toml:{line}"
