"""Ctrl-C deferred to a safe point: the store writer checks it between chunks, the training loop between steps."""

from __future__ import annotations

import signal
import threading


class DeferredCtrlC:
    """While installed, the first Ctrl-C only sets `pressed`; the code checks it at its next safe point (`check`).

    A KeyboardInterrupt raised while h5py runs a weakref callback is printed and dropped by Python, so a store write
    would go on and commit; a training step interrupted half-way has no consistent state to save. A second Ctrl-C
    interrupts at once. Only in the main thread (where Python delivers signals); elsewhere it does nothing.

        with DeferredCtrlC() as ctrl_c:
            for chunk in chunks:
                write(chunk)
                ctrl_c.check()    # raises KeyboardInterrupt here, between chunks
    """

    def __init__(self):
        self.pressed = False
        self._previous = None

    def __enter__(self) -> DeferredCtrlC:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread() and self._previous is None:
            self._previous = signal.signal(signal.SIGINT, self._handler)

    def _handler(self, signum, frame) -> None:
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True

    def check(self) -> None:
        """Raise KeyboardInterrupt if Ctrl-C was pressed since `install`."""
        if self.pressed:
            raise KeyboardInterrupt

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
