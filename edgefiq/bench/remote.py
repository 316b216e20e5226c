"""On-device benchmarks over SSH: ``edgefiq bench ... --device ssh://user@host[:port]``.

The device needs the base ``edgefiq`` install (torch-free) and the artifact's runtime. Steps:
make a temporary folder on the device (``mktemp -d``), copy each artifact's files and
its sidecar there (``scp``), run ``<remote-python> -m edgefiq bench`` on them, copy the
JSON back, remove the folder. Non-interactive: ``BatchMode=yes`` (key authentication
only). No local shell is involved (argument lists); the remote command line is built
with ``shlex.quote``.

Example:
    >>> parse_ssh_url("ssh://pi@192.168.1.20:2222")
    ('pi', '192.168.1.20', 2222)
"""

from __future__ import annotations

import json
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

from edgefiq.bench.core import _read_meta_dict
from edgefiq.errors import EdgefiqError, UsageError
from edgefiq.export.base import artifact_files, meta_path
from edgefiq.registry import BACKENDS


def parse_ssh_url(url: str) -> tuple[str | None, str, int]:
    """``ssh://[user@]host[:port]`` -> ``(user, host, port)`` (port 22 by default)."""
    parts = urlsplit(url)
    if parts.scheme != "ssh" or not parts.hostname:
        raise UsageError(f"device must look like ssh://user@host[:port], got {url!r}")
    try:
        port = parts.port or 22
    except ValueError:
        raise UsageError(f"bad port in {url!r}") from None
    return parts.username, parts.hostname, port


def _files_of(path: Path) -> list[Path]:
    if not path.is_file():
        raise UsageError(f"{path}: artifact not found")
    meta = _read_meta_dict(path) or {}
    files = [path]
    if meta.get("backend") in BACKENDS.names():
        files = artifact_files(BACKENDS.get(meta["backend"])(), path)
    return [f for f in dict.fromkeys([*files, meta_path(path)]) if f.is_file()]


class SshDevice:
    """Runs commands and copies files on one SSH host (key auth, no prompts)."""

    def __init__(self, url: str, *, key: str | Path | None = None, options: Sequence[str] = (), timeout: float = 600):
        self.user, self.host, self.port = parse_ssh_url(url)
        self.target = f"{self.user}@{self.host}" if self.user else self.host
        opts = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=20"]
        for o in options:
            opts += ["-o", o]
        if key:
            opts += ["-i", str(key)]
        self.opts, self.timeout = opts, timeout

    def run(self, command: str) -> str:
        """Run ``command`` (already quoted) on the host; return stdout or raise with its stderr."""
        res = subprocess.run(["ssh", "-p", str(self.port), *self.opts, self.target, command],
                             capture_output=True, text=True, timeout=self.timeout)
        if res.returncode != 0:
            err = (res.stderr.strip().splitlines() or [f"exit code {res.returncode}"])[-1]
            raise EdgefiqError(f"ssh {self.target}: `{command[:80]}` failed: {err}")
        return res.stdout

    def copy(self, sources: Sequence[str], dest: str) -> None:
        """``scp`` (either direction: remote paths as ``host:path`` via ``remote()``)."""
        res = subprocess.run(["scp", "-q", "-P", str(self.port), *self.opts, *sources, dest],
                             capture_output=True, text=True, timeout=self.timeout)
        if res.returncode != 0:
            err = (res.stderr.strip().splitlines() or [f"exit code {res.returncode}"])[-1]
            raise EdgefiqError(f"scp to/from {self.target} failed: {err}")

    def remote(self, path: str) -> str:
        return f"{self.target}:{path}"


def benchmark_remote(artifacts: Sequence[str | Path], url: str, *, threads: Sequence[int] = (1,),
                     batches: Sequence[int] = (1,), warmup: int = 5, min_runs: int = 30, min_time_s: float = 1.0,
                     remote_python: str = "python3", ssh_key: str | Path | None = None,
                     ssh_options: Sequence[str] = ()) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Benchmark artifacts on an SSH device; returns ``(rows, remote_environment)``.

    Args:
        artifacts: local artifact files (their sidecars and weight files are copied too).
        url: ``ssh://user@host[:port]``.
        remote_python: python on the device that has the base ``edgefiq`` install.
        ssh_key: private key file; ssh_options: extra ``-o`` options (e.g. ``StrictHostKeyChecking=no``).

    Example:
        >>> rows, env = benchmark_remote(["m.onnx"], "ssh://pi@raspberrypi", threads=(1, 4))   # doctest: +SKIP
    """
    dev = SshDevice(url, key=ssh_key, options=ssh_options)
    paths = [Path(a) for a in artifacts]
    names = [p.name for p in paths]
    if len(set(names)) != len(names):
        raise UsageError("artifacts sent to a device must have distinct file names")
    files = [str(f) for p in paths for f in _files_of(p)]
    rdir = dev.run("mktemp -d").strip()
    if not rdir.startswith("/"):
        raise EdgefiqError(f"ssh {dev.target}: unexpected mktemp output {rdir!r}")
    try:
        dev.copy(files, dev.remote(rdir + "/"))
        cmd = " ".join(shlex.quote(c) for c in [
            remote_python, "-m", "edgefiq", "-q", "bench", *names,
            "--threads", ",".join(map(str, threads)), "--batch-size", ",".join(map(str, batches)),
            "--warmup", str(warmup), "--min-runs", str(min_runs), "--min-time", str(min_time_s),
            "--no-png", "-o", "bench.json"])
        dev.run(f"cd {shlex.quote(rdir)} && {{ {cmd}; test -f bench.json; }}")   # failed rows exit 1
        with tempfile.TemporaryDirectory() as tmp:
            dev.copy([dev.remote(rdir + "/bench.json")], tmp)
            data = json.loads((Path(tmp) / "bench.json").read_text())
    finally:
        try:
            dev.run(f"rm -rf {shlex.quote(rdir)}")
        except EdgefiqError:
            pass
    rows = data.get("rows", [])
    local = {p.name: str(p) for p in paths}
    for r in rows:
        r["device"] = f"ssh://{dev.host}" + (f":{dev.port}" if dev.port != 22 else "")
        r["path"] = local.get(r.get("artifact", ""), r.get("path", ""))
    return rows, data.get("environment", {})
