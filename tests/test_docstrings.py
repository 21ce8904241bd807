"""The examples in werk's docstrings run: a wrong ``>>>`` example fails the suite."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import werk

# The entry point runs the CLI when imported; it has no examples.
_SKIP = {"werk.__main__"}

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(werk.__path__, prefix="werk.")
    if info.name not in _SKIP
)


def test_every_module_is_found() -> None:
    assert {"werk._protocol.resp", "werk.client._sync", "werk.server._dispatch"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
