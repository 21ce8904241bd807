"""A bad setting of the server is a clear ``werk.ConfigurationError`` (also a ValueError),
raised before anything starts, and names what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

import werk
from werk.server import EmbeddedServer, ManualClock
from werk.server._config import ServerConfig, default_data_dir
from werk.server._storage import open_storage
from werk.server._storage.sqlite import SQLiteStorage


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"storage": "sqlite"}, "EmbeddedServer(storage='sqlite') needs data_dir="),
        ({"storage": "redis"}, "storage must be 'sqlite' or 'memory', not 'redis'"),
        ({"bind": "localhost"}, "bind address must be HOST:PORT, not 'localhost'"),
        ({"bind": "127.0.0.1:http"}, "bind address must be HOST:PORT, not '127.0.0.1:http'"),
        ({"bind": "127.0.0.1:70000"}, "bind address must be HOST:PORT, not '127.0.0.1:70000'"),
        ({"fetch_timout": 1}, "EmbeddedServer() got unknown options: fetch_timout"),
        ({"fetch_timeout": 0}, "fetch_timeout must be a number above 0, not 0"),
        ({"max_connections": "10"}, "max_connections must be a number above 0, not '10'"),
        ({"synchronous": "SOMETIMES"}, "synchronous must be NORMAL or FULL, not 'SOMETIMES'"),
    ],
)
def test_embedded_server_refuses_bad_settings(options, message):
    with pytest.raises(werk.ConfigurationError) as info:
        EmbeddedServer(**options)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


def test_time_can_only_be_moved_on_a_manual_clock_and_only_forward(make_server):
    srv = make_server()
    with pytest.raises(werk.ConfigurationError, match=r"advance\(\) needs"):
        srv.advance(1)
    with pytest.raises(werk.ConfigurationError, match=r"set_time\(\) needs"):
        srv.set_time(1)
    clock = ManualClock(100)
    with pytest.raises(werk.ConfigurationError, match="cannot go backwards"):
        clock.advance(-1)
    assert clock.now() == 100


def test_storage_settings_are_checked(tmp_path: Path):
    with pytest.raises(werk.ConfigurationError, match="needs a data directory"):
        open_storage("sqlite")
    with pytest.raises(werk.ConfigurationError, match="not 'disk'"):
        open_storage("disk", tmp_path)
    with pytest.raises(werk.ConfigurationError, match="synchronous"):
        SQLiteStorage(tmp_path / "werk.sqlite3", synchronous="MAYBE")


def test_the_data_directory_defaults_to_werk_data_then_xdg(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("WERK_DATA", str(tmp_path / "here"))
    assert default_data_dir() == tmp_path / "here"
    monkeypatch.delenv("WERK_DATA")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_data_dir() == tmp_path / "werk"
    assert ServerConfig(bind=":7500").host == "0.0.0.0"
    assert ServerConfig(bind="[::1]:7500").host == "::1"
