"""Lua scripts kept in ``.lua`` files beside the module that runs them (package data), each
with a header naming its KEYS and ARGV; loaded once per process and registered per client
(``register_script``: EVALSHA, reloaded if Redis lost it)."""

from __future__ import annotations

import functools
from importlib import resources


@functools.cache
def script(package: str, name: str) -> str:
    """The text of ``name`` (e.g. ``"call_transition.lua"``) in ``package``."""
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")
