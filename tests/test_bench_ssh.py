"""``edgefiq bench --device ssh://...`` against a real OpenSSH server on 127.0.0.1.

The test starts ``/usr/sbin/sshd`` on a free port with throwaway host and user keys in
``tmp_path``; the "device" is this machine, its python given by ``--remote-python``. In
CI (CI=true) a missing sshd is a failure (``.ci/run`` installs openssh-server); elsewhere
the test skips.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgefiq.bench.remote import parse_ssh_url
from edgefiq.cli import cli
from edgefiq.errors import UsageError

from test_runtime import edgefiq_artifacts  # noqa: F401  (session fixture)

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sshd(tmp_path):
    if SSHD is None or shutil.which("ssh") is None or shutil.which("scp") is None:
        if IN_CI:
            pytest.fail("sshd/ssh/scp not installed (CI must install openssh-server, see .ci/run)")
        pytest.skip("OpenSSH server not installed (apt-get install openssh-server); runs in CI")
    d = tmp_path / "sshd"
    d.mkdir()
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    shutil.copy(d / "user_key.pub", d / "authorized_keys")
    os.chmod(d / "authorized_keys", 0o600)
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
    port = _free_port()
    (d / "sshd_config").write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {d / 'host_key'}",
        f"AuthorizedKeysFile {d / 'authorized_keys'}", f"PidFile {d / 'sshd.pid'}",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
        "PermitRootLogin prohibit-password", "StrictModes no", "UsePAM no", "Subsystem sftp internal-sftp",
        "LogLevel ERROR", ""]))
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    user = os.environ.get("USER") or __import__("getpass").getuser()
    opts = ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "LogLevel=ERROR"]
    ssh = ["ssh", "-p", str(port), "-i", str(d / "user_key"), "-o", "BatchMode=yes"] + [a for o in opts for a in ("-o", o)]
    for _ in range(50):  # wait until it accepts a login
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            pytest.fail(f"sshd exited: {out}")
        if subprocess.run(ssh + [f"{user}@127.0.0.1", "true"], capture_output=True).returncode == 0:
            break
        time.sleep(0.2)
    else:
        proc.terminate()
        pytest.fail("sshd did not accept the throwaway key")
    yield {"url": f"ssh://{user}@127.0.0.1:{port}", "key": d / "user_key", "options": opts}
    proc.terminate()
    proc.wait(timeout=10)


def test_parse_ssh_url():
    assert parse_ssh_url("ssh://pi@10.0.0.2:2222") == ("pi", "10.0.0.2", 2222)
    assert parse_ssh_url("ssh://board") == (None, "board", 22)
    with pytest.raises(UsageError):
        parse_ssh_url("pi@board")


def test_bench_over_ssh(sshd, edgefiq_artifacts, tmp_path):
    out = tmp_path / "remote.json"
    args = ["bench", str(edgefiq_artifacts["onnx"]), "--device", sshd["url"], "--remote-python", sys.executable,
            "--ssh-key", str(sshd["key"]), "--threads", "1,2", "--min-runs", "3", "--min-time", "0", "--warmup", "1",
            "-o", str(out)]
    for o in sshd["options"]:
        args += ["--ssh-option", o]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output + repr(res.exception)
    data = json.loads(out.read_text())
    rows = data["rows"]
    assert [r["threads"] for r in rows] == [1, 2]
    for r in rows:
        assert r["status"] == "ok" and r["p50_ms"] > 0 and r["device"].startswith("ssh://127.0.0.1")
        assert r["path"] == str(edgefiq_artifacts["onnx"])
    assert data["environment"]["python"]  # the device's environment came back
    assert (tmp_path / "remote.md").is_file()
