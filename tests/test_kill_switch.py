"""The operator's kill switch and cancel-on-disconnect (docs/semantics.md,
"Kill switch" and "Time"), against both the C core and the reference model.

Kill: engaging an account's switch cancels its cancellable orders in every
session (sessions in configuration order, each session's in creation
order; orders pending replace or cancel and terminal ones are left alone)
and rejects its new orders and modifies with KILL_SWITCH; other accounts
are untouched; releasing lifts it.  Account 0 is the global switch.
Cancel-on-disconnect: a session that times out with the flag has every
cancellable order canceled in the timer step; without it nothing happens.

The expected figures come from the document, not from running the code."""
from __future__ import annotations

from dataclasses import replace

import pytest
import wire
from test_risk import REASON, Harness, verdict
from test_transcripts import decode_out
from wire import login, modify, ouch_canceled, ouch_executed

from dataplane.core import Core
from dataplane.reference_model import ReferenceCore

IMPLS = [pytest.param(Core, id="core"), pytest.param(ReferenceCore, id="model")]
KILL = REASON["KILL_SWITCH"]
STATE = {1: "PendingNew", 2: "New", 3: "PartiallyFilled", 4: "Filled", 5: "PendingReplace",
         6: "Replaced", 7: "PendingCancel", 8: "Canceled", 9: "Rejected", 10: "Expired"}


def state(core, session, cid) -> str:
    return STATE[core.order(session, cid)["state"]]


def kill(h: Harness, account: int, on: bool):
    """The operator's kill, between two bursts (1 ms after the last); its
    result and the messages it sent, decoded."""
    h.now += 1_000_000
    n, frames = h.core.kill(account, on, h.now)
    return n, [decode_out(f) for f in frames]


def cancels(out) -> list[tuple[int, int]]:
    """(venue, UserRefNum) of each Cancel Order sent, in order."""
    assert all(o["to"] == "venue" and o["type"] == "X" and o["qty"] == 0 for o in out), out
    return [(o["venue"], o["ref"]) for o in out]


def book(h: Harness) -> None:
    """Orders of accounts 5 and 6 in sessions 1 and 2, in every state that
    matters (cl_ord_ids unique across sessions; refs on venue 1 unless
    named):
      session 1: 11 acct 5 New; 12 acct 6 New; 13 acct 5 PendingNew;
                 14 acct 5 PartiallyFilled; 15 acct 5 Canceled (terminal);
                 16 acct 5 PendingReplace; 17 acct 5 New on venue 2
      session 2: 21 acct 5 New; 22 acct 6 PendingNew; 23 acct 5 PendingCancel
    """
    for cid, acct, venue in ((11, 5, 0), (12, 6, 0), (13, 5, 0), (14, 5, 0), (15, 5, 0),
                             (16, 5, 0), (17, 5, 2)):
        assert verdict(h.new(cid, account=acct, venue=venue)) == "sent"
    for cid, acct in ((21, 5), (22, 6), (23, 5)):
        assert verdict(h.new(cid, session=2, account=acct)) == "sent"
    for cid in (11, 12, 14, 15, 16, 21, 23):
        h.accept(cid)
    h.accept(17, venue=2)
    h.venue(ouch_executed(h.refs[14], 40))
    h.venue(ouch_canceled(h.refs[15], 100))
    assert verdict(h.modify(16, 151_0000_0000, 100)) == "sent"
    assert [o["type"] for o in h.app(2, wire.cancel, 23)] == ["X"]
    want = {(1, 11): "New", (1, 12): "New", (1, 13): "PendingNew", (1, 14): "PartiallyFilled",
            (1, 15): "Canceled", (1, 16): "PendingReplace", (1, 17): "New", (2, 21): "New",
            (2, 22): "PendingNew", (2, 23): "PendingCancel"}
    assert {k: state(h.core, *k) for k in want} == want


@pytest.mark.parametrize("impl", IMPLS)
def test_kill_one_account_cancels_in_every_session_and_blocks_it(impl):
    h = Harness(impl, wire.config())
    book(h)
    before = dict(h.core.stats()["event"])
    n, out = kill(h, 5, True)
    # session 1 in creation order (11, 13, 14, 17 on venue 2), then session 2 (21)
    assert n == 4 + 1
    assert cancels(out) == [(1, h.refs[11]), (1, h.refs[13]), (1, h.refs[14]),
                            (2, h.refs[17]), (1, h.refs[21])]
    for key in ((1, 11), (1, 13), (1, 14), (1, 17), (2, 21)):
        assert state(h.core, *key) == "PendingCancel", key
        assert h.core.order(*key)["state_ts"][7] == h.now
    # pending replace, pending cancel, terminal, other account: left alone
    assert state(h.core, 1, 16) == "PendingReplace"
    assert state(h.core, 2, 23) == "PendingCancel"
    assert state(h.core, 1, 15) == "Canceled"
    assert (state(h.core, 1, 12), state(h.core, 2, 22)) == ("New", "PendingNew")
    ev = h.core.stats()["event"]
    assert ev["KILL_CANCELS"] == 5 and ev["VENUE_MSGS_OUT"] == before["VENUE_MSGS_OUT"] + 5
    assert "SP_MSGS_OUT" not in ev or ev["SP_MSGS_OUT"] == before["SP_MSGS_OUT"]
    # blocked: new orders and modifies of account 5 in both sessions
    assert verdict(h.new(31, account=5)) == KILL
    assert verdict(h.new(32, session=2, account=5)) == KILL
    assert verdict(h.app(1, modify, 12, 151_0000_0000, 100)) == "sent"  # account 6
    # the venue confirms the cancels: the strategy sees Canceled
    out = h.venue(ouch_canceled(h.refs[11], 100))
    assert [(o["type"], o["cl_ord_id"], o["session"]) for o in out] == [("Canceled", 11, 1)]
    out = h.venue(ouch_canceled(h.refs[21], 100))
    assert [(o["type"], o["cl_ord_id"], o["session"]) for o in out] == [("Canceled", 21, 2)]
    # other accounts unaffected
    assert verdict(h.new(33, account=6)) == "sent"
    # engaging it again cancels nothing more (all pending now); unknown: -1
    assert kill(h, 5, True) == (0, [])
    assert kill(h, 99, True) == (-1, [])
    assert kill(h, 99, False) == (-1, [])
    # released: account 5 trades again
    assert kill(h, 5, False) == (0, [])
    assert verdict(h.new(34, account=5)) == "sent"
    assert verdict(h.new(35, session=2, account=5)) == "sent"
    st = h.core.stats()
    assert st["reject_business"][KILL] == 2
    assert st["event"]["KILL_CANCELS"] == 5
    if isinstance(h.core, ReferenceCore):
        h.core.check_accounting()


@pytest.mark.parametrize("impl", IMPLS)
def test_kill_all_accounts_and_release(impl):
    h = Harness(impl, wire.config())
    book(h)
    # account 6 killed on its own first (no order of it is cancellable but 12, 22)
    n, out = kill(h, 6, True)
    assert n == 2 and cancels(out) == [(1, h.refs[12]), (1, h.refs[22])]
    n, out = kill(h, 0, True)
    # every account: session 1's 11, 13, 14, 17, then session 2's 21
    assert n == 5
    assert cancels(out) == [(1, h.refs[11]), (1, h.refs[13]), (1, h.refs[14]),
                            (2, h.refs[17]), (1, h.refs[21])]
    for acct in (0, 1, 5, 7, 10):
        assert verdict(h.new(40 + acct, account=acct)) == KILL, acct
    assert verdict(h.new(60, account=99)) == REASON["UNKNOWN_ACCOUNT"]  # R2 comes first
    assert verdict(h.app(1, modify, 16, 151_0000_0000, 200)) == 13  # ORDER_PENDING
    # cancels still pass
    h.replaced(16, 100)
    assert verdict(h.app(1, modify, 16, 151_0000_0000, 200)) == KILL  # M2, global
    assert [o["type"] for o in h.app(1, wire.cancel, 16)] == ["X"]
    # releasing every account releases each one's own switch too (6's)
    assert kill(h, 0, False) == (0, [])
    assert verdict(h.new(70, account=5)) == "sent"
    assert verdict(h.new(71, account=6)) == "sent"
    # killing every account, then releasing one of them
    assert kill(h, 0, True)[0] == 2  # 70, 71
    assert kill(h, 7, False) == (0, [])
    assert verdict(h.new(72, account=7)) == "sent"
    assert verdict(h.new(73, account=5)) == KILL
    assert kill(h, 0, False) == (0, [])
    assert h.core.stats()["event"]["KILL_CANCELS"] == 9
    if isinstance(h.core, ReferenceCore):
        h.core.check_accounting()


@pytest.mark.parametrize("impl", IMPLS)
def test_kill_cancels_orders_of_logged_out_sessions(impl):
    h = Harness(impl, wire.config())
    assert verdict(h.new(1, account=5)) == "sent"
    h.sp(1, wire.logout(1))
    n, out = kill(h, 5, True)
    assert n == 1 and cancels(out) == [(1, h.refs[1])]


def cod_config(*flags: bool):
    sessions = tuple(replace(s, cancel_on_disconnect=f) for s, f in zip(
        wire.SESSIONS, flags + (False,) * (len(wire.SESSIONS) - len(flags)), strict=True))
    return wire.config(sessions=sessions)


@pytest.mark.parametrize("impl", IMPLS)
def test_cancel_on_disconnect_at_timeout(impl):
    # session 1 with cancel-on-disconnect, session 2 without
    h = Harness(impl, cod_config(True, False))
    book(h)
    # session 2 stays alive; session 1 is silent for timeout_ms (3000)
    last_rx_1 = h.now
    h.now = last_rx_1 + 2_000_000_000
    h.sp(2, wire.heartbeat(2))
    h.now = last_rx_1 + 3_000_000_000 - 1  # run() adds 1 ms: exactly timeout_ms
    out = [o for o in h.run([]) if o["type"] != "Request"]
    # every cancellable order of session 1, any account, in creation order
    assert cancels(out) == [(1, h.refs[11]), (1, h.refs[12]), (1, h.refs[13]),
                            (1, h.refs[14]), (2, h.refs[17])]
    for cid in (11, 12, 13, 14, 17):
        assert state(h.core, 1, cid) == "PendingCancel"
    assert (state(h.core, 1, 15), state(h.core, 1, 16)) == ("Canceled", "PendingReplace")
    assert {k: state(h.core, 2, k) for k in (21, 22, 23)} == {
        21: "New", 22: "PendingNew", 23: "PendingCancel"}
    ev = h.core.stats()["event"]
    assert ev["SESSION_TIMEOUTS"] == 1 and ev["CANCEL_ON_DISCONNECT"] == 5
    # the venue's Canceled still reaches the logged-out session (by seq)
    out = h.venue(ouch_canceled(h.refs[11], 100))
    assert [(o["type"], o["cl_ord_id"]) for o in out] == [("Canceled", 11)]
    # nothing is blocked: after a new Login (sequence numbers carry on)
    # session 1 trades again
    out = h.sp(1, login(1, 1))
    assert out[0]["type"] == "LoginAccepted"
    assert verdict(h.new(50, account=5)) == "sent"
    # both time out: session 1's new order is canceled, session 2 (without
    # the flag) keeps its orders
    h.now += 4_000_000_000
    out = [o for o in h.run([]) if o["to"] == "venue" and o["type"] == "X"]
    assert cancels(out) == [(1, h.refs[50])]
    assert {k: state(h.core, 2, k) for k in (21, 22, 23)} == {
        21: "New", 22: "PendingNew", 23: "PendingCancel"}
    ev = h.core.stats()["event"]
    assert ev["SESSION_TIMEOUTS"] == 3 and ev["CANCEL_ON_DISCONNECT"] == 6
    if isinstance(h.core, ReferenceCore):
        h.core.check_accounting()


@pytest.mark.parametrize("impl", IMPLS)
def test_no_cancel_on_disconnect_by_default_or_on_logout(impl):
    h = Harness(impl, cod_config(False, True))
    assert verdict(h.new(1, account=5)) == "sent"
    assert verdict(h.new(2, session=2, account=5)) == "sent"
    # a Logout is not a disconnect
    h.sp(2, wire.logout(2))
    h.now += 5_000_000_000
    out = [o for o in h.run([]) if o["to"] == "venue" and o["type"] == "X"]
    assert out == []
    assert state(h.core, 1, 1) == "PendingNew" and state(h.core, 2, 2) == "PendingNew"
    ev = h.core.stats()["event"]
    assert ev["SESSION_TIMEOUTS"] == 1 and "CANCEL_ON_DISCONNECT" not in ev


def test_cancel_on_disconnect_same_bytes_in_core_and_model():
    """The same timeout through both, byte for byte (frames and counters)."""
    cfg = cod_config(True, True)
    a, b = Harness(Core, cfg), Harness(ReferenceCore, cfg)
    for h in (a, b):
        book(h)
    now = a.now + 3_500_000_000
    assert a.core.process_burst([], now) == b.core.process_burst([], now)
    assert a.core.kill(0, True, now + 1) == b.core.kill(0, True, now + 1)
    assert a.core.stats() == b.core.stats()
    # session 1: 11, 12, 13, 14, 17; session 2: 21, 22
    assert a.core.stats()["event"]["CANCEL_ON_DISCONNECT"] == 7


@pytest.mark.parametrize("impl", ["core", "model"])
def test_account_added_after_kill_all_starts_killed(impl):
    """A reload can add accounts: one added while every account is killed
    starts killed (semantics.md "Kill switch")."""
    base = wire.ACCOUNTS[:3]
    h = Harness({"core": Core, "model": ReferenceCore}[impl], wire.config(accounts=base))
    assert kill(h, 0, True) == (0, [])
    a42 = replace(base[0], id=42, max_position=(("AAPL", 10**6),))
    h.core.reload(wire.config(accounts=base + (a42,)))
    assert verdict(h.new(1, account=42)) == KILL
    assert kill(h, 42, False) == (0, [])
    assert verdict(h.new(2, account=42)) == "sent"
    assert verdict(h.new(3, account=1)) == KILL
    # released for every account: one added now starts released
    assert kill(h, 0, False) == (0, [])
    a43 = replace(a42, id=43)
    h.core.reload(wire.config(accounts=base + (a42, a43)))
    assert verdict(h.new(4, account=43)) == "sent"


@pytest.mark.parametrize("impl", ["core", "model"])
def test_bulk_cancels_are_never_cut_short_by_a_small_transmit_area(impl):
    """A mass cancel over more orders than tx_frames: every Cancel Order goes
    out in the same call (the transmit area has room for one per order)."""
    import wire

    from dataplane.core import Core
    from dataplane.reference_model import ReferenceCore
    cfg = wire.config(orders=64, tx_frames=4)
    core = (Core if impl == "core" else ReferenceCore)(cfg)
    now = 10**9
    core.process_burst([wire.from_strategy(1, wire.login(1))], now)
    for i in range(1, 41):  # one per burst: each fits in the small area
        core.process_burst([wire.from_strategy(1, wire.new_order(1, i, i))], now + i)
    out = core.process_burst([wire.from_strategy(1, wire.mass_cancel(1, 41, 1))], now + 100)
    cancels = [f for f in out if f[42 + 22:42 + 23] == b"X"]
    assert len(cancels) == 40
    assert "TX_FULL" not in core.stats()["drop"]
