"""Keep a notebook's kernel from sleeping on a request it never read.

A Jupyter kernel can leave a request on its shell socket unread: the kernel sits idle (no CPU), the client
waits for a reply that never comes, and only another message arriving on the same socket wakes it
(ipykernel#1554: a send on the shell ROUTER consumes the edge-triggered wake-up of the stream that reads it).
This project saw it in CI-like runs under ipykernel 7.4 and again under 6.31: chapter 12's full-grid check
stood idle for more than 10 minutes and went on within seconds of an unrelated request from a second client.

:func:`keep_awake` is that second client, on a timer: while a notebook runs it sends a ``kernel_info_request``
every ``interval`` seconds and drops the reply. A busy kernel answers it between two cells (its status
messages name the request as their parent, so the executors, which wait for their own cell's messages,
ignore them); a kernel that missed a request wakes and reads both.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["keep_awake"]


@contextmanager
def keep_awake(kernel_manager: Any, interval: float = 10.0) -> Iterator[threading.Thread]:
    """While the block runs, ping the kernel of ``kernel_manager`` (a jupyter_client kernel manager whose
    kernel is started) with a ``kernel_info_request`` every ``interval`` seconds from a client of its own,
    in a daemon thread. Yields the thread. A kernel that has died or stopped answering is not an error
    here: the executor's own timeouts report it."""
    if not interval > 0:
        raise ValueError(f"interval must be a number of seconds > 0, got {interval!r}")
    from jupyter_client import BlockingKernelClient

    info = kernel_manager.get_connection_info()  # ports and signing key; read here, not in the thread
    stop = threading.Event()

    def ping() -> None:
        client = BlockingKernelClient()
        client.load_connection_info(info)
        client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
        try:
            while not stop.wait(interval):
                sent = client.kernel_info()
                # wait for the reply (a busy kernel sends it after its cell) so that none is in flight when the
                # executor shuts the kernel down; give up at the next ping or when the block ends
                deadline = time.monotonic() + interval
                while not stop.is_set() and time.monotonic() < deadline:
                    try:
                        if client.get_shell_msg(timeout=0.2)["parent_header"].get("msg_id") == sent:
                            break
                    except queue.Empty:
                        continue
        except Exception:  # noqa: BLE001 - a dead kernel or closed sockets: the executor reports those
            pass
        finally:
            client.stop_channels()

    thread = threading.Thread(target=ping, name="kernel-keep-awake", daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        thread.join(timeout=5)
