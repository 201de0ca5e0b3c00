"""Market-data subscriptions changed by a live reload (docs/market-data.md
"Live reload").

The dispatcher (cdefs/md_dispatch.c) has one writer, the poll loop that
owns it, so the control plane never changes it in place: it builds the list
of changes here - remove a venue's subscription (leave the group, the feed's
books go stale with OMS_STALE_UNSUBSCRIBED and the router stops using
them), add one (a feed made here, before anything is posted; the group
joined; the venue's core pointed at it), subscribe a new symbol in every
feed - hands it over with `oms_md_post`, and waits until the loop applied it
between two bursts.  What the loop cannot change (table sizes, the feeds'
shared settings, a symbol's index, the first subscription of an appliance
started without market data) is refused before anything changes."""
from __future__ import annotations

import time
from dataclasses import dataclass

from dataplane.feed import ip4, symbol_indices

# market_data fields every feed was built with
FEED_WIDE = ("stale_after_ms", "request_port", "max_orders", "max_levels")


def fixed_market_data_changes(old, new) -> list[str]:
    """What `new` changes in market_data that only a restart applies (the
    configuration alone decides; the feeds' capacity is checked by plan())."""
    a, b = old.market_data, new.market_data
    out = [f"market_data.{name}: changed; only a restart applies it"
           for name in FEED_WIDE if getattr(a, name) != getattr(b, name)]
    if not a.subscriptions and b.subscriptions:
        out.append("market_data.subscriptions: the appliance started without market data; "
                   "only a restart adds the first subscription")
    was, now = symbol_indices(old), symbol_indices(new)
    for sym in sorted(was.keys() - now.keys()):
        out.append(f"market_data.symbols: {sym} removed; the feeds keep its book until "
                   "a restart")
    for sym in sorted(was.keys() & now.keys()):
        if was[sym] != now[sym]:
            out.append(f"market_data.symbols: {sym} moves from index {was[sym]} to "
                       f"{now[sym]} (instruments reordered); only a restart applies it")
    return out


@dataclass
class Change:
    op: str  # "add", "remove", "subscribe"
    venue: int
    feed: object  # dataplane.feed.Feed
    sub: object = None  # control.config.FeedSubscription (add, remove)
    symbol: str = ""
    index: int = 0
    core: object = None  # dataplane.core.Core to point at the feed (add)


def plan(md, new, core_of) -> tuple[list[Change], list[str]]:
    """The changes that take `md` (dataplane.market_data.CMarketData) to
    `new`'s subscriptions and symbols, or why not.  core_of(venue): the
    core on the dispatcher's thread that reads the venue's feed, or None
    when another thread's core does (sharded mode)."""
    errors = []
    index = symbol_indices(new)
    for sym in sorted(index, key=index.get):
        if index[sym] < md.max_symbols:
            continue
        errors.append(f"market_data.symbols: {sym} would be book {index[sym]}, beyond the "
                      f"{md.max_symbols} the feeds were sized for at start; only a restart "
                      "applies it")
    cur, want = md.subs, {s.venue: s for s in new.market_data.subscriptions}
    changes = []
    for venue in sorted(cur):
        if want.get(venue) != cur[venue]:
            changes.append(Change("remove", venue, md.feeds[venue], cur[venue]))
    for venue in sorted(want):
        sub = want[venue]
        if cur.get(venue) == sub:
            continue
        core = core_of(venue)
        if core is None:
            errors.append(f"market_data.subscriptions: venue {venue}'s orders are handled by "
                          "a worker that does not own the market data (sharded); only a "
                          "restart gives it a new feed")
            continue
        # a subscription removed earlier and now back takes its old feed
        # (its books are behind: the gap shows it); else a new one
        feed = md.retired.get(sub) or md.new_feed(new, sub)
        changes.append(Change("add", venue, feed, sub, core=core))
    feeds = {c.venue: c.feed for c in changes if c.op == "add"}
    for venue in want:
        feeds.setdefault(venue, md.feeds.get(venue))
    for venue, feed in sorted(feeds.items()):
        if feed is None:
            continue
        for sym in sorted(index.keys() - feed.symbols, key=index.get):
            if index[sym] < md.max_symbols:
                changes.append(Change("subscribe", venue, feed, symbol=sym, index=index[sym]))
    return changes, errors


def apply(md, changes: list[Change], timeout_s: float = 5.0) -> list[str]:
    """Hand `changes` to the dispatcher's loop and wait until it applied
    them; the errors of those it refused (a full table, say).  `md`'s view
    of the subscriptions follows what the loop did."""
    if not changes:
        return []
    ffi, lib = md.ffi, md.lib
    arr = ffi.new("struct oms_md_change[]", len(changes))
    ops = {"add": lib.OMS_MD_ADD, "remove": lib.OMS_MD_REMOVE,
           "subscribe": lib.OMS_MD_SUBSCRIBE}
    for c, x in zip(changes, arr, strict=True):
        x.op = ops[c.op]
        x.feed = c.feed.ptr
        x.venue = c.venue
        if c.sub is not None:
            x.group_ip, x.group_port = ip4(c.sub.group), c.sub.port
            x.source_ip = ip4(c.sub.source_ip) if c.sub.source_ip else 0
            rt = c.sub.retransmission
            x.retrans_ip = ip4(rt.ip) if rt else 0
        if c.core is not None:
            x.core = c.core._core
        if c.op == "subscribe":
            x.symbol = c.symbol.encode("ascii").ljust(8, b" ")
            x.symbol_index = c.index
    deadline = time.monotonic() + timeout_s
    ticket = lib.oms_md_post(md.ptr, arr, len(changes))
    while ticket == 0:  # the previous post not taken yet
        if time.monotonic() > deadline:
            return ["market_data: the poll loop did not take the changes in time"]
        time.sleep(0.001)
        ticket = lib.oms_md_post(md.ptr, arr, len(changes))
    md._posted = arr  # alive until applied, even if we stop waiting
    while lib.oms_md_applied(md.ptr) < ticket:
        if time.monotonic() > deadline:
            return ["market_data: the poll loop did not apply the changes in 5 s; they "
                    "apply when it does"]
        time.sleep(0.001)
    errors = []
    for c, x in zip(changes, arr, strict=True):
        if x.result != 0:
            errors.append(f"market_data: venue {c.venue}: {c.op} "
                          f"{c.symbol or c.sub.group} refused by the data plane "
                          "(a table is full, or it is not there)")
            continue
        if c.op == "remove":
            md.subs.pop(c.venue, None)
            md.retired[c.sub] = c.feed
        elif c.op == "add":
            md.subs[c.venue] = c.sub
            md.feeds[c.venue] = c.feed
            md.retired.pop(c.sub, None)
        else:
            c.feed.symbols.add(c.symbol)
    return errors
