"""The appliance's YAML configuration: its schema, as frozen dataclasses, and
the one loader every part of the control plane uses.

Errors name the file, the line, the key and the reason; unknown keys are
errors, so a typo never silently falls back to a default."""
from __future__ import annotations

import difflib
import ipaddress
import os
import re
from contextlib import contextmanager
from dataclasses import MISSING, dataclass, field, fields, replace
from decimal import Decimal
from pathlib import Path

import yaml
from yaml.constructor import SafeConstructor


@dataclass(frozen=True)
class Appliance:
    mac: str  # "02:00:00:00:00:01"
    ip: str  # dotted quad
    strategy_port: int
    venue_port: int
    capacity: str = "A"  # OUCH Capacity letter sent on every Enter Order
    # where venues send retransmission requests (MoldUDP64's re-request);
    # 0 means venue_port + 1
    venue_request_port: int = 0
    # how long a gap request may go unanswered before it is sent again
    retransmit_ms: int = 50

    @property
    def request_port(self) -> int:
        return self.venue_request_port or self.venue_port + 1


@dataclass(frozen=True)
class Tables:
    orders: int = 65536  # order table slots
    tx_frames: int = 8192  # frames one burst may produce
    max_sessions: int = 64
    max_venues: int = 16
    max_instruments: int = 4096
    # outbound messages kept per session and per venue for retransmission
    replay_depth: int = 4096
    max_accounts: int = 1024  # pre-trade risk: accounts
    max_positions: int = 16384  # pre-trade risk: (account, symbol) limits in all


PRICE_SCALE = 10**8
"""Prices and amounts are fixed point with 8 decimals, as on the wire."""


@dataclass(frozen=True)
class Throttle:
    """A session's message rate limit: a token bucket of `burst` messages
    refilled at `per_second` (NewOrder and Modify take a token each)."""
    per_second: int
    burst: int


@dataclass(frozen=True)
class Session:
    id: int
    ip: str
    port: int
    mac: str
    enabled: bool = True
    name: str = ""
    heartbeat_ms: int = 1000  # send a Heartbeat after this long without sending
    timeout_ms: int = 3000  # disconnect after this long without hearing from it
    throttle: Throttle | None = None  # None: no message rate limit
    # on a timeout (SESSION_TIMEOUTS) cancel every open order of the session
    cancel_on_disconnect: bool = False
    # the accounts the session may trade (at most 16); none: any configured
    accounts: tuple[int, ...] = ()


@dataclass(frozen=True)
class Venue:
    id: int  # 1..65535; 0 means "let the router choose" on the wire
    name: str
    session: str  # framing session name, at most 10 characters
    ip: str
    port: int
    mac: str
    request_port: int = 0  # where it takes retransmission requests; 0: port + 1
    heartbeat_ms: int = 1000
    timeout_ms: int = 3000
    # this many Enter Orders without an answer: the router avoids the venue
    # until answers come (0: never)
    max_unanswered: int = 0

    @property
    def retransmit_port(self) -> int:
        return self.request_port or self.port + 1


@dataclass(frozen=True)
class Instrument:
    symbol: str  # at most 8 characters
    # pre-trade risk; prices fixed point with 8 decimals (PRICE_SCALE)
    tick_size: int = 10_000  # 0.0001: OUCH's 4 decimals
    lot_size: int = 1
    reference_price: int = 0  # 0: none (market orders are then rejected)
    price_band_pct: int = 0  # percent around the reference, 8 decimals; 0: none
    price_band_abs: int = 0  # absolute distance from the reference; 0: none
    restricted: bool = False
    halted: bool = False
    venues: tuple[int, ...] = ()  # venue ids it may trade on; (): all


ORDER_TYPES = {"LIMIT": 1, "MARKET": 2}
TIFS = {"DAY": 1, "IOC": 2}


@dataclass(frozen=True)
class Account:
    """A trading account's pre-trade limits; amounts fixed point with 8
    decimals.  `max_position` holds (symbol, shares) pairs: the largest
    worst-case position either way; a symbol without one is blocked."""
    id: int
    max_order_qty: int
    max_order_notional: int
    max_open_orders: int
    credit_limit: int  # the most open notional
    max_position: tuple[tuple[str, int], ...] = ()
    order_types: tuple[str, ...] = ("LIMIT", "MARKET")
    tifs: tuple[str, ...] = ("DAY", "IOC")
    kill: bool = False


@dataclass(frozen=True)
class AccountDefaults:
    """What an account that leaves a key out takes (risk.account_defaults);
    None: no default, the account must say."""
    max_order_qty: int | None = None
    max_order_notional: int | None = None
    max_open_orders: int | None = None
    credit_limit: int | None = None
    max_position: tuple[tuple[str, int], ...] | None = None
    order_types: tuple[str, ...] | None = None
    tifs: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Risk:
    account_defaults: AccountDefaults = field(default_factory=AccountDefaults)


SOR = 0  # a route's venue "sor": the smart order router chooses
SPLIT_MAX = 4  # children of a split order at most (cdefs/oms_core.h OMS_SPLIT_MAX)


@dataclass(frozen=True)
class Routing:
    default_venue: int  # SOR: the smart order router
    # the router's price of a venue's expected latency (8 decimals per us)
    latency_cost_per_us: int = 0
    # the fill-probability model (docs/fill-model.md): its file, or None
    # ("off", or absent): the rule router alone
    model: str | None = None
    # optional pin: the model file must have this id (its checksum's first
    # 16 hex digits), so that re-executing a journal finds the same model
    model_id: str | None = None
    # the router's price of a miss (8 decimals a share): an order that does
    # not fill must be sent again
    miss_penalty: int = 0
    # the validated artefact (control/fill_artefact.py), read with the file
    fill_model: dict | None = field(default=None, compare=False, repr=False)
    # an order may be split across this many venues when the best shows
    # less than it needs (1: never split)
    split_max_children: int = 1


@dataclass(frozen=True)
class Route:
    """Orders naming no venue, for this account and/or symbol, go to `venue`,
    or with venue SOR ("sor") to the smart order router, which never picks
    a venue in `exclude` (the most specific matching rule wins; none:
    routing.default_venue)."""
    venue: int
    account: int | None = None
    symbol: str | None = None
    exclude: tuple[int, ...] = ()


@dataclass(frozen=True)
class DataplanePorts:
    """DPDK port names (a vdev's name or a PCI address) by traffic class;
    one port may carry both."""
    strategy: str
    venue: str


AFXDP_MODES = ("copy", "zerocopy")
_IFNAME_RE = re.compile(r"[A-Za-z0-9_.:@-]{1,15}")


@dataclass(frozen=True)
class Afxdp:
    """The native AF_XDP backend (omsctl run --backend afxdp): the kernel
    interfaces it takes queue `queue` of, by traffic class; one interface
    may carry both."""
    strategy_iface: str
    venue_iface: str
    queue: int = 0
    # copy: XDP_COPY on generic (SKB-mode) XDP, works on any interface (veth);
    # zerocopy: XDP_ZEROCOPY on the driver's XDP, NICs whose driver has it
    mode: str = "copy"
    # UMEM frames (2 KiB) per interface, a power of two: half RX, half TX
    frames: int = 4096
    cpu: int = -1  # pin the poll thread to this CPU; -1: leave it to the kernel


@dataclass(frozen=True)
class Shard:
    """What one worker lcore owns in sharded mode: its strategy sessions,
    its venues (and their venue sessions) and its accounts - each table then
    has exactly one writer."""
    sessions: tuple[int, ...]
    venues: tuple[int, ...]
    accounts: tuple[int, ...] = ()


@dataclass(frozen=True)
class Threading:
    """rtc: one worker lcore does RX -> core -> TX for every port (the
    default, for small machines); sharded: an I/O lcore feeds one worker per
    shard through SPSC rings; typed: the I/O lcore feeds placement,
    modification and cancellation workers by message type, cancels ahead of
    queued orders (docs/dataplane.md "Threading")."""
    mode: str = "rtc"
    workers: tuple[Shard, ...] = ()


@dataclass(frozen=True)
class Dataplane:
    """EAL and port settings for the DPDK data plane (omsctl serve), and the
    interfaces of the native AF_XDP backend."""
    lcores: str = "0,1"  # EAL -l: the first is Python's, the next the worker's
    hugepages: bool = False  # False: --no-huge with memory_mb of ordinary memory
    memory_mb: int = 512
    pci: tuple[str, ...] = ()  # PCI allow list (-a); none: --no-pci
    vdevs: tuple[str, ...] = ()  # --vdev arguments, e.g. net_af_packet0,iface=eth1
    ports: DataplanePorts | None = None
    mbufs: int = 8191  # per mempool
    # 0: the worker busy-polls its CPU; else it sleeps this long when idle
    # (shared CPUs, CI); the AF_XDP poll thread too
    idle_sleep_us: int = 0
    # every DPDK port: its MTU (a frame must fit one mbuf), its RX queues
    # (more than one: RSS spreads flows over them, each polled by the one
    # worker), and how long start-up waits for the link to come up
    mtu: int = 1500
    rx_queues: int = 1
    link_wait_ms: int = 0
    # how long a worker waits for a port to take output it did not take at
    # once before dropping it (counted); a port that takes nothing in a
    # whole wait gets one try per burst until it takes a frame again
    tx_wait_us: int = 1000
    afxdp: Afxdp | None = None
    threading: Threading = field(default_factory=Threading)
    # two busy-polling workers on the hyperthreads of one core take turns on
    # it: start-up refuses that unless this says it is meant
    allow_shared_cpus: bool = False


# ---- market data (docs/market-data.md) -----------------------------------


@dataclass(frozen=True)
class Retransmission:
    """A feed's MoldUDP64 re-request server and its next hop."""
    ip: str
    port: int
    mac: str


@dataclass(frozen=True)
class FeedSubscription:
    """One venue's ITCH feed: its multicast group, UDP port and (SSM)
    source, where it arrives, where to ask for what was lost."""
    venue: int  # a configured venue id; one feed per venue
    group: str  # IPv4 multicast group (not 224.0.0.0/24)
    port: int  # UDP port of the group
    source_ip: str = ""  # "": any source (IGMPv3 EXCLUDE {}), else source-specific
    rx_port: str = ""  # DPDK port name; "": dataplane.ports.venue
    rx_queue: int = 0
    retransmission: Retransmission | None = None  # none: stale until the next session
    stale_after_ms: int = 0  # 0: market_data.stale_after_ms


@dataclass(frozen=True)
class MarketData:
    """Market-data subscriptions and the books kept for them."""
    symbols: tuple[str, ...] = ()  # subscribed symbols (instruments, when configured)
    subscriptions: tuple[FeedSubscription, ...] = ()
    stale_after_ms: int = 1000  # a feed quiet this long is stale
    request_port: int = 0  # our UDP port for retransmissions; 0: venue_port + 2
    max_orders: int = 1 << 20  # resting orders per feed over its books
    max_levels: int = 1024  # price levels per side of one book


JOURNAL_DURABILITY = ("none", "periodic", "burst")
JOURNAL_AFTER_RECOVERY = ("keep", "cancel")


@dataclass(frozen=True)
class Journal:
    """The journal of the core's inputs, for crash recovery
    (docs/durability.md): the file, and when what is appended to it is
    written back - none: when the kernel likes; periodic: every
    sync_interval_ms; burst: before the burst's output is sent."""
    path: str
    durability: str = "burst"
    sync_interval_ms: int = 10
    segment_mb: int = 64  # the file grows in steps of this size
    # keep: recovered open orders stay working at their venues; cancel: the
    # appliance cancels every one once it runs again (a mass cancel of each
    # session and account, journaled)
    after_recovery: str = "keep"
    # ROUTE records (each smart routing decision with what it read) also
    # without a fill model; with routing.model they are always written
    route_records: bool = False


REPLICATION_ROLES = ("primary", "backup")
REPLICATION_DEGRADE = ("standalone", "reject_new")


@dataclass(frozen=True)
class Replication:
    """Hot standby (docs/durability.md "Hot standby"): the primary streams
    its journal to a backup over a TCP link of their own; with sync, a core
    call's output leaves only once the backup acknowledged its records.
    Both instances run the same configuration but for role, listen and
    peer; each needs `journal:`."""
    role: str  # primary | backup: the role at start
    listen: str  # ip:port where this instance accepts a backup (as primary)
    peer: str  # ip:port of the other instance (where a backup connects)
    sync: bool = True
    # the ack did not come within ack_wait_us: standalone - go on alone;
    # reject_new - the same, and new orders are rejected (SYS_JOURNAL) until
    # the backup has caught up
    degrade: str = "standalone"
    heartbeat_us: int = 1000  # the primary's heartbeat when it sent nothing
    timeout_us: int = 20000  # the backup takes over after this long unheard
    ack_wait_us: int = 50000


# Config fields that are not keys of the YAML: where it came from, and its text
NOT_IN_YAML = ("source", "text", "fill_model")


@dataclass(frozen=True)
class Observability:
    """The Prometheus exporter and the live latency page of the live
    appliance (control/metrics.py, control/httpd.py), on one HTTP address."""
    enabled: bool = True
    listen: str = "127.0.0.1:9478"  # host:port; localhost unless asked; port 0: any free
    # the per-stage latency histograms (a few TSC reads per order); off:
    # counters only
    timing: bool = True


@dataclass(frozen=True)
class Config:
    appliance: Appliance
    routing: Routing
    tables: Tables = field(default_factory=Tables)
    dataplane: Dataplane = field(default_factory=Dataplane)
    observability: Observability = field(default_factory=Observability)
    sessions: tuple[Session, ...] = ()
    venues: tuple[Venue, ...] = ()
    instruments: tuple[Instrument, ...] = ()
    accounts: tuple[Account, ...] = ()
    routes: tuple[Route, ...] = ()
    risk: Risk = field(default_factory=Risk)
    market_data: MarketData = field(default_factory=MarketData)
    journal: Journal | None = None
    replication: Replication | None = None
    source: str = "<memory>"  # the file it was read from
    # the YAML it was read from: the journal records it with each
    # configuration generation, for recovery to build that generation again
    text: str = field(default="", compare=False, repr=False)

    def session(self, session_id: int) -> Session | None:
        return next((s for s in self.sessions if s.id == session_id), None)

    def venue(self, venue_id: int) -> Venue | None:
        return next((v for v in self.venues if v.id == venue_id), None)


# --------------------------------------------------------------------------
# Loader
# --------------------------------------------------------------------------

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent / "default_config.yaml"
"""The bundled configuration used when no --config is given."""

_TAG_PREFIX = "tag:yaml.org,2002:"
_STR, _INT, _BOOL = _TAG_PREFIX + "str", _TAG_PREFIX + "int", _TAG_PREFIX + "bool"
_FLOAT = _TAG_PREFIX + "float"
_DECIMAL_RE = re.compile(r"[0-9][0-9_]*(\.[0-9_]*)?")
MAX_AMOUNT = 90_000_000_000  # the largest amount: 8 decimals fit in 63 bits
MAX_PRICE = Decimal("199999.99")  # OUCH's largest price
_TAG_NAMES = {
    _STR: "a string",
    _INT: "an integer",
    _BOOL: "a boolean",
    _TAG_PREFIX + "float": "a float",
    _TAG_PREFIX + "null": "an empty value (null)",
    _TAG_PREFIX + "timestamp": "a timestamp",
    _TAG_PREFIX + "binary": "binary data",
}

_MAC_RE = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")
_SYMBOL_RE = re.compile(r"[A-Z0-9.]{1,8}")
_MAX_TABLE = 1 << 26


class ConfigError(Exception):
    """A configuration problem, located: str() is "FILE:LINE: KEY: REASON".

    ``line`` is 1-based (None only when the file cannot be read at all);
    ``key`` is the dotted path of the offending key, list items indexed from
    0 (``sessions[1].port``), and "" for YAML syntax errors and unreadable
    files, in which case it is left out of str()."""

    def __init__(self, file: str, line: int | None, key: str, reason: str):
        super().__init__(file, line, key, reason)
        self.file = file
        self.line = line
        self.key = key
        self.reason = reason

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.key}: {self.reason}" if self.key else f"{where}: {self.reason}"


class ConfigErrors(ConfigError):
    """Every problem found in one file, in the order found (which follows
    the file); behaves as the first one, str() lists them all, one per
    line."""

    def __init__(self, errors: list[ConfigError]):
        errors = list(errors)
        first = errors[0]
        super().__init__(first.file, first.line, first.key, first.reason)
        self.errors = errors

    def __reduce__(self):
        return (ConfigErrors, (self.errors,))

    def __str__(self) -> str:
        return "\n".join(ConfigError.__str__(e) for e in self.errors)


class _Skip(Exception):
    """An item whose errors are already reported: leave it out."""


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the YAML configuration file at `path`."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(source, None, "", f"cannot read: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(source, line, "", f"not valid UTF-8: {e.reason}") from None
    return load_config_text(text, source)


def load_config_text(text: str, source: str = "<string>") -> Config:
    """Validate YAML configuration `text`; `source` names it in errors."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else 1
        reason = ", ".join(p for p in (e.context, e.problem) if p)
        raise ConfigError(source, line, "", f"YAML syntax error: {reason}") from None
    except yaml.reader.ReaderError as e:
        line = text[: e.position].count("\n") + 1
        raise ConfigError(source, line, "", f"YAML syntax error: {e.reason}") from None
    except yaml.YAMLError as e:  # pragma: no cover - every PyYAML error is one of the above
        raise ConfigError(source, 1, "", f"YAML error: {e}") from None
    if root is None:
        raise ConfigError(source, 1, "", "the configuration is empty")
    return replace(_Loader(source).config(root), text=text)


def load_default_config() -> Config:
    """The bundled default configuration (DEFAULT_CONFIG_PATH)."""
    return load_config(DEFAULT_CONFIG_PATH)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return _TAG_NAMES.get(node.tag, f"a value tagged {node.tag}")


class _Loader:
    """Walks the composed node tree, building the dataclasses.  A problem
    leaves out the item (list entry, section) it is in and the walk goes
    on, so that one run reports every error (ConfigErrors); names of items
    left out still count as configured, so that one bad entry does not
    cause errors where it is referred to."""

    def __init__(self, source: str):
        self.source = source
        self._ctor = SafeConstructor()
        self.errors: list[ConfigError] = []

    @contextmanager
    def collecting(self):
        """Report a ConfigError raised inside and carry on after the block."""
        try:
            yield
        except _Skip:
            pass
        except ConfigError as e:
            self.errors.append(e)

    def section(self, build, default=None):
        with self.collecting():
            return build()
        return default

    def error(self, at: yaml.Node | int, key: str, reason: str) -> ConfigError:
        line = at if isinstance(at, int) else at.start_mark.line + 1
        return ConfigError(self.source, line, key, reason)

    # --- structure -------------------------------------------------------

    def mapping(
        self, node: yaml.Node, path: str, cls: type, owner_line: int | None = None,
        optional: frozenset[str] = frozenset(),
    ) -> dict[str, yaml.Node]:
        """The value nodes of mapping `node`, whose keys must be the fields of
        dataclass `cls` (those without a default are required). Missing keys
        are reported at `owner_line`: the line of the key whose value this
        mapping is, else the mapping's own first line."""
        names = [f.name for f in fields(cls) if f.name not in NOT_IN_YAML]
        required = [
            f.name for f in fields(cls)
            if f.name not in NOT_IN_YAML and f.default is MISSING and f.default_factory is MISSING
            and f.name not in optional
        ]
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, path or "(root)", f"expected a mapping, got {_describe(node)}")
        values: dict[str, yaml.Node] = {}
        key_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR:
                raise self.error(
                    key_node, _join(path, "?"),
                    f"keys must be plain names, got {_describe(key_node)}; expected one of: "
                    + ", ".join(names),
                )
            key = key_node.value
            here = _join(path, key)
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.errors.append(self.error(
                    key_node, here,
                    f"unknown key, expected one of: {', '.join(names)}{hint}",
                ))
                continue
            if key in values:
                self.errors.append(self.error(
                    key_node, here, f"duplicate key (first at line {key_lines[key]})"))
                continue
            values[key] = value_node
            key_lines[key] = key_node.start_mark.line + 1
        missing = [key for key in required if key not in values]
        for key in missing:
            line = owner_line if owner_line is not None else node.start_mark.line + 1
            self.errors.append(self.error(line, _join(path, key), "missing required key"))
        if missing:
            raise _Skip
        return values

    def sequence(self, node: yaml.Node, path: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, path, f"expected a list, got {_describe(node)}")
        return list(node.value)

    @staticmethod
    def key_line(parent: yaml.Node, key: str) -> int:
        """Line of `key` in mapping node `parent` (which has it)."""
        for key_node, _ in parent.value:
            if key_node.value == key:
                return key_node.start_mark.line + 1
        return parent.start_mark.line + 1  # pragma: no cover

    # --- scalars ---------------------------------------------------------

    def integer(self, node: yaml.Node, path: str, lo: int, hi: int) -> int:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _INT:
            raise self.error(node, path, f"expected an integer, got {_describe(node)}")
        value = self._ctor.construct_yaml_int(node)
        if not lo <= value <= hi:
            raise self.error(node, path, f"{value} is out of range {lo}..{hi}")
        return value

    def decimal(self, node: yaml.Node, path: str, lo: Decimal | int, hi: Decimal | int,
                *, positive: bool = False) -> int:
        """A decimal number (written as in YAML, never read as a float) as
        a fixed-point integer with 8 decimals."""
        if not isinstance(node, yaml.ScalarNode) or node.tag not in (_INT, _FLOAT) or \
                not _DECIMAL_RE.fullmatch(node.value):
            raise self.error(node, path,
                             f"expected a decimal number like 150.25, got {_describe(node)}"
                             + (f" {node.value!r}" if isinstance(node, yaml.ScalarNode) else ""))
        value = Decimal(node.value.replace("_", ""))
        if -value.as_tuple().exponent > 8:
            raise self.error(node, path, f"{node.value} has more than 8 decimal places")
        if not lo <= value <= hi or (positive and value == 0):
            what = "above 0" if positive else f"{lo}"
            raise self.error(node, path, f"{node.value} is out of range {what}..{hi}")
        return int(value * PRICE_SCALE)

    def port(self, node: yaml.Node, path: str) -> int:
        return self.integer(node, path, 1, 65535)

    def boolean(self, node: yaml.Node, path: str) -> bool:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _BOOL:
            raise self.error(node, path, f"expected a boolean (true/false), got {_describe(node)}")
        return self._ctor.construct_yaml_bool(node)

    def string(self, node: yaml.Node, path: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _STR:
            hint = ""
            if isinstance(node, yaml.ScalarNode) and node.style is None and node.value:
                hint = f' (quote it: "{node.value}")'
            raise self.error(node, path, f"expected a string, got {_describe(node)}{hint}")
        return node.value

    def mac(self, node: yaml.Node, path: str) -> str:
        value = self.string(node, path)
        if not _MAC_RE.fullmatch(value):
            raise self.error(
                node, path, f'{value!r} is not a MAC address like "02:00:00:00:00:01"'
            )
        return value

    def ipv4(self, node: yaml.Node, path: str) -> str:
        value = self.string(node, path)
        try:
            return str(ipaddress.IPv4Address(value))
        except ValueError:
            raise self.error(
                node, path, f"{value!r} is not an IPv4 address (dotted quad)"
            ) from None

    # --- sections --------------------------------------------------------

    def config(self, root: yaml.Node) -> Config:
        top = self.section(lambda: self.mapping(root, "", Config))
        if top is None:
            raise ConfigErrors(self.errors)

        def owner(key: str) -> int:
            return self.key_line(root, key)

        def part(key: str, build, default=None):
            return self.section(lambda: build(top[key]), default) if key in top else default

        appliance = part("appliance", lambda n: self.appliance(n, owner("appliance")))
        tables = part("tables", lambda n: self.tables(n, owner("tables")), Tables())
        self.session_account_nodes: dict[str, list] = {}
        sessions = part("sessions", lambda n: self.sessions(n, tables), ())
        self.venue_ids: set[int] = set()
        venues = part("venues", lambda n: self.venues(n, tables), ())
        self.symbols: set[str] = set()
        instruments = part("instruments", lambda n: self.instruments(n, tables, venues), ())
        self.account_ids: set[int] = set()
        risk = part("risk", self.risk, Risk())
        accounts = part("accounts", lambda n: self.accounts(n, tables, risk.account_defaults), ())
        self.sessions_accounts_known()
        routing = part("routing", lambda n: self.routing(n, owner("routing"), venues))
        routes = part("routes", self.routes, ())
        dataplane = part("dataplane", lambda n: self.dataplane(n, owner("dataplane")),
                         Dataplane())
        if dataplane.threading.mode == "sharded":
            self.shards_cover(dataplane.threading, top["dataplane"], sessions, venues, accounts)
        market_data = part("market_data",
                           lambda n: self.market_data(n, owner("market_data"), appliance,
                                                      venues, instruments), MarketData())
        observability = part("observability",
                             lambda n: self.observability(n, owner("observability")),
                             Observability())
        journal = part("journal", self.journal)
        replication = part("replication", self.replication)
        if replication is not None and journal is None:
            self.errors.append(self.error(top["replication"], "replication",
                                          "needs journal: (the backup receives the journal)"))
        if replication is not None and dataplane.threading.mode != "rtc":
            # the I/O lcore of these modes would answer and send for a backup
            self.errors.append(self.error(
                top["replication"], "replication",
                f"not with dataplane.threading.mode {dataplane.threading.mode} (run-to-completion "
                "only, not done for the modes with an I/O lcore)"))
        if self.errors:
            raise ConfigErrors(self.errors)
        return Config(
            appliance=appliance,
            routing=routing,
            dataplane=dataplane,
            observability=observability,
            tables=tables,
            sessions=sessions,
            venues=venues,
            instruments=instruments,
            accounts=accounts,
            routes=routes,
            risk=risk,
            market_data=market_data,
            journal=journal,
            replication=replication,
            source=self.source,
        )

    def appliance(self, node: yaml.Node, owner_line: int) -> Appliance:
        v = self.mapping(node, "appliance", Appliance, owner_line)
        strategy_port = self.port(v["strategy_port"], "appliance.strategy_port")
        venue_port = self.port(v["venue_port"], "appliance.venue_port")
        if venue_port == strategy_port:
            raise self.error(
                v["venue_port"], "appliance.venue_port",
                f"must differ from appliance.strategy_port ({strategy_port})",
            )
        capacity = "A"
        if "capacity" in v:
            capacity = self.string(v["capacity"], "appliance.capacity")
            if capacity not in ("A", "P", "R", "O"):
                raise self.error(
                    v["capacity"], "appliance.capacity",
                    f"{capacity!r} is not an OUCH capacity, expected one of: A, P, R, O",
                )
        request_port = (self.port(v["venue_request_port"], "appliance.venue_request_port")
                        if "venue_request_port" in v else 0)
        if (request_port or venue_port + 1) in (strategy_port, venue_port) or \
                venue_port + 1 > 65535 and not request_port:
            raise self.error(
                v.get("venue_request_port", v["venue_port"]), "appliance.venue_request_port",
                "must differ from strategy_port and venue_port (and fit in 1..65535)",
            )
        return Appliance(
            mac=self.mac(v["mac"], "appliance.mac"),
            ip=self.ipv4(v["ip"], "appliance.ip"),
            strategy_port=strategy_port,
            venue_port=venue_port,
            capacity=capacity,
            venue_request_port=request_port,
            retransmit_ms=(self.integer(v["retransmit_ms"], "appliance.retransmit_ms", 1, 60_000)
                           if "retransmit_ms" in v else 50),
        )

    def tables(self, node: yaml.Node, owner_line: int) -> Tables:
        v = self.mapping(node, "tables", Tables, owner_line)
        ranges = {
            "orders": (1, _MAX_TABLE),
            "tx_frames": (64, 1_000_000),
            "max_sessions": (1, _MAX_TABLE),
            "max_venues": (1, _MAX_TABLE),
            "max_instruments": (1, _MAX_TABLE),
            "replay_depth": (16, 1 << 20),
            "max_accounts": (1, 1 << 20),
            "max_positions": (1, 1 << 24),
        }
        out = {key: self.integer(value, f"tables.{key}", *ranges[key]) for key, value in v.items()}
        depth = out.get("replay_depth", Tables.replay_depth)
        if depth & (depth - 1):
            raise self.error(v["replay_depth"], "tables.replay_depth",
                             f"{depth} is not a power of two")
        return Tables(**out)

    def limit(self, items: list[yaml.Node], path: str, what: str, limit: int, field_: str) -> None:
        if len(items) > limit:
            raise self.error(
                items[limit], f"{path}[{limit}]",
                f"{len(items)} {what} configured, more than tables.{field_} ({limit})",
            )

    def sessions(self, node: yaml.Node, tables: Tables) -> tuple[Session, ...]:
        items = self.sequence(node, "sessions")
        self.limit(items, "sessions", "sessions", tables.max_sessions, "max_sessions")
        out: list[Session] = []
        seen: dict[int, int] = {}
        for i, item in enumerate(items):
            path = f"sessions[{i}]"
            with self.collecting():
                v = self.mapping(item, path, Session)
                sid = self.integer(v["id"], f"{path}.id", 1, 2**32 - 1)
                if sid in seen:
                    raise self.error(
                        v["id"], f"{path}.id",
                        f"duplicate session id {sid} (first at line {seen[sid]})")
                seen[sid] = v["id"].start_mark.line + 1
                out.append(Session(
                    id=sid,
                    ip=self.ipv4(v["ip"], f"{path}.ip"),
                    port=self.port(v["port"], f"{path}.port"),
                    mac=self.mac(v["mac"], f"{path}.mac"),
                    enabled=(self.boolean(v["enabled"], f"{path}.enabled")
                             if "enabled" in v else True),
                    name=self.string(v["name"], f"{path}.name") if "name" in v else "",
                    throttle=self.throttle(v["throttle"], f"{path}.throttle")
                    if "throttle" in v else None,
                    cancel_on_disconnect=self.boolean(v["cancel_on_disconnect"],
                                                      f"{path}.cancel_on_disconnect")
                    if "cancel_on_disconnect" in v else False,
                    accounts=self.session_accounts(v, path),
                    **self.timers(v, path),
                ))
        return tuple(out)

    def session_accounts(self, v: dict, path: str) -> tuple[int, ...]:
        """Ids only: that they are configured is checked once accounts are
        read (sessions_accounts_known)."""
        if "accounts" not in v:
            return ()
        items = self.sequence(v["accounts"], f"{path}.accounts")
        if len(items) > 16:
            raise self.error(items[16], f"{path}.accounts[16]", "at most 16 accounts")
        ids = tuple(self.integer(n, f"{path}.accounts[{j}]", 0, 2**32 - 1)
                    for j, n in enumerate(items))
        self.session_account_nodes[path] = list(zip(ids, items, strict=True))
        return ids

    def sessions_accounts_known(self) -> None:
        for path, pairs in self.session_account_nodes.items():
            for j, (aid, node) in enumerate(pairs):
                if aid not in self.account_ids:
                    self.errors.append(self.error(node, f"{path}.accounts[{j}]",
                                                  f"account {aid} is not configured"))

    def venues(self, node: yaml.Node, tables: Tables) -> tuple[Venue, ...]:
        items = self.sequence(node, "venues")
        self.limit(items, "venues", "venues", tables.max_venues, "max_venues")
        out: list[Venue] = []
        seen_ids: dict[int, int] = {}
        seen_ips: dict[str, int] = {}
        for i, item in enumerate(items):
            path = f"venues[{i}]"
            with self.collecting():
                v = self.mapping(item, path, Venue)
                vid = self.integer(v["id"], f"{path}.id", 1, 65535)
                self.venue_ids.add(vid)
                if vid in seen_ids:
                    raise self.error(
                        v["id"], f"{path}.id",
                        f"duplicate venue id {vid} (first at line {seen_ids[vid]})",
                    )
                seen_ids[vid] = v["id"].start_mark.line + 1
                name = self.string(v["name"], f"{path}.name")
                if not name:
                    raise self.error(v["name"], f"{path}.name", "must not be empty")
                session = self.string(v["session"], f"{path}.session")
                if not 1 <= len(session) <= 10 or not all(" " <= c <= "~" for c in session):
                    raise self.error(
                        v["session"], f"{path}.session",
                        f"{session!r} must be 1 to 10 printable ASCII characters",
                    )
                if session.endswith(" "):
                    raise self.error(
                        v["session"], f"{path}.session",
                        f"{session!r} must not end with a space (the wire pads it with spaces)",
                    )
                ip = self.ipv4(v["ip"], f"{path}.ip")
                if ip in seen_ips:
                    # Venue packets are matched to their venue by source IP.
                    raise self.error(
                        v["ip"], f"{path}.ip",
                        f"duplicate venue ip {ip} (first at line {seen_ips[ip]}); "
                        "venues are told apart by their IP address",
                    )
                seen_ips[ip] = v["ip"].start_mark.line + 1
                out.append(Venue(
                    id=vid,
                    name=name,
                    session=session,
                    ip=ip,
                    port=self.port(v["port"], f"{path}.port"),
                    mac=self.mac(v["mac"], f"{path}.mac"),
                    request_port=(self.port(v["request_port"], f"{path}.request_port")
                                  if "request_port" in v else 0),
                    max_unanswered=(self.integer(v["max_unanswered"], f"{path}.max_unanswered",
                                                 0, 1_000_000)
                                    if "max_unanswered" in v else 0),
                    **self.timers(v, path),
                ))
        return tuple(out)

    def dataplane(self, node: yaml.Node, owner_line: int) -> Dataplane:
        v = self.mapping(node, "dataplane", Dataplane, owner_line)
        out: dict = {}
        if "lcores" in v:
            lcores = self.string(v["lcores"], "dataplane.lcores")
            item = r"\d+(-\d+)?|\d+@\d+"  # lcore ids, or lcore@cpu (EAL --lcores)
            if not re.fullmatch(rf"({item})(,({item}))*", lcores):
                raise self.error(v["lcores"], "dataplane.lcores",
                                 f"{lcores!r} is not an lcore list like \"0,1\", \"0-3\" "
                                 "or \"0@0,1@1,2@1\" (lcore@cpu)")
            out["lcores"] = lcores
        for key in ("hugepages", "allow_shared_cpus"):
            if key in v:
                out[key] = self.boolean(v[key], f"dataplane.{key}")
        for key, lo, hi in (("memory_mb", 64, 1 << 20), ("mbufs", 511, 1 << 24),
                            ("idle_sleep_us", 0, 1_000_000), ("mtu", 68, 9600),
                            ("rx_queues", 1, 4), ("link_wait_ms", 0, 60_000),
                            ("tx_wait_us", 1, 1_000_000)):
            if key in v:
                out[key] = self.integer(v[key], f"dataplane.{key}", lo, hi)
        for key in ("pci", "vdevs"):
            if key in v:
                items = self.sequence(v[key], f"dataplane.{key}")
                out[key] = tuple(self.string(n, f"dataplane.{key}[{i}]")
                                 for i, n in enumerate(items))
        if "ports" in v:
            pv = self.mapping(v["ports"], "dataplane.ports", DataplanePorts)
            out["ports"] = DataplanePorts(
                strategy=self.string(pv["strategy"], "dataplane.ports.strategy"),
                venue=self.string(pv["venue"], "dataplane.ports.venue"))
        if "afxdp" in v:
            out["afxdp"] = self.afxdp(v["afxdp"], self.key_line(node, "afxdp"))
        if "threading" in v:
            out["threading"] = self.threading(v["threading"], self.key_line(node, "threading"))
        if out.get("rx_queues", 1) > 1 and out.get("threading", Threading()).mode != "rtc":
            raise self.error(v["rx_queues"], "dataplane.rx_queues",
                             "only run-to-completion mode polls several RX queues per port; "
                             "the sharded and typed modes' I/O lcore polls one")
        return Dataplane(**out)

    def shards_cover(self, t: Threading, node: yaml.Node, sessions, venues, accounts) -> None:
        """Every session, venue and account has a worker, and shards name
        only configured sessions."""
        line = self.key_line(node, "threading")
        for key, items in (("sessions", sessions), ("venues", venues), ("accounts", accounts)):
            owned = {x for w in t.workers for x in getattr(w, key)}
            have = {x.id for x in items}
            for x in sorted(have - owned):
                self.errors.append(self.error(line, "dataplane.threading.workers",
                                              f"{key[:-1]} {x} belongs to no worker"))
            for x in sorted(owned - have):
                self.errors.append(self.error(line, "dataplane.threading.workers",
                                              f"{key[:-1]} {x} is not configured"))
        for w in t.workers:
            for s in sessions:
                stray = sorted(set(s.accounts) - set(w.accounts))
                if s.id in w.sessions and stray:
                    self.errors.append(self.error(
                        line, "dataplane.threading.workers",
                        f"session {s.id} may trade accounts {stray} its worker does not own"))

    def threading(self, node: yaml.Node, owner_line: int) -> Threading:
        path = "dataplane.threading"
        v = self.mapping(node, path, Threading, owner_line)
        mode = self.string(v["mode"], f"{path}.mode") if "mode" in v else "rtc"
        if mode not in ("rtc", "sharded", "typed"):
            raise self.error(v["mode"], f"{path}.mode",
                             f"{mode!r} is not rtc, sharded or typed")
        shards: list[Shard] = []
        owner: dict[tuple[str, int], int] = {}
        items = self.sequence(v["workers"], f"{path}.workers") if "workers" in v else []
        if mode == "sharded" and not 1 <= len(items) <= 8:
            raise self.error(v.get("workers", node), f"{path}.workers",
                             "sharded mode needs 1 to 8 workers")
        if mode != "sharded" and items:
            raise self.error(v["workers"], f"{path}.workers", "only sharded mode has workers")
        for i, item in enumerate(items):
            wpath = f"{path}.workers[{i}]"
            with self.collecting():
                w = self.mapping(item, wpath, Shard)
                lists = {}
                for key, known in (("sessions", None), ("venues", self.venue_ids),
                                   ("accounts", self.account_ids)):
                    ids = []
                    for j, n in enumerate(self.sequence(w[key], f"{wpath}.{key}")
                                          if key in w else []):
                        x = self.integer(n, f"{wpath}.{key}[{j}]", 0, 2**32 - 1)
                        if known is not None and x not in known:
                            raise self.error(n, f"{wpath}.{key}[{j}]",
                                             f"{key[:-1]} {x} is not configured")
                        if (key, x) in owner:
                            raise self.error(n, f"{wpath}.{key}[{j}]",
                                             f"{key[:-1]} {x} is already worker "
                                             f"{owner[(key, x)]}'s: one owner each")
                        owner[(key, x)] = i
                        ids.append(x)
                    lists[key] = tuple(ids)
                shards.append(Shard(**lists))
        return Threading(mode=mode, workers=tuple(shards))

    def afxdp(self, node: yaml.Node, owner_line: int) -> Afxdp:
        path = "dataplane.afxdp"
        v = self.mapping(node, path, Afxdp, owner_line)
        out: dict = {}
        for key in ("strategy_iface", "venue_iface"):
            name = self.string(v[key], f"{path}.{key}")
            if not _IFNAME_RE.fullmatch(name):
                raise self.error(v[key], f"{path}.{key}",
                                 f"{name!r} is not an interface name (1-15 characters)")
            out[key] = name
        if "queue" in v:
            out["queue"] = self.integer(v["queue"], f"{path}.queue", 0, 1023)
        if "mode" in v:
            mode = self.string(v["mode"], f"{path}.mode")
            if mode not in AFXDP_MODES:
                raise self.error(v["mode"], f"{path}.mode",
                                 f"{mode!r} is not one of: {', '.join(AFXDP_MODES)}")
            out["mode"] = mode
        if "frames" in v:
            frames = self.integer(v["frames"], f"{path}.frames", 64, 1 << 18)
            if frames & (frames - 1):
                raise self.error(v["frames"], f"{path}.frames",
                                 f"{frames} is not a power of two")
            out["frames"] = frames
        if "cpu" in v:
            out["cpu"] = self.integer(v["cpu"], f"{path}.cpu", -1, 4095)
        return Afxdp(**out)

    def observability(self, node: yaml.Node, owner_line: int) -> Observability:
        v = self.mapping(node, "observability", Observability, owner_line)
        out: dict = {}
        for key in ("enabled", "timing"):
            if key in v:
                out[key] = self.boolean(v[key], f"observability.{key}")
        if "listen" in v:
            path = "observability.listen"
            listen = self.string(v["listen"], path)
            host, sep, port = listen.rpartition(":")
            if not sep or not port.isdigit() or int(port) > 65535:
                raise self.error(v["listen"], path,
                                 f"{listen!r} is not host:port, e.g. \"127.0.0.1:9478\"")
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise self.error(v["listen"], path,
                                 f"{host!r} is not an IPv4 address (127.0.0.1 keeps it "
                                 "local; 0.0.0.0 serves every interface)") from None
            out["listen"] = listen
        return Observability(**out)
    def journal(self, node: yaml.Node) -> Journal:
        v = self.mapping(node, "journal", Journal)
        out: dict = {"path": self.string(v["path"], "journal.path")}
        if not out["path"]:
            raise self.error(v["path"], "journal.path", "must name a file")
        if "durability" in v:
            d = self.string(v["durability"], "journal.durability")
            if d not in JOURNAL_DURABILITY:
                raise self.error(v["durability"], "journal.durability",
                                 f"{d!r} is not one of: {', '.join(JOURNAL_DURABILITY)}")
            out["durability"] = d
        if "sync_interval_ms" in v:
            out["sync_interval_ms"] = self.integer(v["sync_interval_ms"],
                                                   "journal.sync_interval_ms", 1, 60_000)
        if "segment_mb" in v:
            out["segment_mb"] = self.integer(v["segment_mb"], "journal.segment_mb", 1, 65_536)
        if "after_recovery" in v:
            a = self.string(v["after_recovery"], "journal.after_recovery")
            if a not in JOURNAL_AFTER_RECOVERY:
                raise self.error(v["after_recovery"], "journal.after_recovery",
                                 f"{a!r} is not one of: {', '.join(JOURNAL_AFTER_RECOVERY)}")
            out["after_recovery"] = a
        if "route_records" in v:
            out["route_records"] = self.boolean(v["route_records"], "journal.route_records")
        return Journal(**out)

    def host_port(self, node: yaml.Node, path: str) -> str:
        value = self.string(node, path)
        host, _, port = value.rpartition(":")
        try:
            ipaddress.IPv4Address(host)
            if not 1 <= int(port) <= 65535:
                raise ValueError
        except ValueError:
            raise self.error(node, path, f"{value!r} is not IPv4:port") from None
        return value

    def replication(self, node: yaml.Node) -> Replication:
        v = self.mapping(node, "replication", Replication)
        role = self.string(v["role"], "replication.role")
        if role not in REPLICATION_ROLES:
            raise self.error(v["role"], "replication.role",
                             f"{role!r} is not one of: {', '.join(REPLICATION_ROLES)}")
        out: dict = {"role": role, "listen": self.host_port(v["listen"], "replication.listen"),
                     "peer": self.host_port(v["peer"], "replication.peer")}
        if "sync" in v:
            out["sync"] = self.boolean(v["sync"], "replication.sync")
        if "degrade" in v:
            d = self.string(v["degrade"], "replication.degrade")
            if d not in REPLICATION_DEGRADE:
                raise self.error(v["degrade"], "replication.degrade",
                                 f"{d!r} is not one of: {', '.join(REPLICATION_DEGRADE)}")
            out["degrade"] = d
        for key, lo, hi in (("heartbeat_us", 100, 10_000_000), ("timeout_us", 500, 60_000_000),
                            ("ack_wait_us", 10, 60_000_000)):
            if key in v:
                out[key] = self.integer(v[key], f"replication.{key}", lo, hi)
        r = Replication(**out)
        if r.timeout_us <= 2 * r.heartbeat_us:
            raise self.error(node, "replication.timeout_us",
                             "must exceed twice heartbeat_us")
        return r

    def timers(self, v: dict, path: str) -> dict:
        out = {}
        for key, default in (("heartbeat_ms", 1000), ("timeout_ms", 3000)):
            out[key] = (self.integer(v[key], f"{path}.{key}", 1, 3_600_000)
                        if key in v else default)
        if out["timeout_ms"] <= out["heartbeat_ms"]:
            raise self.error(v.get("timeout_ms", v.get("heartbeat_ms")), f"{path}.timeout_ms",
                             f"must be longer than heartbeat_ms ({out['heartbeat_ms']})")
        return out

    def throttle(self, node: yaml.Node, path: str) -> Throttle:
        v = self.mapping(node, path, Throttle)
        return Throttle(
            per_second=self.integer(v["per_second"], f"{path}.per_second", 1, 10_000_000),
            burst=self.integer(v["burst"], f"{path}.burst", 1, 1_000_000))

    def names(self, node: yaml.Node, path: str, allowed: dict[str, int]) -> tuple[str, ...]:
        """A list of distinct names out of `allowed`."""
        out: list[str] = []
        for i, item in enumerate(self.sequence(node, path)):
            name = self.string(item, f"{path}[{i}]")
            if name not in allowed:
                raise self.error(item, f"{path}[{i}]",
                                 f"{name!r} is not one of: {', '.join(allowed)}")
            if name in out:
                raise self.error(item, f"{path}[{i}]", f"{name} is listed twice")
            out.append(name)
        return tuple(out)

    # --- accounts and their defaults --------------------------------------

    def max_position(self, pnode: yaml.Node, ppath: str) -> tuple[tuple[str, int], ...]:
        if not isinstance(pnode, yaml.MappingNode):
            raise self.error(pnode, ppath,
                             f"expected a mapping of symbol: shares, got {_describe(pnode)}")
        positions: list[tuple[str, int]] = []
        for key_node, value_node in pnode.value:
            with self.collecting():
                sym = self.string(key_node, f"{ppath}.?")
                here = f"{ppath}.{sym}"
                if sym not in self.symbols:
                    raise self.error(key_node, here,
                                     f"symbol {sym} is not configured under instruments")
                if any(s == sym for s, _ in positions):
                    raise self.error(key_node, here, "duplicate symbol")
                positions.append((sym, self.integer(value_node, here, 0, 1 << 40)))
        return tuple(positions)

    def account_field(self, key: str, node: yaml.Node, path: str):
        """One limit of an account (or of risk.account_defaults), parsed."""
        here = f"{path}.{key}"
        if key == "max_order_qty":
            return self.integer(node, here, 1, 999_999)
        if key in ("max_order_notional", "credit_limit"):
            return self.decimal(node, here, 0, MAX_AMOUNT)
        if key == "max_open_orders":
            return self.integer(node, here, 0, 2**32 - 1)
        if key == "max_position":
            return self.max_position(node, here)
        if key == "order_types":
            return self.names(node, here, ORDER_TYPES)
        if key == "tifs":
            return self.names(node, here, TIFS)
        if key == "kill":
            return self.boolean(node, here)
        raise AssertionError(key)  # pragma: no cover - mapping() allows no other key

    def risk(self, node: yaml.Node) -> Risk:
        v = self.mapping(node, "risk", Risk)
        if "account_defaults" not in v:
            return Risk()
        path = "risk.account_defaults"
        d = self.mapping(v["account_defaults"], path, AccountDefaults)
        return Risk(account_defaults=AccountDefaults(
            **{key: self.account_field(key, n, path) for key, n in d.items()}))

    def accounts(self, node: yaml.Node, tables: Tables,
                 defaults: AccountDefaults) -> tuple[Account, ...]:
        items = self.sequence(node, "accounts")
        self.limit(items, "accounts", "accounts", tables.max_accounts, "max_accounts")
        have = {f.name: getattr(defaults, f.name) for f in fields(AccountDefaults)
                if getattr(defaults, f.name) is not None}
        out: list[Account] = []
        seen: dict[int, int] = {}
        n_positions = 0
        for i, item in enumerate(items):
            path = f"accounts[{i}]"
            with self.collecting():
                v = self.mapping(item, path, Account, optional=frozenset(have))
                aid = self.integer(v["id"], f"{path}.id", 0, 2**32 - 1)
                self.account_ids.add(aid)
                if aid in seen:
                    raise self.error(v["id"], f"{path}.id",
                                     f"duplicate account id {aid} (first at line {seen[aid]})")
                seen[aid] = v["id"].start_mark.line + 1
                values = dict(have)
                values.update({key: self.account_field(key, n, path)
                               for key, n in v.items() if key != "id"})
                n_positions += len(values.get("max_position", ()))
                if n_positions > tables.max_positions:
                    at = v.get("max_position", item)
                    raise self.error(at, f"{path}.max_position",
                                     f"more than tables.max_positions ({tables.max_positions})"
                                     " max_position entries in all")
                out.append(Account(id=aid, **values))
        return tuple(out)

    def instrument_risk(self, v: dict, path: str, venues: tuple[Venue, ...]) -> dict:
        out: dict = {}
        if "tick_size" in v:
            out["tick_size"] = self.decimal(v["tick_size"], f"{path}.tick_size", 0, MAX_PRICE,
                                            positive=True)
        if "lot_size" in v:
            out["lot_size"] = self.integer(v["lot_size"], f"{path}.lot_size", 1, 999_999)
        if "reference_price" in v:
            out["reference_price"] = self.decimal(v["reference_price"],
                                                  f"{path}.reference_price", 0, MAX_PRICE,
                                                  positive=True)
        if "price_band_pct" in v:
            out["price_band_pct"] = self.decimal(v["price_band_pct"], f"{path}.price_band_pct",
                                                 0, 1000, positive=True)
        if "price_band_abs" in v:
            out["price_band_abs"] = self.decimal(v["price_band_abs"], f"{path}.price_band_abs",
                                                 0, MAX_PRICE, positive=True)
        if out.get("reference_price", 0) % out.get("tick_size", Instrument.tick_size):
            raise self.error(v["reference_price"], f"{path}.reference_price",
                             "is not a multiple of the tick_size")
        for key in ("price_band_pct", "price_band_abs"):
            if key in out and "reference_price" not in out:
                raise self.error(v[key], f"{path}.{key}",
                                 "a price band needs the instrument's reference_price")
        for key in ("restricted", "halted"):
            if key in v:
                out[key] = self.boolean(v[key], f"{path}.{key}")
        if "venues" in v:
            ids = []
            items = self.sequence(v["venues"], f"{path}.venues")
            if len(items) > 16:
                raise self.error(items[16], f"{path}.venues[16]", "at most 16 venues")
            for j, item in enumerate(items):
                vid = self.integer(item, f"{path}.venues[{j}]", 1, 65535)
                if vid not in self.venue_ids:
                    raise self.error(item, f"{path}.venues[{j}]",
                                     f"venue {vid} is not configured")
                if vid in ids:
                    raise self.error(item, f"{path}.venues[{j}]", f"venue {vid} listed twice")
                index = next((k for k, venue in enumerate(venues) if venue.id == vid), 0)
                if index >= 64:
                    raise self.error(item, f"{path}.venues[{j}]",
                                     "only the first 64 configured venues can be listed")
                ids.append(vid)
            out["venues"] = tuple(ids)
        return out

    def instruments(self, node: yaml.Node, tables: Tables,
                    venues: tuple[Venue, ...] = ()) -> tuple[Instrument, ...]:
        items = self.sequence(node, "instruments")
        self.limit(items, "instruments", "instruments", tables.max_instruments, "max_instruments")
        out: list[Instrument] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            path = f"instruments[{i}].symbol"
            with self.collecting():
                v = self.mapping(item, f"instruments[{i}]", Instrument)
                symbol = self.string(v["symbol"], path)
                if not _SYMBOL_RE.fullmatch(symbol):
                    raise self.error(
                        v["symbol"], path,
                        f"{symbol!r} must be 1 to 8 characters of A-Z, 0-9 and '.'")
                if symbol in seen:
                    raise self.error(
                        v["symbol"], path,
                        f"duplicate symbol {symbol} (first at line {seen[symbol]})")
                seen[symbol] = v["symbol"].start_mark.line + 1
                self.symbols.add(symbol)
                out.append(Instrument(symbol=symbol,
                                      **self.instrument_risk(v, f"instruments[{i}]", venues)))
        return tuple(out)

    def route_venue(self, node: yaml.Node, path: str) -> int:
        """A configured venue id, or "sor" (SOR, 0): the smart order router."""
        if isinstance(node, yaml.ScalarNode) and node.tag == _STR and node.value == "sor":
            return SOR
        if isinstance(node, yaml.ScalarNode) and node.tag == _STR:
            raise self.error(node, path, f"expected a venue id or \"sor\", got {node.value!r}")
        venue = self.integer(node, path, 1, 65535)
        if venue not in self.venue_ids:
            configured = ", ".join(str(i) for i in sorted(self.venue_ids)) or "none"
            raise self.error(node, path,
                             f"venue {venue} is not configured (configured venue ids: "
                             f"{configured})")
        return venue

    def routing(self, node: yaml.Node, owner_line: int, venues: tuple[Venue, ...]) -> Routing:
        v = self.mapping(node, "routing", Routing, owner_line)
        default = self.route_venue(v["default_venue"], "routing.default_venue")
        cost = (self.decimal(v["latency_cost_per_us"], "routing.latency_cost_per_us", 0,
                             MAX_PRICE) if "latency_cost_per_us" in v else 0)
        miss = (self.decimal(v["miss_penalty"], "routing.miss_penalty", 0, MAX_PRICE)
                if "miss_penalty" in v else 0)
        path, doc, pin = None, None, None
        if "model_id" in v:
            pin = self.string(v["model_id"], "routing.model_id")
        if "model" in v:
            path, doc = self.fill_model(v["model"], venues, pin)
        split = (self.integer(v["split_max_children"], "routing.split_max_children", 1,
                              SPLIT_MAX) if "split_max_children" in v else 1)
        return Routing(default_venue=default, latency_cost_per_us=cost, model=path,
                       model_id=pin, miss_penalty=miss, fill_model=doc,
                       split_max_children=split)

    def fill_model(self, node: yaml.Node, venues: tuple[Venue, ...],
                   pin: str | None) -> tuple[str | None, dict | None]:
        """routing.model: PATH (relative to the configuration file) or off."""
        from control import fill_artefact
        if isinstance(node, yaml.ScalarNode) and node.value.lower() in ("off", "false", "no"):
            return None, None  # YAML reads a bare off as false
        name = self.string(node, "routing.model")
        if name == "off":
            return None, None
        base = os.path.dirname(self.source) if os.path.isfile(self.source) else "."
        path = os.path.normpath(os.path.join(base, name))
        try:
            doc = fill_artefact.load(path)
        except fill_artefact.ModelError as e:
            raise self.error(node, "routing.model", f"refused: {e}") from None
        if pin is not None and doc["model_id"] != pin:
            raise self.error(node, "routing.model", f"{path} is model {doc['model_id']}, "
                             f"routing.model_id pins {pin}")
        if not {v.name for v in venues} & set(doc["venues"]):
            raise self.error(node, "routing.model",
                             f"none of the model's venues ({', '.join(doc['venues'])}) is "
                             "configured")
        return path, doc

    def routes(self, node: yaml.Node) -> tuple[Route, ...]:
        out: list[Route] = []
        seen: dict[tuple, int] = {}
        for i, item in enumerate(self.sequence(node, "routes")):
            path = f"routes[{i}]"
            with self.collecting():
                v = self.mapping(item, path, Route)
                venue = self.route_venue(v["venue"], f"{path}.venue")
                exclude: list[int] = []
                if "exclude" in v:
                    if venue != SOR:
                        raise self.error(v["exclude"], f"{path}.exclude",
                                         "only a route to the smart router (venue: sor) "
                                         "excludes venues")
                    for k, x in enumerate(self.sequence(v["exclude"], f"{path}.exclude")):
                        xid = self.integer(x, f"{path}.exclude[{k}]", 1, 65535)
                        if xid not in self.venue_ids or xid in exclude:
                            raise self.error(x, f"{path}.exclude[{k}]",
                                             f"venue {xid} is not configured or listed twice")
                        exclude.append(xid)
                    if len(exclude) > 16:
                        raise self.error(v["exclude"], f"{path}.exclude",
                                         "at most 16 venues")
                account = symbol = None
                if "account" in v:
                    account = self.integer(v["account"], f"{path}.account", 0, 2**32 - 1)
                    if account not in self.account_ids:
                        raise self.error(v["account"], f"{path}.account",
                                         f"account {account} is not configured under accounts")
                if "symbol" in v:
                    symbol = self.string(v["symbol"], f"{path}.symbol")
                    if symbol not in self.symbols:
                        raise self.error(v["symbol"], f"{path}.symbol",
                                         f"symbol {symbol} is not configured under instruments")
                if account is None and symbol is None:
                    raise self.error(item, path, "a route names an account, a symbol or both "
                                     "(the fallback is routing.default_venue)")
                key = (account, symbol)
                if key in seen:
                    raise self.error(item, path, f"a route for the same account and symbol is "
                                     f"at line {seen[key]}")
                seen[key] = item.start_mark.line + 1
                out.append(Route(venue=venue, account=account, symbol=symbol,
                                 exclude=tuple(exclude)))
        return tuple(out)

    # --- market data (docs/market-data.md) --------------------------------
    # One block for the market_data section, kept apart from the rest.

    def market_data(self, node: yaml.Node, owner_line: int, appliance: Appliance,
                    venues: tuple[Venue, ...],
                    instruments: tuple[Instrument, ...]) -> MarketData:
        v = self.mapping(node, "market_data", MarketData, owner_line)
        out: dict = {}
        if "stale_after_ms" in v:
            out["stale_after_ms"] = self.integer(v["stale_after_ms"],
                                                 "market_data.stale_after_ms", 1, 3_600_000)
        if "max_orders" in v:
            out["max_orders"] = self.integer(v["max_orders"], "market_data.max_orders", 16,
                                             _MAX_TABLE)
        if "max_levels" in v:
            out["max_levels"] = self.integer(v["max_levels"], "market_data.max_levels", 2,
                                             1 << 20)
        if "request_port" in v:
            port = self.port(v["request_port"], "market_data.request_port")
            taken = {} if appliance is None else {  # None: its errors are reported
                appliance.strategy_port: "appliance.strategy_port",
                appliance.venue_port: "appliance.venue_port",
                appliance.request_port: "the venue request port"}
            if port in taken:
                raise self.error(v["request_port"], "market_data.request_port",
                                 f"{port} is already {taken[port]}")
            out["request_port"] = port
        if "symbols" in v:
            out["symbols"] = self.md_symbols(v["symbols"], instruments)
        if "subscriptions" in v:
            out["subscriptions"] = self.md_subscriptions(v["subscriptions"], venues)
        return MarketData(**out)

    def md_symbols(self, node: yaml.Node, instruments: tuple[Instrument, ...]) -> tuple[str, ...]:
        known = self.symbols  # configured instruments, those left out for errors too
        out: list[str] = []
        for i, item in enumerate(self.sequence(node, "market_data.symbols")):
            path = f"market_data.symbols[{i}]"
            symbol = self.string(item, path)
            if not _SYMBOL_RE.fullmatch(symbol):
                raise self.error(item, path,
                                 f"{symbol!r} must be 1 to 8 characters of A-Z, 0-9 and '.'")
            if known and symbol not in known:
                raise self.error(item, path, f"{symbol} is not a configured instrument")
            if symbol in out:
                raise self.error(item, path, f"{symbol} is listed twice")
            out.append(symbol)
        return tuple(out)

    def md_subscriptions(self, node: yaml.Node,
                         venues: tuple[Venue, ...]) -> tuple[FeedSubscription, ...]:
        out: list[FeedSubscription] = []
        seen_venue: dict[int, int] = {}
        seen_flow: dict[tuple, int] = {}
        for i, item in enumerate(self.sequence(node, "market_data.subscriptions")):
            path = f"market_data.subscriptions[{i}]"
            v = self.mapping(item, path, FeedSubscription)
            line = item.start_mark.line + 1
            venue = self.integer(v["venue"], f"{path}.venue", 1, 65535)
            if venue not in self.venue_ids:
                configured = ", ".join(str(x) for x in sorted(self.venue_ids)) or "none"
                raise self.error(v["venue"], f"{path}.venue",
                                 f"venue {venue} is not configured (configured venue ids: "
                                 f"{configured})")
            if venue in seen_venue:
                raise self.error(v["venue"], f"{path}.venue",
                                 f"venue {venue} already has a feed (line {seen_venue[venue]})")
            seen_venue[venue] = line
            group = self.ipv4(v["group"], f"{path}.group")
            addr = ipaddress.IPv4Address(group)
            if not addr.is_multicast or addr in ipaddress.IPv4Network("224.0.0.0/24"):
                raise self.error(v["group"], f"{path}.group",
                                 f"{group} is not a routable multicast group "
                                 "(224.0.1.0 to 239.255.255.255)")
            port = self.port(v["port"], f"{path}.port")
            fields_: dict = {}
            if "source_ip" in v:
                source = self.ipv4(v["source_ip"], f"{path}.source_ip")
                if ipaddress.IPv4Address(source).is_multicast:
                    raise self.error(v["source_ip"], f"{path}.source_ip",
                                     f"{source} is a group, not a source")
                fields_["source_ip"] = source
            flow = (group, port, fields_.get("source_ip", ""))
            if flow in seen_flow:
                raise self.error(item, path, f"the same group, port and source as line "
                                             f"{seen_flow[flow]}")
            seen_flow[flow] = line
            if "rx_port" in v:
                fields_["rx_port"] = self.string(v["rx_port"], f"{path}.rx_port")
            if "rx_queue" in v:
                fields_["rx_queue"] = self.integer(v["rx_queue"], f"{path}.rx_queue", 0, 1023)
            if "stale_after_ms" in v:
                fields_["stale_after_ms"] = self.integer(v["stale_after_ms"],
                                                         f"{path}.stale_after_ms", 1, 3_600_000)
            if "retransmission" in v:
                rp = f"{path}.retransmission"
                rv = self.mapping(v["retransmission"], rp, Retransmission,
                                  self.key_line(item, "retransmission"))
                fields_["retransmission"] = Retransmission(
                    ip=self.ipv4(rv["ip"], f"{rp}.ip"), port=self.port(rv["port"], f"{rp}.port"),
                    mac=self.mac(rv["mac"], f"{rp}.mac"))
            out.append(FeedSubscription(venue=venue, group=group, port=port, **fields_))
        return tuple(out)
