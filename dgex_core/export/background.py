"""Writing sample blocks on a thread of their own: :class:`BackgroundWriter` runs
another block writer's ``append`` there, so computing the next block and writing this
one overlap, with memory bounded by the blocks allowed to wait.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from pathlib import Path

from ..matrix import ExpressionMatrix
from .base import BlockWriter

__all__ = ["BackgroundWriter"]

_DONE = object()


class BackgroundWriter(BlockWriter):
    """Runs another block writer's ``append`` on a thread of its own.

    ``append`` hands the block over and returns at once, unless ``max_queued`` blocks
    already wait (then it waits: memory stays bounded at about ``max_queued + 2``
    blocks, the one being computed, those queued and the one being written). The
    caller must not modify a block after handing it over.

    An exception raised while writing is re-raised in the caller, by the next
    ``append`` or by ``close``; the output is then discarded (nothing under the final
    name). ``discard`` drops the queued blocks, waits for the block being written, and
    discards the output. ``on_written(block)``, if given, is called on the writer
    thread after each block is written (e.g. to reuse its array). Because ``close`` and ``discard`` run in the caller's thread
    after the writer thread has finished, the atomic rename behaves as without a thread.
    """

    def __init__(self, inner, max_queued: int = 1, on_written=None) -> None:
        self.inner = inner
        self.retains_blocks = inner.retains_blocks
        self._on_written = on_written
        # SimpleQueue's put/get are single C calls: a signal turned into an exception in
        # the caller (SIGTERM -> _Terminated) lands between them, never inside, so neither
        # queue is ever left half-updated (a queue.Queue can be, and then a join waits forever).
        # ``_slots`` holds one token per block allowed to wait: memory stays bounded.
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._slots: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(max(1, max_queued)):
            self._slots.put(None)
        self._error: BaseException | None = None
        self._dropping = False
        self._finished = False
        self._done_sent = False
        self._discarded = False
        self._thread = threading.Thread(target=self._run, name="dgex-block-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            block = self._q.get()
            if block is _DONE:
                return
            try:
                if self._error is None and not self._dropping:
                    self.inner.append(block)
                    if self._on_written is not None:
                        self._on_written(block)
            except BaseException as e:  # re-raised in the caller's thread
                self._error = e
            finally:
                self._slots.put(None)  # a block written (or dropped): another may wait

    def _put(self, item) -> None:
        if item is _DONE:  # the end marker takes no slot
            self._q.put(item)
            return
        while True:
            try:
                self._slots.get(timeout=0.05)
                break
            except queue.Empty:
                if not self._thread.is_alive():
                    return
                if self._error is not None:
                    self._fail()
        self._q.put(item)

    def _fail(self):
        err = self._error
        self.discard()
        raise err

    def append(self, block: ExpressionMatrix) -> None:
        if self._finished:
            raise ValueError("the writer is closed")
        if self._error is not None:
            self._fail()
        self._put(block)

    def _stop(self) -> None:
        # ``_done_sent`` only once the end marker is in the queue: a signal raised between
        # the two (SIGTERM becomes an exception in this thread) must not leave a later
        # ``discard`` waiting forever for a writer thread that was never told to end
        self._finished = True
        if not self._done_sent:
            self._put(_DONE)
            self._done_sent = True
        self._thread.join()

    def close(self) -> Path:
        self._stop()
        if self._error is not None:
            with contextlib.suppress(Exception):
                self.inner.discard()
            raise self._error
        return self.inner.close()

    def discard(self) -> None:
        self._dropping = True
        self._stop()
        if not self._discarded:
            self._discarded = True
            self.inner.discard()
