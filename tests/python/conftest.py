"""Shared fixtures: an opensandbox-executor started directly as a subprocess."""

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]



def executor_bin() -> str:
    path = os.environ.get("OPENSANDBOX_EXECUTOR_BIN") or str(
        REPO_ROOT / "target" / "debug" / "opensandbox-executor"
    )
    if not os.path.exists(path):
        subprocess.run(
            ["cargo", "build", "-p", "opensandbox-executor", "--bin", "opensandbox-executor"],
            cwd=REPO_ROOT,
            check=True,
        )
    return path


@pytest.fixture
def executor():
    """Yields (execd endpoint 'host:port', scratch dir) for a fresh executor."""
    port, task_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as scratch:
        env = dict(os.environ)
        env["EXECD_ENVS"] = os.path.join(scratch, ".env")
        env.pop("EXECD_ACCESS_TOKEN", None)
        proc = subprocess.Popen(
            [
                executor_bin(),
                f"--port={port}",
                "--task-listen-addr",
                f"127.0.0.1:{task_port}",
                "--task-data-dir",
                os.path.join(scratch, "tasks"),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
        )
        try:
            deadline = time.time() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.time() > deadline:
                        raise RuntimeError("executor did not start")
                    time.sleep(0.05)
            yield f"127.0.0.1:{port}", scratch
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
