"""The Makefile's uv install (.ci/uv_install.py) uses the package sources pip is set up with."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "uv_install.py"


def _module():
    spec = importlib.util.spec_from_file_location("uv_install", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


LISTING = """:env:.find-links='/opt/wheels'
:env:.default-timeout='180'
global.cert='/etc/ssl/certs/ca-certificates.crt'
global.constraint='/etc/xdg/pip/constraints.txt'
global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'
global.find-links='/elsewhere'
user.index-url='https://mirror.example/simple'
"""


def test_pip_settings_take_the_most_specific_scope() -> None:
    s = _module().pip_settings(LISTING)
    assert s["find-links"] == "/opt/wheels"   # the environment wins over the global file
    assert s["extra-index-url"] == "file:///opt/pypi/simple file:///opt/pypi-more/simple"
    assert s["index-url"] == "https://mirror.example/simple" and s["cert"].endswith("ca-certificates.crt")


def test_uv_gets_every_source_and_pips_version_choice() -> None:
    mod = _module()
    cmd = mod.uv_command(mod.pip_settings(LISTING), ["-e", ".[train]"])
    assert cmd[:5] == [sys.executable, "-m", "uv", "pip", "install"] and cmd[-2:] == ["-e", ".[train]"]
    pairs = list(zip(cmd, cmd[1:]))
    for pair in [("--find-links", "/opt/wheels"), ("--extra-index-url", "file:///opt/pypi/simple"),
                 ("--extra-index-url", "file:///opt/pypi-more/simple"), ("--constraint", "/etc/xdg/pip/constraints.txt"),
                 ("--index-url", "https://mirror.example/simple"), ("--index-strategy", "unsafe-best-match"),
                 ("--python", sys.executable)]:
        assert pair in pairs, pair
    assert ("--find-links", "/elsewhere") not in pairs and "--no-index" not in cmd
    assert "--no-index" in mod.uv_command({"no-index": "true"}, [])
