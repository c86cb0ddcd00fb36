"""Ports for the servers the tests start.

A port the kernel hands out for a `:0` bind comes from its ephemeral range (32768 and up), which
the tests' own outgoing connections draw from too, so it can be taken again before the server
binds it. These come from below that range, from a slice of this process's own (by pid), each
probed before it is handed out.
"""

import itertools
import os
import socket

_SLICE = 200
_BASE = 20_000 + (os.getpid() % 60) * _SLICE
_next = itertools.count()


def free_port() -> int:
    for _ in range(_SLICE):
        port = _BASE + next(_next) % _SLICE
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in 127.0.0.1:{_BASE}..{_BASE + _SLICE}")
