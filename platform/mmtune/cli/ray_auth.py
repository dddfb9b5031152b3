"""Ray's token authentication for the Ray a command starts on this machine: on, and quiet.

Ray 2.60 turns token authentication on for every new local cluster (a token in ``~/.ray/auth_token``, created when
missing) and says so on every command ("Token authentication is enabled ... Set RAY_AUTH_MODE=disabled to opt
out"), which is noise for local use. Naming the mode explicitly (``RAY_AUTH_MODE=token``) keeps the same protection
and silences the warning. Commands that join a cluster (``--address HOST:PORT`` or ``auto``) are left alone: the
cluster's own setting applies (docs/cluster.md, "Ray token authentication"). A value the user set is never changed.
"""

from __future__ import annotations

import os
import sys

AUTH_MODE_ENV = "RAY_AUTH_MODE"


def joins_cluster(args: list[str]) -> bool:
    """True when the command line names a Ray cluster to join (``--address X`` / ``--address=X``, X not local)."""
    for i, arg in enumerate(args):
        value = None
        if arg == "--address" and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--address="):
            value = arg.split("=", 1)[1]
        if value is not None and value.strip().lower() not in ("", "local"):
            return True
    return False


def quiet_local_auth(args: list[str]) -> None:
    """Set ``RAY_AUTH_MODE=token`` for a command that starts its own local Ray, unless the user chose a mode.

    Only in a process that has not imported Ray yet: Ray reads the mode once per process, so changing it after
    (the CLI called from Python, e.g. a notebook or the tests) would start a cluster whose GCS wants a token the
    process's own client does not send.
    """
    if "ray" in sys.modules:
        return
    if AUTH_MODE_ENV not in os.environ and not joins_cluster(args):
        os.environ[AUTH_MODE_ENV] = "token"
