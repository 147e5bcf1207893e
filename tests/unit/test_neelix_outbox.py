"""neelix's outbox in its state file: a committed notice becomes one alert per action; a
courier retries a failing one with backoff until `retries` or `retry_for`, then records it
as failed; old history is pruned, pending alerts never."""

from __future__ import annotations

import socketserver
import sys
import threading
import time

from appliance.neelix import state as state
from appliance.neelix.actions import Action
from appliance.neelix.heartbeats import HeartbeatWatch
from appliance.neelix.notice import Notice
from appliance.neelix.outbox import Courier, backoff
from appliance.neelix.rules import RuleMatcher
from appliance.neelix.transports import Context

CONTEXT = Context("test", "127.0.0.1", 9, "")


def queue(tmp_path, *notices: Notice) -> None:
    state.open_state(tmp_path / "neelix.sqlite")
    state.commit(list(notices), RuleMatcher(()), HeartbeatWatch((), lambda _s: True), "0of1", set(),
                 ("neelix-0of1", "origin", 7))


def notice(actions: tuple[str, ...] = ("fail",), event: str = "match") -> Notice:
    return Notice(event, "rule", "sys", "sys", time.time(), actions,
                  record={"message": "boom"})


def courier(action: Action) -> Courier:
    return Courier(action, "0of1", CONTEXT, 60.0, threading.Event())


def test_a_failing_command_is_retried_then_recorded_as_failed(tmp_path):
    queue(tmp_path, notice(("fail", "ok")))
    failing = courier(Action("fail", "command", {"command": (sys.executable, "-c",
                                                             "raise SystemExit(3)")},
                             retries=2))
    alert = failing._next_due()
    failing.deliver(alert)
    row = state.Alert.get_by_id(alert.id)
    assert (row.status, row.attempts) == ("pending", 1) and "exited 3" in row.last_error
    assert row.next_attempt > time.time() + 0.5  # backed off, not due at once
    assert failing._next_due() is None
    failing.deliver(row)
    row = state.Alert.get_by_id(alert.id)
    assert (row.status, row.attempts) == ("failed", 2)
    assert state.load_cursor("neelix-0of1", "origin", head=99) == 7
    ok = courier(Action("ok", "command", {"command": (sys.executable, "-c", "pass")}))
    ok.deliver(ok._next_due())
    assert [a.status for a in state.Alert.select().order_by(state.Alert.id)] == \
        ["failed", "sent"]


def test_a_missing_command_fails_at_once(tmp_path):
    queue(tmp_path, notice(("gone",)))
    gone = courier(Action("gone", "command", {"command": ("/nonexistent/page-ops",)}))
    gone.deliver(gone._next_due())
    row = state.Alert.get()
    assert (row.status, row.attempts) == ("failed", 1) and "not found" in row.last_error


def test_backoff_doubles_up_to_its_cap():
    assert 0.8 <= backoff(1, 300) <= 1.2
    assert 3.2 <= backoff(3, 300) <= 4.8
    assert 240 <= backoff(30, 300) <= 360


def test_prune_keeps_pending_alerts_and_open_incidents(tmp_path):
    queue(tmp_path, notice(("a",)), notice(("b",), event="down"))
    state.Alert.update(status="sent").where(state.Alert.action == "a").execute()
    assert state.prune(time.time() + 1) == 1
    assert [a.action for a in state.Alert.select()] == ["b"]
    assert state.Incident.select().where(state.Incident.closed.is_null()).count() == 1


def test_a_new_shard_starts_where_the_old_shards_stopped_or_at_the_head(tmp_path):
    state.open_state(tmp_path / "neelix.sqlite")
    assert state.load_cursor("neelix-0of1", "o", head=40) == 40  # first start: the head
    assert state.load_cursor("neelix-0of1", "o", head=90) == 40  # stored at once
    state.CursorRow.update(seq=70).execute()
    # numprocs 1 → 2: both new shards go on after the old shard's cursor, none from 0
    assert state.load_cursor("neelix-0of2", "o", head=90) == 70
    assert state.load_cursor("neelix-1of2", "o", head=90) == 70


def test_a_recovered_never_overtakes_its_pending_down(tmp_path):
    queue(tmp_path, notice(("ops",), event="down"), notice(("ops",), event="recovered"))
    down = state.Alert.get(state.Alert.event == "down")
    state.Alert.update(next_attempt=time.time() + 60).where(state.Alert.id == down.id).execute()
    ops = courier(Action("ops", "command", {"command": (sys.executable, "-c", "pass")}))
    assert ops._next_due() is None  # the RECOVERED waits for the DOWN's retry
    state.Alert.update(next_attempt=0).where(state.Alert.id == down.id).execute()
    assert ops._next_due().event == "down"


def test_a_command_writing_non_utf8_is_retried_cleanly(tmp_path):
    queue(tmp_path, notice(("odd",)))
    odd = courier(Action("odd", "command", {"command": (
        sys.executable, "-c", "import sys; sys.stderr.buffer.write(b'\\xff\\xfe'); exit(2)")}))
    odd.deliver(odd._next_due())
    row = state.Alert.get()
    assert (row.status, row.attempts) == ("pending", 1) and "exited 2" in row.last_error


def test_a_webhook_peer_speaking_garbage_is_retried_and_its_url_path_kept_secret(tmp_path):
    server = socketserver.TCPServer(("127.0.0.1", 0), GarbageHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        queue(tmp_path, notice(("hook",)))
        url = f"http://127.0.0.1:{server.server_address[1]}/services/T0/SECRET-TOKEN"
        hook = courier(Action("hook", "webhook", {"url": url, "timeout": 5.0}))
        hook.deliver(hook._next_due())
        row = state.Alert.get()
        assert (row.status, row.attempts) == ("pending", 1)
        assert "127.0.0.1" in row.last_error and "SECRET-TOKEN" not in row.last_error
    finally:
        server.shutdown()
        server.server_close()


class GarbageHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.rfile.readline()
        self.wfile.write(b"not http at all\r\n\r\n")
