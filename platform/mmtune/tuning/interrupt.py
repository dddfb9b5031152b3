"""SIGTERM behaves like Ctrl-C: Tune saves the experiment state, the results of what finished are written, the
command prints how to resume and exits 128 + the signal (130 for SIGINT, 143 for SIGTERM).

Ray Tune stops gracefully on SIGINT (and SIGUSR1) only while ``Tuner.fit`` runs; a SIGTERM (``kill``, a batch
scheduler's time limit, ``docker stop``) hit Ray's own handler and died with a C++ stack dump and nothing written.
``graceful_stop`` turns Tune's SIGINT handler off (``TUNE_DISABLE_SIGINT_HANDLER``) and installs one handler for
both signals: it records the signal and asks Tune to stop through the SIGUSR1 handler Tune registers during
``fit``; outside ``fit`` (or at a second signal) it raises ``Interrupted``, a ``KeyboardInterrupt``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A SIGINT or SIGTERM outside Tune's fit (or a second one): the command exits 128 + ``signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@dataclass
class StopRequest:
    """The signal that stopped the study (None: it ran to the end)."""

    signum: int | None = None

    @property
    def exit_code(self) -> int | None:
        return None if self.signum is None else 128 + self.signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""


@contextlib.contextmanager
def graceful_stop() -> Iterator[StopRequest]:
    """Within the block, SIGINT / SIGTERM stop Tune gracefully once (then raise ``Interrupted``)."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    watched = (*SIGNALS, signal.SIGUSR1) if hasattr(signal, "SIGUSR1") else SIGNALS
    previous = {sig: signal.getsignal(sig) for sig in watched}
    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)  # a handler left by an earlier fit would swallow the stop
    env_before = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"

    def handler(signum: int, frame: Any) -> None:
        first = request.signum is None
        if first:
            request.signum = signum
        tune_stop = signal.getsignal(signal.SIGUSR1) if hasattr(signal, "SIGUSR1") else None
        if first and callable(tune_stop):
            tune_stop(signum, frame)  # Tune's own "stop, save the experiment state" (sets its interrupt event)
            return
        raise Interrupted(signum)

    for sig in SIGNALS:
        signal.signal(sig, handler)
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        if env_before is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = env_before
