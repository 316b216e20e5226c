"""``uv pip install ARGS`` into this interpreter's environment, with the package sources pip is set up with.

The Makefile installs with uv because it unpacks the 7 GB training stack about twice as fast as pip (24 s
against 58 s on 2 cores, 3 s from uv's cache on a second clone; see results/quickstart/reproducibility.md).
uv does not read pip's settings, and hosts set their package sources there (``pip config list``: find-links,
index URLs, constraints, the CA bundle), so this passes them on: both installers see the same packages, and
uv picks the best version across all indexes as pip does. If uv is missing or fails, pip installs instead.

    python .ci/uv_install.py -e ".[train,video,dev]"
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

#: pip setting -> uv option (each value of a space-separated list gets its own option)
OPTIONS = {"index-url": "--index-url", "extra-index-url": "--extra-index-url", "find-links": "--find-links",
           "constraint": "--constraint", "trusted-host": "--allow-insecure-host"}
#: pip's precedence: environment over site over user over global settings
SCOPES = (":env:", "site", "user", "global")


def pip_settings(listing: str) -> dict[str, str]:
    """``{key: value}`` of ``pip config list``'s output, the most specific scope winning."""
    found: dict[str, tuple[int, str]] = {}
    for scope, key, value in re.findall(r"^([^.\n]*)\.([\w-]+)='(.*)'$", listing, flags=re.M):
        rank = SCOPES.index(scope) if scope in SCOPES else len(SCOPES)
        if key not in found or rank < found[key][0]:
            found[key] = (rank, value)
    return {k: v for k, (_, v) in found.items()}


def uv_command(settings: dict[str, str], args: list[str]) -> list[str]:
    """The ``uv pip install`` command line for this interpreter, with ``settings``' package sources."""
    cmd = [sys.executable, "-m", "uv", "pip", "install", "--quiet", "--python", sys.executable,
           "--index-strategy", "unsafe-best-match"]
    for key, option in OPTIONS.items():
        for value in settings.get(key, "").split():
            cmd += [option, value]
    if settings.get("no-index", "").lower() in ("1", "true", "yes", "on"):
        cmd.append("--no-index")
    return cmd + args


def main(args: list[str]) -> int:
    listing = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    settings = pip_settings(listing)
    env = dict(os.environ)
    if settings.get("cert"):
        env.setdefault("SSL_CERT_FILE", settings["cert"])
    if subprocess.run(uv_command(settings, args), env=env).returncode == 0:
        return 0
    print("uv could not install; installing with pip instead", file=sys.stderr)
    return subprocess.run([sys.executable, "-m", "pip", "install", "-qq", "--no-compile", *args]).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
