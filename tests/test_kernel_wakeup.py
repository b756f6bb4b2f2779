"""tools/kernel_wakeup.py: the pinger reaches the kernel on its timer, leaves the executor's replies alone,
and stops with its block."""
import queue
import sys
import time

import pytest
from bookutil import ROOT

sys.path.insert(0, str(ROOT / "tools"))
from kernel_wakeup import keep_awake  # noqa: E402


@pytest.fixture(scope="module")
def kernel():
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    yield km, kc
    kc.stop_channels()
    km.shutdown_kernel(now=True)


def _pings(kc, seconds: float) -> int:
    """kernel_info requests the kernel handled from other clients in the next ``seconds`` (from its status
    messages on iopub, which name each request as their parent)."""
    n, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            msg = kc.get_iopub_msg(timeout=0.1)
        except queue.Empty:
            continue
        parent = msg["parent_header"]
        n += (msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"
              and parent.get("msg_type") == "kernel_info_request" and parent.get("session") != kc.session.session)
    return n


def test_pings_on_its_timer_and_the_executor_still_gets_its_reply(kernel):
    km, kc = kernel
    with keep_awake(km, interval=0.2) as thread:
        assert thread.is_alive()
        assert _pings(kc, 1.5) >= 3
        reply = kc.execute_interactive("x = 6 * 7", timeout=30)  # the executor's own request, answered to it
        assert reply["content"]["status"] == "ok"
    assert not thread.is_alive()
    _pings(kc, 0.3)  # drain what was in flight
    assert _pings(kc, 0.8) == 0  # stopped with its block


def test_bad_interval():
    with pytest.raises(ValueError, match="interval"):
        with keep_awake(object(), interval=0):
            pass
