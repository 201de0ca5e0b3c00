"""Hex test vectors written by hand from the specifications' tables.

Every vector below was assembled field by field from the message tables of

* ``OUCH``: Nasdaq, *OUCH 5.0 Order Entry Specification*, rev 1.04
  (2024-05-01), section numbers as in that PDF (text copy:
  /tmp/research/pdf/ouch50_layout.txt). Big-endian (§1.2 Data Types);
* ``MOLD``: the *MoldUDP64 1.00* downstream packet header, which the
  appliance uses in both directions (docs/venue-protocol.md, "Framing").
  Big-endian;
* ``SP``: the strategy protocol, version 1 (docs/protocol.md, one section
  per message, and cdefs/sp_wire.h). Little-endian.

None of them was produced by the project's encoders (the scapy layers, the
C core, the reference model or tests/wire.py's builders). Each vector names
its document, version and section in ``source``, and each field has a
comment.

Three groups of tests use them:

1. the scapy layers (pcaps/layers.py): building each message from its fields
   gives the vector, dissecting the vector gives the fields, and the
   decode_ouch / decode_venue / decode_sp helpers agree;
2. the C core (dataplane/core.py) and
3. the reference model (dataplane/reference_model.py), with the same
   scripted scenarios. A scenario feeds the inbound vectors (strategy and
   venue) step by step. These are the decoder tests: the order's fields and
   the counters are checked after each step. The UDP payload of every frame
   the core emits must equal the outbound vector exactly. These are the
   encoder tests. The inputs are chosen so that every field of each
   outbound vector is fixed: ``now_ns``, the venue session "NSDQ01",
   Capacity 'A', the UserRefNum and framing sequence counters.

Vectors that an implementation decodes or encodes differently would stay
as they are; the test would be marked xfail(strict=True), with the section
named in the reason.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

import pytest
import wire
from scapy.packet import NoPayload, Raw

from dataplane.core import Core
from dataplane.reference_model import ReferenceCore
from pcaps import layers as L

OUCH = "Nasdaq OUCH 5.0 Order Entry Specification rev 1.04 (2024-05-01)"
MOLD = "MoldUDP64 1.00 downstream packet header (docs/venue-protocol.md, Framing)"
SP = "Strategy protocol version 1 (docs/protocol.md; cdefs/sp_wire.h)"

# now_ns of step k of a scenario: T0 + k * 0x1000.  T0 = 0x16BC39549B351000
# = 1638247400000000000 ns = 2021-11-30 04:43:20 UTC (docs/protocol.md,
# Example).  Little-endian on the wire: T(k) = "00" + "{k+1}0" + "359b5439bc16".
T0 = 0x16BC39549B351000


def now(k: int) -> int:
    return T0 + k * 0x1000


@dataclass(frozen=True)
class Vector:
    name: str
    source: str  # document, version, section
    hex: str
    fields: dict = field(default_factory=dict)
    kind: str = ""  # OUCH: key of layers.OUCH_CLASSES; SP: message type name

    @property
    def data(self) -> bytes:
        return bytes.fromhex(self.hex)

    def __repr__(self) -> str:  # short pytest ids
        return self.name


# ==========================================================================
# 1. OUCH 5.0 (big-endian)
#
# OUCH timestamps ("nanoseconds since midnight") are all 09:30:00.123456789
# = 34,200,123,456,789 ns = 0x00001F1AD635BD15.

OUCH_TS = 34_200_123_456_789

# --- inbound (appliance -> venue) -----------------------------------------

O_ENTER_AAPL = Vector(
    "ouch_O_enter_aapl_buy", f"{OUCH} §2.1 Enter Order", (
        "4F"                    # Type 'O'
        "00000001"              # UserRefNum 1
        "42"                    # Side 'B' buy
        "00000064"              # Quantity 100
        "4141504C20202020"      # Symbol "AAPL    "
        "000000000016ED24"      # Price 150.2500 (4 implied decimals, §1.2) = 1502500
        "30"                    # Time In Force '0' Day
        "59"                    # Display 'Y' visible
        "41"                    # Capacity 'A' agency
        "4E"                    # InterMarket Sweep Eligibility 'N'
        "4E"                    # CrossType 'N' continuous market
        "394958" "2020202020202020202020"  # ClOrdID "9IX" + 11 spaces (14 alpha)
        "0000"                  # Appendage Length 0
    ),
    dict(type=b"O", user_ref=1, side=b"B", qty=100, symbol=b"AAPL    ", price=1502500,
         tif=b"0", display=b"Y", capacity=b"A", iso=b"N", cross_type=b"N",
         cl_ord_id=b"9IX           ", appendage_length=0, appendage=b""),
    "EnterOrder")

O_ENTER_MSFT_MARKET = Vector(
    "ouch_O_enter_msft_market_ioc", f"{OUCH} §2.1 Enter Order; §1.2 market price", (
        "4F"                    # Type 'O'
        "00000001"              # UserRefNum 1
        "53"                    # Side 'S' sell
        "000001F4"              # Quantity 500
        "4D53465420202020"      # Symbol "MSFT    "
        "000000007FFFFFFF"      # Price $214,748.3647 = 0x7FFFFFFF: market (§1.2)
        "33"                    # Time In Force '3' IOC
        "59"                    # Display 'Y'
        "41"                    # Capacity 'A'
        "4E"                    # ISO 'N'
        "4E"                    # CrossType 'N'
        "5A5A" "202020202020202020202020"  # ClOrdID "ZZ" (1295 in base 36) + 12 spaces
        "0000"                  # Appendage Length 0
    ),
    dict(type=b"O", user_ref=1, side=b"S", qty=500, symbol=b"MSFT    ", price=0x7FFFFFFF,
         tif=b"3", display=b"Y", capacity=b"A", iso=b"N", cross_type=b"N",
         cl_ord_id=b"ZZ            ", appendage_length=0, appendage=b""),
    "EnterOrder")

O_ENTER_SPY_SHORT = Vector(
    "ouch_O_enter_spy_short_locate",
    f"{OUCH} §2.1 Enter Order; §1.2 TagValue; Appendix A tag 25 SharesLocated", (
        "4F"                    # Type 'O'
        "00000002"              # UserRefNum 2
        "54"                    # Side 'T' sell short
        "000F423F"              # Quantity 999,999 (must be < 1,000,000)
        "5350592020202020"      # Symbol "SPY     "
        "00000000003EEB40"      # Price 412.3456 = 4123456
        "30"                    # Time In Force '0' Day
        "59"                    # Display 'Y'
        "41"                    # Capacity 'A'
        "4E"                    # ISO 'N'
        "4E"                    # CrossType 'N'
        "31303030" "20202020202020202020"  # ClOrdID "1000" (46656 in base 36) + 10 spaces
        "0003"                  # Appendage Length 3
        "02"                    # TagValue Length 2 (tag + 1-byte value)
        "19"                    # OptionTag 25 SharesLocated
        "59"                    # OptionValue 'Y'
    ),
    dict(type=b"O", user_ref=2, side=b"T", qty=999_999, symbol=b"SPY     ", price=4123456,
         tif=b"0", display=b"Y", capacity=b"A", iso=b"N", cross_type=b"N",
         cl_ord_id=b"1000          ", appendage_length=3, appendage=b"\x02\x19Y"),
    "EnterOrder")

O_ENTER_SPY_SELL = Vector(
    "ouch_O_enter_spy_sell", f"{OUCH} §2.1 Enter Order", (
        "4F"                    # Type 'O'
        "00000001"              # UserRefNum 1
        "53"                    # Side 'S' sell
        "0000012C"              # Quantity 300
        "5350592020202020"      # Symbol "SPY     "
        "00000000003D0900"      # Price 400.0000 = 4000000
        "30"                    # Time In Force '0' Day
        "59"                    # Display 'Y'
        "41"                    # Capacity 'A'
        "4E"                    # ISO 'N'
        "4E"                    # CrossType 'N'
        "38" "20202020202020202020202020"  # ClOrdID "8" + 13 spaces
        "0000"                  # Appendage Length 0
    ),
    dict(type=b"O", user_ref=1, side=b"S", qty=300, symbol=b"SPY     ", price=4000000,
         tif=b"0", display=b"Y", capacity=b"A", iso=b"N", cross_type=b"N",
         cl_ord_id=b"8             ", appendage_length=0, appendage=b""),
    "EnterOrder")

U_REPLACE_AAPL = Vector(
    "ouch_U_replace_order_aapl", f"{OUCH} §2.2 Replace Order Request", (
        "55"                    # Type 'U'
        "00000001"              # OrigUserRefNum 1
        "00000002"              # UserRefNum 2 (the replacement's)
        "000000C8"              # Quantity 200 (total, executions included)
        "0000000000170A70"      # Price 151.0000 = 1510000
        "30"                    # Time In Force '0' Day
        "59"                    # Display 'Y'
        "4E"                    # InterMarket Sweep Eligibility 'N'
        "394958" "2020202020202020202020"  # ClOrdID "9IX" + 11 spaces
        "0000"                  # Appendage Length 0
    ),
    dict(type=b"U", orig_user_ref=1, user_ref=2, qty=200, price=1510000, tif=b"0",
         display=b"Y", iso=b"N", cl_ord_id=b"9IX           ", appendage_length=0,
         appendage=b""),
    "ReplaceOrder")

U_REPLACE_SPY_SHORT = Vector(
    "ouch_U_replace_order_spy_short",
    f"{OUCH} §2.2 Replace Order Request; Appendix A note 2 (SharesLocated on every Replace)", (
        "55"                    # Type 'U'
        "00000002"              # OrigUserRefNum 2
        "00000003"              # UserRefNum 3
        "000F423F"              # Quantity 999,999
        "00000000003EEB08"      # Price 412.3400 = 4123400
        "30"                    # Time In Force '0' Day
        "59"                    # Display 'Y'
        "4E"                    # ISO 'N'
        "31303030" "20202020202020202020"  # ClOrdID "1000" + 10 spaces
        "0003"                  # Appendage Length 3
        "02" "19" "59"          # TagValue: length 2, tag 25 SharesLocated, 'Y'
    ),
    dict(type=b"U", orig_user_ref=2, user_ref=3, qty=999_999, price=4123400, tif=b"0",
         display=b"Y", iso=b"N", cl_ord_id=b"1000          ", appendage_length=3,
         appendage=b"\x02\x19Y"),
    "ReplaceOrder")

X_CANCEL_REF2 = Vector(
    "ouch_X_cancel_order", f"{OUCH} §2.3 Cancel Order Request", (
        "58"                    # Type 'X'
        # UserRefNum 2: the order's live (replacement) UserRefNum.  §2.3 says "as
        # originally transmitted in an Enter Order Message", §2.2's OrigUserRefNum
        # "...or last Replace Order Message"; after a Replace the live one is used
        # (docs/research-ouch-ufo.md §1.8 notes the ambiguity)
        "00000002"              # UserRefNum 2
        "00000000"              # Quantity 0: cancel all open shares
        # Appendage Length and Optional Appendage: optional on this message, absent
    ),
    dict(type=b"X", user_ref=2, qty=0, appendage_length=None, appendage=b""),
    "CancelOrder")

# --- outbound (venue -> appliance) ----------------------------------------

S_SYSTEM_EVENT = Vector(
    "ouch_S_system_event_start_of_day", f"{OUCH} §3.1 System Event", (
        "53"                    # Type 'S'
        "00001F1AD635BD15"      # Timestamp 09:30:00.123456789
        "53"                    # Event Code 'S' Start Of Day
    ),
    dict(type=b"S", timestamp=OUCH_TS, event_code=b"S"),
    "SystemEvent")

A_ACCEPTED_AAPL = Vector(
    "ouch_A_accepted_aapl", f"{OUCH} §3.2 Order Accepted", (
        "41"                    # Type 'A'
        "00001F1AD635BD15"      # Timestamp
        "00000001"              # UserRefNum 1
        "42"                    # Side 'B'
        "00000064"              # Quantity 100
        "4141504C20202020"      # Symbol "AAPL    "
        "000000000016ED24"      # Price 150.2500
        "30"                    # Time In Force '0'
        "59"                    # Display 'Y'
        "00000000075BCD15"      # Order Reference Number 123456789
        "41"                    # Capacity 'A'
        "4E"                    # ISO 'N'
        "4E"                    # CrossType 'N'
        "4C"                    # Order State 'L' live
        "394958" "2020202020202020202020"  # ClOrdID "9IX" + 11 spaces
        "0000"                  # Appendage Length 0
    ),
    dict(type=b"A", timestamp=OUCH_TS, user_ref=1, side=b"B", qty=100, symbol=b"AAPL    ",
         price=1502500, tif=b"0", display=b"Y", order_ref=123456789, capacity=b"A",
         iso=b"N", cross_type=b"N", state=b"L", cl_ord_id=b"9IX           ",
         appendage_length=0, appendage=b""),
    "Accepted")

A_ACCEPTED_MSFT = Vector(
    "ouch_A_accepted_msft_market", f"{OUCH} §3.2 Order Accepted", (
        "41"                    # Type 'A'
        "00001F1AD635BD15"      # Timestamp
        "00000001"              # UserRefNum 1
        "53"                    # Side 'S'
        "000001F4"              # Quantity 500
        "4D53465420202020"      # Symbol "MSFT    "
        "000000007FFFFFFF"      # Price: market (§1.2)
        "33"                    # Time In Force '3' IOC
        "59"                    # Display 'Y'
        "00000000075BCD16"      # Order Reference Number 123456790
        "41"                    # Capacity 'A'
        "4E"                    # ISO 'N'
        "4E"                    # CrossType 'N'
        "4C"                    # Order State 'L'
        "5A5A" "202020202020202020202020"  # ClOrdID "ZZ" + 12 spaces
        "0000"                  # Appendage Length 0
    ),
    dict(type=b"A", timestamp=OUCH_TS, user_ref=1, side=b"S", qty=500, symbol=b"MSFT    ",
         price=0x7FFFFFFF, tif=b"3", display=b"Y", order_ref=123456790, capacity=b"A",
         iso=b"N", cross_type=b"N", state=b"L", cl_ord_id=b"ZZ            ",
         appendage_length=0, appendage=b""),
    "Accepted")

A_ACCEPTED_SPY_SHORT = Vector(
    "ouch_A_accepted_spy_short_appendage",
    f"{OUCH} §3.2 Order Accepted (option SharesLocated, Appendix A tag 25)", (
        "41"                    # Type 'A'
        "00001F1AD635BD15"      # Timestamp
        "00000002"              # UserRefNum 2
        "54"                    # Side 'T'
        "000F423F"              # Quantity 999,999
        "5350592020202020"      # Symbol "SPY     "
        "00000000003EEB40"      # Price 412.3456
        "30"                    # Time In Force '0'
        "59"                    # Display 'Y'
        "00000000075BCD17"      # Order Reference Number 123456791
        "41"                    # Capacity 'A'
        "4E"                    # ISO 'N'
        "4E"                    # CrossType 'N'
        "4C"                    # Order State 'L'
        "31303030" "20202020202020202020"  # ClOrdID "1000" + 10 spaces
        "0003"                  # Appendage Length 3
        "02" "19" "59"          # TagValue: length 2, tag 25 SharesLocated, 'Y'
    ),
    dict(type=b"A", timestamp=OUCH_TS, user_ref=2, side=b"T", qty=999_999,
         symbol=b"SPY     ", price=4123456, tif=b"0", display=b"Y", order_ref=123456791,
         capacity=b"A", iso=b"N", cross_type=b"N", state=b"L", cl_ord_id=b"1000          ",
         appendage_length=3, appendage=b"\x02\x19Y"),
    "Accepted")

U_REPLACED_AAPL = Vector(
    "ouch_U_replaced_aapl", f"{OUCH} §3.3 Order Replaced", (
        "55"                    # Type 'U'
        "00001F1AD635BD15"      # Timestamp
        "00000001"              # OrigUserRefNum 1
        "00000002"              # UserRefNum 2
        "42"                    # Side 'B'
        "000000A0"              # Quantity 160: shares outstanding (200 - 40 executed)
        "4141504C20202020"      # Symbol "AAPL    "
        "0000000000170A70"      # Price 151.0000
        "30"                    # Time In Force '0'
        "59"                    # Display 'Y'
        "00000000075BCD18"      # Order Reference Number 123456792
        "41"                    # Capacity 'A'
        "4E"                    # ISO 'N'
        "4E"                    # CrossType 'N'
        "4C"                    # Order State 'L'
        "394958" "2020202020202020202020"  # ClOrdID "9IX" + 11 spaces
        "0000"                  # Appendage Length 0
    ),
    dict(type=b"U", timestamp=OUCH_TS, orig_user_ref=1, user_ref=2, side=b"B", qty=160,
         symbol=b"AAPL    ", price=1510000, tif=b"0", display=b"Y", order_ref=123456792,
         capacity=b"A", iso=b"N", cross_type=b"N", state=b"L", cl_ord_id=b"9IX           ",
         appendage_length=0, appendage=b""),
    "Replaced")

C_CANCELED_USER = Vector(
    "ouch_C_canceled_user", f"{OUCH} §3.4 Order Canceled; Appendix B reason 'U'", (
        "43"                    # Type 'C'
        "00001F1AD635BD15"      # Timestamp
        "00000002"              # UserRefNum 2
        "000000A0"              # Quantity 160 decremented
        "55"                    # Reason 'U' user requested cancel
        # Appendage Length / Optional Appendage: absent (no UserRefIdx was sent)
    ),
    dict(type=b"C", timestamp=OUCH_TS, user_ref=2, qty=160, reason=b"U",
         appendage_length=None, appendage=b""),
    "Canceled")

C_CANCELED_IOC = Vector(
    "ouch_C_canceled_ioc", f"{OUCH} §3.4 Order Canceled; Appendix B reason 'I'", (
        "43"                    # Type 'C'
        "00001F1AD635BD15"      # Timestamp
        "00000001"              # UserRefNum 1
        "0000012C"              # Quantity 300 decremented
        "49"                    # Reason 'I' Immediate or Cancel
    ),
    dict(type=b"C", timestamp=OUCH_TS, user_ref=1, qty=300, reason=b"I",
         appendage_length=None, appendage=b""),
    "Canceled")

C_CANCELED_USERREFIDX = Vector(
    "ouch_C_canceled_with_userrefidx",
    f"{OUCH} §3.4 Order Canceled with its optional appendage; Appendix A tag 28 UserRefIdx", (
        "43"                    # Type 'C'
        "00001F1AD635BD15"      # Timestamp
        "00000002"              # UserRefNum 2
        "000000A0"              # Quantity 160 decremented
        "55"                    # Reason 'U'
        "0003"                  # Appendage Length 3
        "02" "1C" "05"          # TagValue: length 2, tag 28 UserRefIdx, 5
    ),
    dict(type=b"C", timestamp=OUCH_TS, user_ref=2, qty=160, reason=b"U",
         appendage_length=3, appendage=b"\x02\x1c\x05"),
    "Canceled")

E_EXECUTED_AAPL = Vector(
    "ouch_E_executed_aapl", f"{OUCH} §3.6 Order Executed", (
        "45"                    # Type 'E'
        "00001F1AD635BD15"      # Timestamp
        "00000001"              # UserRefNum 1
        "00000028"              # Quantity 40 executed
        "000000000016ED24"      # Price 150.2500
        "41"                    # Liquidity Flag 'A' added (Appendix D)
        "0000000000000007"      # Match Number 7
        "0000"                  # Appendage Length 0
    ),
    dict(type=b"E", timestamp=OUCH_TS, user_ref=1, qty=40, price=1502500, liquidity=b"A",
         match=7, appendage_length=0, appendage=b""),
    "Executed")

E_EXECUTED_MSFT = Vector(
    "ouch_E_executed_msft", f"{OUCH} §3.6 Order Executed", (
        "45"                    # Type 'E'
        "00001F1AD635BD15"      # Timestamp
        "00000001"              # UserRefNum 1
        "000000C8"              # Quantity 200 executed
        "0000000000325F50"      # Price 330.1200 = 3301200
        "52"                    # Liquidity Flag 'R' removed (Appendix D)
        "0102030405060708"      # Match Number 0x0102030405060708
        "0000"                  # Appendage Length 0
    ),
    dict(type=b"E", timestamp=OUCH_TS, user_ref=1, qty=200, price=3301200, liquidity=b"R",
         match=0x0102030405060708, appendage_length=0, appendage=b""),
    "Executed")

J_REJECTED_SPY = Vector(
    "ouch_J_rejected_enter", f"{OUCH} §3.8 Rejected; Appendix C reason 0x0017", (
        "4A"                    # Type 'J'
        "00001F1AD635BD15"      # Timestamp
        "00000001"              # UserRefNum 1
        "0017"                  # Reason 0x0017 Invalid Symbol
        "38" "20202020202020202020202020"  # ClOrdID "8" + 13 spaces
        # Appendage Length / Optional Appendage: absent
    ),
    dict(type=b"J", timestamp=OUCH_TS, user_ref=1, reason=0x17, cl_ord_id=b"8             ",
         appendage_length=None, appendage=b""),
    "Rejected")

J_REJECTED_REPLACE = Vector(
    "ouch_J_rejected_replace", f"{OUCH} §3.8 Rejected; §2.2 case 3; Appendix C 0x0015", (
        "4A"                    # Type 'J'
        "00001F1AD635BD15"      # Timestamp
        "00000003"              # UserRefNum 3 (the replacement's, §2.2 case 3)
        "0015"                  # Reason 0x0015 Replace Not Allowed
        "31303030" "20202020202020202020"  # ClOrdID "1000" + 10 spaces
    ),
    dict(type=b"J", timestamp=OUCH_TS, user_ref=3, reason=0x15, cl_ord_id=b"1000          ",
         appendage_length=None, appendage=b""),
    "Rejected")

I_CANCEL_REJECT = Vector(
    "ouch_I_cancel_reject", f"{OUCH} §3.10 Cancel Reject", (
        "49"                    # Type 'I'
        "00001F1AD635BD15"      # Timestamp
        "00000002"              # UserRefNum 2
        # Appendage Length / Optional Appendage: absent
    ),
    dict(type=b"I", timestamp=OUCH_TS, user_ref=2, appendage_length=None, appendage=b""),
    "CancelReject")

OUCH_TO_VENUE_VECTORS = [O_ENTER_AAPL, O_ENTER_MSFT_MARKET, O_ENTER_SPY_SHORT, O_ENTER_SPY_SELL,
                         U_REPLACE_AAPL, U_REPLACE_SPY_SHORT, X_CANCEL_REF2]
OUCH_FROM_VENUE_VECTORS = [S_SYSTEM_EVENT, A_ACCEPTED_AAPL, A_ACCEPTED_MSFT,
                           A_ACCEPTED_SPY_SHORT, U_REPLACED_AAPL, C_CANCELED_USER,
                           C_CANCELED_IOC, C_CANCELED_USERREFIDX, E_EXECUTED_AAPL,
                           E_EXECUTED_MSFT, J_REJECTED_SPY, J_REJECTED_REPLACE,
                           I_CANCEL_REJECT]
OUCH_VECTORS = OUCH_TO_VENUE_VECTORS + OUCH_FROM_VENUE_VECTORS

# lengths from the tables: the offset of the last field + its length
OUCH_TABLE_LENGTHS = {
    "ouch_O_enter_aapl_buy": 47, "ouch_O_enter_msft_market_ioc": 47,
    "ouch_O_enter_spy_short_locate": 50, "ouch_O_enter_spy_sell": 47,
    "ouch_U_replace_order_aapl": 40, "ouch_U_replace_order_spy_short": 43,
    "ouch_X_cancel_order": 9, "ouch_S_system_event_start_of_day": 10,
    "ouch_A_accepted_aapl": 64, "ouch_A_accepted_msft_market": 64,
    "ouch_A_accepted_spy_short_appendage": 67, "ouch_U_replaced_aapl": 68,
    "ouch_C_canceled_user": 18, "ouch_C_canceled_ioc": 18,
    "ouch_C_canceled_with_userrefidx": 23, "ouch_E_executed_aapl": 36,
    "ouch_E_executed_msft": 36, "ouch_J_rejected_enter": 29,
    "ouch_J_rejected_replace": 29, "ouch_I_cancel_reject": 13,
}


# ==========================================================================
# 2. MoldUDP64 1.00 framing (big-endian): Session (10 alpha), Sequence
# Number (u64, of the first message), Message Count (u16), then Message
# Count blocks of u16 length + message.


@dataclass(frozen=True)
class Packet:
    name: str
    source: str
    hex: str
    session: bytes
    seq: int
    count: int
    messages: tuple[Vector, ...]
    from_venue: bool
    request: bool = False  # a request packet (to a request port): header only

    @property
    def data(self) -> bytes:
        return bytes.fromhex(self.hex)

    def __repr__(self) -> str:
        return self.name


def _packet(name: str, header_hex: str, blocks: list[tuple[str, Vector]], *, seq: int,
            count: int, from_venue: bool, note: str = "", session: bytes = b"NSDQ01    ",
            request: bool = False) -> Packet:
    """``header_hex`` and each block's length hex are written by hand; the
    message is the OUCH vector's hex."""
    text = header_hex + "".join(length + v.hex for length, v in blocks)
    src = f"{MOLD}{note}; messages: " + ", ".join(v.source for _, v in blocks) \
        if blocks else MOLD + note
    return Packet(name, src, text, session, seq, count,
                  tuple(v for _, v in blocks), from_venue, request)


NSDQ01 = "4E53445130312020" "2020"  # Session "NSDQ01" + 4 spaces (10 alpha)

# appliance -> venue: one message per packet (docs/venue-protocol.md, Sending)
P_OUT_ENTER_AAPL = _packet("mold_out_enter_aapl", (
    NSDQ01 +
    "0000000000000001"          # Sequence Number 1
    "0001"                      # Message Count 1
), [("002F", O_ENTER_AAPL)],    # block length 47
    seq=1, count=1, from_venue=False)
P_OUT_REPLACE_AAPL = _packet("mold_out_replace_aapl", (
    NSDQ01 +
    "0000000000000002"          # Sequence Number 2
    "0001"                      # Message Count 1
), [("0028", U_REPLACE_AAPL)],  # block length 40
    seq=2, count=1, from_venue=False)
P_OUT_CANCEL_SEQ3 = _packet("mold_out_cancel_seq3", (
    NSDQ01 +
    "0000000000000003"          # Sequence Number 3
    "0001"                      # Message Count 1
), [("0009", X_CANCEL_REF2)],   # block length 9
    seq=3, count=1, from_venue=False)
P_OUT_CANCEL_SEQ4 = _packet("mold_out_cancel_seq4", (
    NSDQ01 +
    "0000000000000004"          # Sequence Number 4
    "0001"                      # Message Count 1
), [("0009", X_CANCEL_REF2)],   # block length 9
    seq=4, count=1, from_venue=False)
P_OUT_ENTER_SPY_SELL = _packet("mold_out_enter_spy_sell", (
    NSDQ01 +
    "0000000000000001"          # Sequence Number 1
    "0001"                      # Message Count 1
), [("002F", O_ENTER_SPY_SELL)],  # block length 47
    seq=1, count=1, from_venue=False)
P_OUT_ENTER_MSFT = _packet("mold_out_enter_msft_market", (
    NSDQ01 +
    "0000000000000001"          # Sequence Number 1
    "0001"                      # Message Count 1
), [("002F", O_ENTER_MSFT_MARKET)],  # block length 47
    seq=1, count=1, from_venue=False)
P_OUT_ENTER_SPY_SHORT = _packet("mold_out_enter_spy_short", (
    NSDQ01 +
    "0000000000000002"          # Sequence Number 2
    "0001"                      # Message Count 1
), [("0032", O_ENTER_SPY_SHORT)],  # block length 50
    seq=2, count=1, from_venue=False)
P_OUT_REPLACE_SPY = _packet("mold_out_replace_spy_short", (
    NSDQ01 +
    "0000000000000003"          # Sequence Number 3
    "0001"                      # Message Count 1
), [("002B", U_REPLACE_SPY_SHORT)],  # block length 43
    seq=3, count=1, from_venue=False)

# venue -> appliance
P_IN_ACCEPTED_AAPL = _packet("mold_in_accepted_aapl", (
    NSDQ01 +
    "0000000000000001"          # Sequence Number 1
    "0001"                      # Message Count 1
), [("0040", A_ACCEPTED_AAPL)],  # block length 64
    seq=1, count=1, from_venue=True)
P_IN_EXECUTED_AAPL = _packet("mold_in_executed_aapl", (
    NSDQ01 +
    "0000000000000002"          # Sequence Number 2
    "0001"                      # Message Count 1
), [("0024", E_EXECUTED_AAPL)],  # block length 36
    seq=2, count=1, from_venue=True)
P_IN_REPLACED_AAPL = _packet("mold_in_replaced_aapl", (
    NSDQ01 +
    "0000000000000003"          # Sequence Number 3
    "0001"                      # Message Count 1
), [("0044", U_REPLACED_AAPL)],  # block length 68
    seq=3, count=1, from_venue=True)
P_IN_CANCEL_REJECT = _packet("mold_in_cancel_reject", (
    NSDQ01 +
    "0000000000000004"          # Sequence Number 4
    "0001"                      # Message Count 1
), [("000D", I_CANCEL_REJECT)],  # block length 13
    seq=4, count=1, from_venue=True)
P_IN_SYSTEM_EVENT = _packet("mold_in_system_event", (
    NSDQ01 +
    "0000000000000005"          # Sequence Number 5
    "0001"                      # Message Count 1
), [("000A", S_SYSTEM_EVENT)],  # block length 10
    seq=5, count=1, from_venue=True)
P_IN_CANCELED_USER = _packet("mold_in_canceled_user", (
    NSDQ01 +
    "0000000000000006"          # Sequence Number 6
    "0001"                      # Message Count 1
), [("0012", C_CANCELED_USER)],  # block length 18
    seq=6, count=1, from_venue=True)
P_IN_HEARTBEAT = _packet("mold_heartbeat", (
    NSDQ01 +
    "0000000000000007"          # Sequence Number 7: the next one the venue will use
    "0000"                      # Message Count 0: heartbeat
), [], seq=7, count=0, from_venue=True, note=" heartbeat (count 0)")
P_IN_END_OF_SESSION = _packet("mold_end_of_session", (
    NSDQ01 +
    "0000000000000007"          # Sequence Number 7
    "FFFF"                      # Message Count 0xFFFF: end of session
), [], seq=7, count=0xFFFF, from_venue=True, note=" end of session (count 0xFFFF)")
P_IN_REJECTED_SPY = _packet("mold_in_rejected_enter", (
    NSDQ01 +
    "0000000000000001"          # Sequence Number 1
    "0001"                      # Message Count 1
), [("001D", J_REJECTED_SPY)],  # block length 29
    seq=1, count=1, from_venue=True)
P_IN_MSFT_THREE_BLOCKS = _packet("mold_in_three_blocks", (
    NSDQ01 +
    "0000000000000001"          # Sequence Number 1 (of the first block; then 2, 3)
    "0003"                      # Message Count 3
), [("0040", A_ACCEPTED_MSFT),  # block 1: length 64
    ("0024", E_EXECUTED_MSFT),  # block 2: length 36
    ("0012", C_CANCELED_IOC)],  # block 3: length 18
    seq=1, count=3, from_venue=True)
P_IN_ACCEPTED_SPY = _packet("mold_in_accepted_spy_short", (
    NSDQ01 +
    "0000000000000004"          # Sequence Number 4
    "0001"                      # Message Count 1
), [("0043", A_ACCEPTED_SPY_SHORT)],  # block length 67
    seq=4, count=1, from_venue=True)
P_IN_REJECTED_REPLACE = _packet("mold_in_rejected_replace", (
    NSDQ01 +
    "0000000000000005"          # Sequence Number 5
    "0001"                      # Message Count 1
), [("001D", J_REJECTED_REPLACE)],  # block length 29
    seq=5, count=1, from_venue=True)

# the session layer (docs/venue-protocol.md, "Request packets", "Heartbeats
# and timeouts"): heartbeats from the appliance, request packets both ways
# (MoldUDP64 1.00's request packet: Session, Sequence Number, Requested
# Message Count; count 0 is a hello)
BX01 = "4258303120202020" "2020"    # Session "BX01" + 6 spaces (10 alpha)
REQ = " request packet (MoldUDP64 1.00 re-request)"
P_OUT_HEARTBEAT_1 = _packet("mold_out_heartbeat_seq1", (
    NSDQ01 +
    "0000000000000001"          # Sequence Number 1: the appliance's next (none sent yet)
    "0000"                      # Message Count 0: heartbeat
), [], seq=1, count=0, from_venue=False, note=" heartbeat (count 0)")
P_OUT_HEARTBEAT_BX_1 = _packet("mold_out_heartbeat_bx01_seq1", (
    BX01 +
    "0000000000000001"          # Sequence Number 1
    "0000"                      # Message Count 0: heartbeat
), [], seq=1, count=0, from_venue=False, note=" heartbeat (count 0)", session=b"BX01      ")
P_OUT_HEARTBEAT_2 = _packet("mold_out_heartbeat_seq2", (
    NSDQ01 +
    "0000000000000002"          # Sequence Number 2: the appliance's next (1 was sent)
    "0000"                      # Message Count 0: heartbeat
), [], seq=2, count=0, from_venue=False, note=" heartbeat (count 0)")
P_OUT_HELLO_1 = _packet("mold_out_hello", (
    NSDQ01 +
    "0000000000000001"          # Sequence Number 1: the next the appliance expects
    "0000"                      # Requested Message Count 0: a hello
), [], seq=1, count=0, from_venue=False, note=REQ + ", hello", request=True)
P_OUT_HELLO_BX_1 = _packet("mold_out_hello_bx01", (
    BX01 +
    "0000000000000001"          # Sequence Number 1
    "0000"                      # Requested Message Count 0: a hello
), [], seq=1, count=0, from_venue=False, note=REQ + ", hello", session=b"BX01      ",
    request=True)
P_OUT_REQUEST_1_2 = _packet("mold_out_request_1_2", (
    NSDQ01 +
    "0000000000000001"          # Sequence Number 1: the first missing (the next expected)
    "0002"                      # Requested Message Count 2: up to the end of the packet seen
), [], seq=1, count=2, from_venue=False, note=REQ, request=True)
P_IN_REQUEST_1_5 = _packet("mold_in_request_1_5", (
    NSDQ01 +
    "0000000000000001"          # Sequence Number 1
    "0005"                      # Requested Message Count 5
), [], seq=1, count=5, from_venue=True, note=REQ, request=True)
P_IN_REQUEST_2_1 = _packet("mold_in_request_2_1", (
    NSDQ01 +
    "0000000000000002"          # Sequence Number 2: not sent yet
    "0001"                      # Requested Message Count 1
), [], seq=2, count=1, from_venue=True, note=REQ, request=True)
P_IN_REQUEST_0_1 = _packet("mold_in_request_0_1", (
    NSDQ01 +
    "0000000000000000"          # Sequence Number 0: below the oldest held (1)
    "0001"                      # Requested Message Count 1
), [], seq=0, count=1, from_venue=True, note=REQ, request=True)
P_IN_HELLO_2 = _packet("mold_in_hello", (
    NSDQ01 +
    "0000000000000002"          # Sequence Number 2: the next the venue expects
    "0000"                      # Requested Message Count 0: a hello
), [], seq=2, count=0, from_venue=True, note=REQ + ", hello", request=True)

FRAMING_VECTORS = [
    P_OUT_HEARTBEAT_1, P_OUT_HEARTBEAT_BX_1, P_OUT_HEARTBEAT_2, P_OUT_HELLO_1,
    P_OUT_HELLO_BX_1, P_OUT_REQUEST_1_2, P_IN_REQUEST_1_5, P_IN_REQUEST_2_1, P_IN_REQUEST_0_1,
    P_IN_HELLO_2,
    P_OUT_ENTER_AAPL, P_OUT_REPLACE_AAPL, P_OUT_CANCEL_SEQ3, P_OUT_CANCEL_SEQ4,
    P_OUT_ENTER_SPY_SELL, P_OUT_ENTER_MSFT, P_OUT_ENTER_SPY_SHORT, P_OUT_REPLACE_SPY,
    P_IN_ACCEPTED_AAPL, P_IN_EXECUTED_AAPL, P_IN_REPLACED_AAPL, P_IN_CANCEL_REJECT,
    P_IN_SYSTEM_EVENT, P_IN_CANCELED_USER, P_IN_HEARTBEAT, P_IN_END_OF_SESSION,
    P_IN_REJECTED_SPY, P_IN_MSFT_THREE_BLOCKS, P_IN_ACCEPTED_SPY, P_IN_REJECTED_REPLACE,
]


# ==========================================================================
# 3. Strategy protocol version 1 (little-endian). Header (docs/protocol.md
# "Header"): version u8, type u8, length u16, session_id u32, seq u64,
# timestamp_ns u64.


def _sp(name: str, section: str, hex_: str, kind: str, **fields) -> Vector:
    return Vector(name, f"{SP} §{section}", hex_, fields, kind)


SP_LOGIN = _sp("sp_login", "Login (0x01, 32 bytes)", (
    "01"                        # version 1
    "01"                        # type 0x01 Login
    "2000"                      # length 32
    "01000000"                  # session_id 1
    "0100000000000000"          # seq 1: the strategy's next application seq (not consumed)
    "0000359b5439bc16"          # timestamp_ns T0 - 4096
    "0100000000000000"          # next_expected_seq 1
), "Login", version=1, length=32, session_id=1, seq=1, timestamp_ns=T0 - 0x1000,
    next_expected_seq=1)

SP_LOGIN_DISABLED = _sp("sp_login_session3", "Login (0x01, 32 bytes)", (
    "01"                        # version 1
    "01"                        # type 0x01 Login
    "2000"                      # length 32
    "03000000"                  # session_id 3 (disabled in tests/wire.py's config)
    "0100000000000000"          # seq 1
    "0000359b5439bc16"          # timestamp_ns T0 - 4096
    "0100000000000000"          # next_expected_seq 1
), "Login", version=1, length=32, session_id=3, seq=1, timestamp_ns=T0 - 0x1000,
    next_expected_seq=1)

SP_LOGOUT = _sp("sp_logout", "Logout (0x02, 24 bytes)", (
    "01"                        # version 1
    "02"                        # type 0x02 Logout
    "1800"                      # length 24
    "01000000"                  # session_id 1
    "0500000000000000"          # seq 5: next application seq (4 were sent)
    "00e0359b5439bc16"          # timestamp_ns T0 + 13 * 4096
), "Logout", version=1, length=24, session_id=1, seq=5, timestamp_ns=now(13))

SP_HEARTBEAT = _sp("sp_heartbeat", "Heartbeat (0x03, 24 bytes)", (
    "01"                        # version 1
    "03"                        # type 0x03 Heartbeat
    "1800"                      # length 24
    "01000000"                  # session_id 1
    "0500000000000000"          # seq 5: next application seq
    "00c0359b5439bc16"          # timestamp_ns T0 + 11 * 4096
), "Heartbeat", version=1, length=24, session_id=1, seq=5, timestamp_ns=now(11))

SP_NEW_ORDER_AAPL = _sp("sp_new_order_aapl", "NewOrder (0x10, 64 bytes); Example", (
    # the bytes of docs/protocol.md's Example, field by field
    "01"                        # version 1
    "10"                        # type 0x10 NewOrder
    "4000"                      # length 64
    "01000000"                  # session_id 1
    "0100000000000000"          # seq 1
    "0010359b5439bc16"          # timestamp_ns 1638247400000000000
    "3930000000000000"          # cl_ord_id 12345
    "01000000"                  # account 1
    "01"                        # side 1 buy
    "01"                        # ord_type 1 limit
    "01"                        # tif 1 day
    "00"                        # flags none
    "4141504c20202020"          # symbol "AAPL    "
    "404e8f7f03000000"          # price 15025000000 (150.25, 8 implied decimals)
    "64000000"                  # qty 100
    "0000"                      # venue 0: default venue
    "0000"                      # reserved
), "NewOrder", version=1, length=64, session_id=1, seq=1, timestamp_ns=T0,
    cl_ord_id=12345, account=1, side=1, ord_type=1, tif=1, flags=0, symbol=b"AAPL    ",
    price=15_025_000_000, qty=100, venue=0, reserved=0)

SP_NEW_ORDER_IBM = _sp("sp_new_order_unknown_symbol", "NewOrder (0x10, 64 bytes)", (
    "01"                        # version 1
    "10"                        # type NewOrder
    "4000"                      # length 64
    "01000000"                  # session_id 1
    "0100000000000000"          # seq 1
    "0010359b5439bc16"          # timestamp_ns T0
    "0700000000000000"          # cl_ord_id 7
    "01000000"                  # account 1
    "01"                        # side buy
    "01"                        # ord_type limit
    "01"                        # tif day
    "00"                        # flags none
    "49424d2020202020"          # symbol "IBM     " (not configured)
    "404e8f7f03000000"          # price 15025000000
    "64000000"                  # qty 100
    "0000"                      # venue 0
    "0000"                      # reserved
), "NewOrder", version=1, length=64, session_id=1, seq=1, timestamp_ns=T0, cl_ord_id=7,
    account=1, side=1, ord_type=1, tif=1, flags=0, symbol=b"IBM     ",
    price=15_025_000_000, qty=100, venue=0, reserved=0)

SP_NEW_ORDER_SPY_SELL = _sp("sp_new_order_spy_sell", "NewOrder (0x10, 64 bytes)", (
    "01"                        # version 1
    "10"                        # type NewOrder
    "4000"                      # length 64
    "01000000"                  # session_id 1
    "0200000000000000"          # seq 2
    "0010359b5439bc16"          # timestamp_ns T0
    "0800000000000000"          # cl_ord_id 8
    "01000000"                  # account 1
    "02"                        # side 2 sell
    "01"                        # ord_type limit
    "01"                        # tif day
    "00"                        # flags none
    "5350592020202020"          # symbol "SPY     "
    "00902f5009000000"          # price 40000000000 (400.00)
    "2c010000"                  # qty 300
    "0000"                      # venue 0
    "0000"                      # reserved
), "NewOrder", version=1, length=64, session_id=1, seq=2, timestamp_ns=T0, cl_ord_id=8,
    account=1, side=2, ord_type=1, tif=1, flags=0, symbol=b"SPY     ",
    price=40_000_000_000, qty=300, venue=0, reserved=0)

SP_NEW_ORDER_MSFT_MARKET = _sp("sp_new_order_msft_market_ioc", "NewOrder (0x10, 64 bytes)", (
    "01"                        # version 1
    "10"                        # type NewOrder
    "4000"                      # length 64
    "01000000"                  # session_id 1
    "0100000000000000"          # seq 1
    "0010359b5439bc16"          # timestamp_ns T0
    "0f05000000000000"          # cl_ord_id 1295 ("ZZ" in base 36)
    "02000000"                  # account 2
    "02"                        # side 2 sell
    "02"                        # ord_type 2 market
    "02"                        # tif 2 IOC (a market order must be IOC)
    "00"                        # flags none
    "4d53465420202020"          # symbol "MSFT    "
    "0000000000000000"          # price 0 (market)
    "f4010000"                  # qty 500
    "0100"                      # venue 1 (explicit)
    "0000"                      # reserved
), "NewOrder", version=1, length=64, session_id=1, seq=1, timestamp_ns=T0, cl_ord_id=1295,
    account=2, side=2, ord_type=2, tif=2, flags=0, symbol=b"MSFT    ", price=0, qty=500,
    venue=1, reserved=0)

SP_NEW_ORDER_SPY_SHORT = _sp("sp_new_order_spy_short_locate", "NewOrder (0x10, 64 bytes)", (
    "01"                        # version 1
    "10"                        # type NewOrder
    "4000"                      # length 64
    "01000000"                  # session_id 1
    "0200000000000000"          # seq 2
    "0010359b5439bc16"          # timestamp_ns T0
    "40b6000000000000"          # cl_ord_id 46656 ("1000" in base 36)
    "02000000"                  # account 2
    "03"                        # side 3 sell short
    "01"                        # ord_type limit
    "01"                        # tif day
    "03"                        # flags PRIORITY (0x01) | LOCATE (0x02)
    "5350592020202020"          # symbol "SPY     "
    "0074c59909000000"          # price 41234560000 (412.3456)
    "3f420f00"                  # qty 999,999
    "0000"                      # venue 0
    "0000"                      # reserved
), "NewOrder", version=1, length=64, session_id=1, seq=2, timestamp_ns=T0,
    cl_ord_id=46656, account=2, side=3, ord_type=1, tif=1, flags=3, symbol=b"SPY     ",
    price=41_234_560_000, qty=999_999, venue=0, reserved=0)

SP_MODIFY_AAPL = _sp("sp_modify_aapl", "Modify (0x11, 48 bytes)", (
    "01"                        # version 1
    "11"                        # type 0x11 Modify
    "3000"                      # length 48
    "01000000"                  # session_id 1
    "0200000000000000"          # seq 2
    "0010359b5439bc16"          # timestamp_ns T0
    "3930000000000000"          # cl_ord_id 12345
    "00b7078403000000"          # new_price 15100000000 (151.00)
    "c8000000"                  # new_qty 200 (total, executions included)
    "00000000"                  # reserved
), "Modify", version=1, length=48, session_id=1, seq=2, timestamp_ns=T0, cl_ord_id=12345,
    new_price=15_100_000_000, new_qty=200, reserved=0)

SP_MODIFY_SPY = _sp("sp_modify_spy_short", "Modify (0x11, 48 bytes)", (
    "01"                        # version 1
    "11"                        # type Modify
    "3000"                      # length 48
    "01000000"                  # session_id 1
    "0300000000000000"          # seq 3
    "0010359b5439bc16"          # timestamp_ns T0
    "40b6000000000000"          # cl_ord_id 46656
    "80e8bc9909000000"          # new_price 41234000000 (412.34)
    "3f420f00"                  # new_qty 999,999
    "00000000"                  # reserved
), "Modify", version=1, length=48, session_id=1, seq=3, timestamp_ns=T0, cl_ord_id=46656,
    new_price=41_234_000_000, new_qty=999_999, reserved=0)

SP_CANCEL_AAPL = _sp("sp_cancel_aapl", "Cancel (0x12, 32 bytes)", (
    "01"                        # version 1
    "12"                        # type 0x12 Cancel
    "2000"                      # length 32
    "01000000"                  # session_id 1
    "0300000000000000"          # seq 3
    "0010359b5439bc16"          # timestamp_ns T0
    "3930000000000000"          # cl_ord_id 12345
), "Cancel", version=1, length=32, session_id=1, seq=3, timestamp_ns=T0, cl_ord_id=12345)

SP_MASS_CANCEL = _sp("sp_mass_cancel", "MassCancel (0x13, 32 bytes)", (
    "01"                        # version 1
    "13"                        # type 0x13 MassCancel
    "2000"                      # length 32
    "01000000"                  # session_id 1
    "0400000000000000"          # seq 4
    "0010359b5439bc16"          # timestamp_ns T0
    "01000000"                  # account 1
    "00000000"                  # reserved
), "MassCancel", version=1, length=32, session_id=1, seq=4, timestamp_ns=T0, account=1,
    reserved=0)

# not a message of the protocol: a sequenced message of an unknown type,
# which must draw a SessionReject (docs/protocol.md, Sessions and sequencing)
SP_UNKNOWN_TYPE = Vector(
    "sp_unknown_type_0x14", f"{SP} §Sessions and sequencing (unknown type)", (
        "01"                    # version 1
        "14"                    # type 0x14: not defined
        "1800"                  # length 24
        "01000000"              # session_id 1
        "0300000000000000"      # seq 3
        "0010359b5439bc16"      # timestamp_ns T0
    ))

SP_LOGIN_ACCEPTED = _sp("sp_login_accepted", "LoginAccepted (0x81, 32 bytes)", (
    "01"                        # version 1
    "81"                        # type 0x81 LoginAccepted
    "2000"                      # length 32
    "01000000"                  # session_id 1
    "0100000000000000"          # seq 1: the session's next outbound seq (not consumed)
    "0020359b5439bc16"          # timestamp_ns now_ns = T0 + 1 * 4096
    "0100000000000000"          # next_expected_seq 1
), "LoginAccepted", version=1, length=32, session_id=1, seq=1, timestamp_ns=now(1),
    next_expected_seq=1)

SP_LOGIN_REJECTED = _sp("sp_login_rejected_disabled", "LoginRejected (0x82, 32 bytes)", (
    "01"                        # version 1
    "82"                        # type 0x82 LoginRejected
    "2000"                      # length 32
    "03000000"                  # session_id 3
    "0100000000000000"          # seq 1: the session's next outbound seq
    "0070359b5439bc16"          # timestamp_ns T0 + 6 * 4096
    "01"                        # reason 1 DISABLED
    "00000000000000"            # reserved (7)
), "LoginRejected", version=1, length=32, session_id=3, seq=1, timestamp_ns=now(6),
    reason=1, reserved=b"\0" * 7)

SP_ACCEPTED_AAPL = _sp("sp_accepted_aapl", "Accepted (0x90, 48 bytes)", (
    "01"                        # version 1
    "90"                        # type 0x90 Accepted
    "3000"                      # length 48
    "01000000"                  # session_id 1
    "0100000000000000"          # seq 1
    "0040359b5439bc16"          # timestamp_ns T0 + 3 * 4096
    "3930000000000000"          # cl_ord_id 12345
    "404e8f7f03000000"          # price 15025000000
    "64000000"                  # qty 100
    "0100"                      # venue 1
    "0000"                      # reserved
), "Accepted", version=1, length=48, session_id=1, seq=1, timestamp_ns=now(3),
    cl_ord_id=12345, price=15_025_000_000, qty=100, venue=1, reserved=0)

SP_FILL_AAPL = _sp("sp_fill_aapl", "Fill (0x94, 64 bytes)", (
    "01"                        # version 1
    "94"                        # type 0x94 Fill
    "4000"                      # length 64
    "01000000"                  # session_id 1
    "0200000000000000"          # seq 2
    "0050359b5439bc16"          # timestamp_ns T0 + 4 * 4096
    "3930000000000000"          # cl_ord_id 12345
    "404e8f7f03000000"          # last_price 15025000000 (OUCH 1502500 x 10^4)
    "28000000"                  # last_qty 40
    "28000000"                  # cum_qty 40
    "3c000000"                  # leaves_qty 60
    "00000000"                  # reserved
    "0700000000000000"          # match_number 7
), "Fill", version=1, length=64, session_id=1, seq=2, timestamp_ns=now(4), cl_ord_id=12345,
    last_price=15_025_000_000, last_qty=40, cum_qty=40, leaves_qty=60, reserved=0,
    match_number=7)

SP_REPLACED_AAPL = _sp("sp_replaced_aapl", "Replaced (0x92, 48 bytes)", (
    "01"                        # version 1
    "92"                        # type 0x92 Replaced
    "3000"                      # length 48
    "01000000"                  # session_id 1
    "0300000000000000"          # seq 3
    "0070359b5439bc16"          # timestamp_ns T0 + 6 * 4096
    "3930000000000000"          # cl_ord_id 12345
    "00b7078403000000"          # price 15100000000
    "c8000000"                  # qty 200
    "a0000000"                  # leaves_qty 160
), "Replaced", version=1, length=48, session_id=1, seq=3, timestamp_ns=now(6),
    cl_ord_id=12345, price=15_100_000_000, qty=200, leaves_qty=160)

SP_REJECTED_CANCEL = _sp("sp_rejected_cancel_by_venue", "Rejected (0x91, 40 bytes)", (
    "01"                        # version 1
    "91"                        # type 0x91 Rejected
    "2800"                      # length 40
    "01000000"                  # session_id 1
    "0400000000000000"          # seq 4
    "0090359b5439bc16"          # timestamp_ns T0 + 8 * 4096
    "3930000000000000"          # cl_ord_id 12345
    "0e00"                      # reason 14 VENUE_REJECTED
    "12"                        # ref_type 0x12 Cancel
    "00"                        # venue_code 0
    "00000000"                  # reserved
), "Rejected", version=1, length=40, session_id=1, seq=4, timestamp_ns=now(8),
    cl_ord_id=12345, reason=14, ref_type=0x12, venue_code=0, reserved=0)

SP_CANCELED_USER = _sp("sp_canceled_user", "Canceled (0x93, 48 bytes)", (
    "01"                        # version 1
    "93"                        # type 0x93 Canceled
    "3000"                      # length 48
    "01000000"                  # session_id 1
    "0500000000000000"          # seq 5
    "00c0359b5439bc16"          # timestamp_ns T0 + 11 * 4096
    "3930000000000000"          # cl_ord_id 12345
    "a0000000"                  # canceled_qty 160
    "00000000"                  # leaves_qty 0
    "01"                        # reason 1 USER
    "00000000000000"            # reserved (7)
), "Canceled", version=1, length=48, session_id=1, seq=5, timestamp_ns=now(11),
    cl_ord_id=12345, canceled_qty=160, leaves_qty=0, reason=1, reserved=b"\0" * 7)

SP_REJECTED_IBM = _sp("sp_rejected_unknown_symbol", "Rejected (0x91, 40 bytes)", (
    "01"                        # version 1
    "91"                        # type Rejected
    "2800"                      # length 40
    "01000000"                  # session_id 1
    "0100000000000000"          # seq 1
    "0030359b5439bc16"          # timestamp_ns T0 + 2 * 4096
    "0700000000000000"          # cl_ord_id 7
    "0600"                      # reason 6 UNKNOWN_SYMBOL
    "10"                        # ref_type 0x10 NewOrder
    "00"                        # venue_code 0
    "00000000"                  # reserved
), "Rejected", version=1, length=40, session_id=1, seq=1, timestamp_ns=now(2), cl_ord_id=7,
    reason=6, ref_type=0x10, venue_code=0, reserved=0)

SP_REJECTED_VENUE_NEW = _sp("sp_rejected_by_venue_new", "Rejected (0x91, 40 bytes)", (
    "01"                        # version 1
    "91"                        # type Rejected
    "2800"                      # length 40
    "01000000"                  # session_id 1
    "0200000000000000"          # seq 2
    "0050359b5439bc16"          # timestamp_ns T0 + 4 * 4096
    "0800000000000000"          # cl_ord_id 8
    "0e00"                      # reason 14 VENUE_REJECTED
    "10"                        # ref_type 0x10 NewOrder
    "17"                        # venue_code 0x17 (low byte of OUCH reason 0x0017)
    "00000000"                  # reserved
), "Rejected", version=1, length=40, session_id=1, seq=2, timestamp_ns=now(4), cl_ord_id=8,
    reason=14, ref_type=0x10, venue_code=0x17, reserved=0)

SP_SESSION_REJECT = _sp("sp_session_reject_unknown_type", "SessionReject (0x9F, 40 bytes)", (
    "01"                        # version 1
    "9f"                        # type 0x9F SessionReject
    "2800"                      # length 40
    "01000000"                  # session_id 1
    "0300000000000000"          # seq 3
    "0060359b5439bc16"          # timestamp_ns T0 + 5 * 4096
    "0300000000000000"          # ref_seq 3
    "01"                        # reason 1 UNKNOWN_TYPE
    "14"                        # ref_type 0x14 as received
    "000000000000"              # reserved (6)
), "SessionReject", version=1, length=40, session_id=1, seq=3, timestamp_ns=now(5),
    ref_seq=3, reason=1, ref_type=0x14, reserved=b"\0" * 6)

SP_ACCEPTED_MSFT = _sp("sp_accepted_msft_market", "Accepted (0x90, 48 bytes)", (
    "01"                        # version 1
    "90"                        # type Accepted
    "3000"                      # length 48
    "01000000"                  # session_id 1
    "0100000000000000"          # seq 1
    "0050359b5439bc16"          # timestamp_ns T0 + 4 * 4096
    "0f05000000000000"          # cl_ord_id 1295
    "0000000000000000"          # price 0 (market order's price)
    "f4010000"                  # qty 500
    "0100"                      # venue 1
    "0000"                      # reserved
), "Accepted", version=1, length=48, session_id=1, seq=1, timestamp_ns=now(4),
    cl_ord_id=1295, price=0, qty=500, venue=1, reserved=0)

SP_FILL_MSFT = _sp("sp_fill_msft", "Fill (0x94, 64 bytes)", (
    "01"                        # version 1
    "94"                        # type Fill
    "4000"                      # length 64
    "01000000"                  # session_id 1
    "0200000000000000"          # seq 2
    "0050359b5439bc16"          # timestamp_ns T0 + 4 * 4096
    "0f05000000000000"          # cl_ord_id 1295
    "0025abaf07000000"          # last_price 33012000000 (OUCH 3301200 x 10^4)
    "c8000000"                  # last_qty 200
    "c8000000"                  # cum_qty 200
    "2c010000"                  # leaves_qty 300
    "00000000"                  # reserved
    "0807060504030201"          # match_number 0x0102030405060708
), "Fill", version=1, length=64, session_id=1, seq=2, timestamp_ns=now(4), cl_ord_id=1295,
    last_price=33_012_000_000, last_qty=200, cum_qty=200, leaves_qty=300, reserved=0,
    match_number=0x0102030405060708)

SP_CANCELED_IOC = _sp("sp_canceled_ioc", "Canceled (0x93, 48 bytes)", (
    "01"                        # version 1
    "93"                        # type Canceled
    "3000"                      # length 48
    "01000000"                  # session_id 1
    "0300000000000000"          # seq 3
    "0050359b5439bc16"          # timestamp_ns T0 + 4 * 4096
    "0f05000000000000"          # cl_ord_id 1295
    "2c010000"                  # canceled_qty 300
    "00000000"                  # leaves_qty 0
    "02"                        # reason 2 IOC (the order is Expired)
    "00000000000000"            # reserved (7)
), "Canceled", version=1, length=48, session_id=1, seq=3, timestamp_ns=now(4),
    cl_ord_id=1295, canceled_qty=300, leaves_qty=0, reason=2, reserved=b"\0" * 7)

SP_ACCEPTED_SPY = _sp("sp_accepted_spy_short", "Accepted (0x90, 48 bytes)", (
    "01"                        # version 1
    "90"                        # type Accepted
    "3000"                      # length 48
    "01000000"                  # session_id 1
    "0400000000000000"          # seq 4
    "0060359b5439bc16"          # timestamp_ns T0 + 5 * 4096
    "40b6000000000000"          # cl_ord_id 46656
    "0074c59909000000"          # price 41234560000
    "3f420f00"                  # qty 999,999
    "0100"                      # venue 1 (resolved default)
    "0000"                      # reserved
), "Accepted", version=1, length=48, session_id=1, seq=4, timestamp_ns=now(5),
    cl_ord_id=46656, price=41_234_560_000, qty=999_999, venue=1, reserved=0)

SP_REJECTED_VENUE_MODIFY = _sp("sp_rejected_by_venue_modify", "Rejected (0x91, 40 bytes)", (
    "01"                        # version 1
    "91"                        # type Rejected
    "2800"                      # length 40
    "01000000"                  # session_id 1
    "0500000000000000"          # seq 5
    "0080359b5439bc16"          # timestamp_ns T0 + 7 * 4096
    "40b6000000000000"          # cl_ord_id 46656
    "0e00"                      # reason 14 VENUE_REJECTED
    "11"                        # ref_type 0x11 Modify
    "15"                        # venue_code 0x15 (low byte of OUCH reason 0x0015)
    "00000000"                  # reserved
), "Rejected", version=1, length=40, session_id=1, seq=5, timestamp_ns=now(7),
    cl_ord_id=46656, reason=14, ref_type=0x11, venue_code=0x15, reserved=0)

# the session layer (docs/protocol.md "Sessions and sequencing"; the tables
# "Logout", "Heartbeat", "RetransmitRequest", "RetransmitReject")
SP_LOGOUT_OUT = _sp("sp_logout_from_appliance", "Logout (0x02, 24 bytes)", (
    "01"                        # version 1
    "02"                        # type 0x02 Logout (the appliance's answer)
    "1800"                      # length 24
    "01000000"                  # session_id 1
    "0600000000000000"          # seq 6: the session's next outbound (5 sent), not consumed
    "00f0359b5439bc16"          # timestamp_ns now_ns = T0 + 14 * 4096
), "Logout", version=1, length=24, session_id=1, seq=6, timestamp_ns=now(14))

SP_HEARTBEAT_OUT = _sp("sp_heartbeat_from_appliance", "Heartbeat (0x03, 24 bytes)", (
    "01"                        # version 1
    "03"                        # type 0x03 Heartbeat
    "1800"                      # length 24
    "01000000"                  # session_id 1
    "0100000000000000"          # seq 1: the session's next outbound (none sent)
    "00eacfd65439bc16"          # timestamp_ns now(1) + 1 s = 0x16BC3954D6CFEA00
), "Heartbeat", version=1, length=24, session_id=1, seq=1,
    timestamp_ns=now(1) + 1_000_000_000)

SP_RETRANSMIT_REQUEST_OUT = _sp(
    "sp_retransmit_request_from_appliance", "RetransmitRequest (0x04, 40 bytes)", (
        "01"                    # version 1
        "04"                    # type 0x04 RetransmitRequest
        "2800"                  # length 40
        "01000000"              # session_id 1
        "0200000000000000"      # seq 2: the session's next outbound (not consumed)
        "0040359b5439bc16"      # timestamp_ns T0 + 3 * 4096
        "0200000000000000"      # from_seq 2: the next expected
        "02000000"              # count 2: seq 3 received - 2 + 1
        "00000000"              # reserved
    ), "RetransmitRequest", version=1, length=40, session_id=1, seq=2, timestamp_ns=now(3),
    from_seq=2, count=2, reserved=0)


def _sp_request(name: str, from_hex: str, from_seq: int, count_hex: str, count: int) -> Vector:
    return _sp(name, "RetransmitRequest (0x04, 40 bytes)", (
        "01"                    # version 1
        "04"                    # type 0x04 RetransmitRequest
        "2800"                  # length 40
        "01000000"              # session_id 1
        "0400000000000000"      # seq 4: the strategy's next application seq
        "0010359b5439bc16"      # timestamp_ns T0
        + from_hex              # from_seq
        + count_hex             # count
        + "00000000"            # reserved
    ), "RetransmitRequest", version=1, length=40, session_id=1, seq=4, timestamp_ns=T0,
        from_seq=from_seq, count=count, reserved=0)


SP_RETRANSMIT_REQUEST_1_5 = _sp_request("sp_retransmit_request_1_5",
                                        "0100000000000000", 1, "05000000", 5)
SP_RETRANSMIT_REQUEST_0_1 = _sp_request("sp_retransmit_request_0_1",
                                        "0000000000000000", 0, "01000000", 1)
SP_RETRANSMIT_REQUEST_2_1 = _sp_request("sp_retransmit_request_2_1",
                                        "0200000000000000", 2, "01000000", 1)

SP_RETRANSMIT_REJECT_TOO_OLD = _sp(
    "sp_retransmit_reject_too_old", "RetransmitReject (0x84, 40 bytes)", (
        "01"                    # version 1
        "84"                    # type 0x84 RetransmitReject
        "2800"                  # length 40
        "01000000"              # session_id 1
        "0200000000000000"      # seq 2: the session's next outbound (not consumed)
        "0060359b5439bc16"      # timestamp_ns T0 + 5 * 4096
        "0000000000000000"      # from_seq 0, as asked
        "01000000"              # count 1, as asked
        "01"                    # reason 1 TOO_OLD (below the oldest held, 1)
        "000000"                # reserved (3)
    ), "RetransmitReject", version=1, length=40, session_id=1, seq=2, timestamp_ns=now(5),
    from_seq=0, count=1, reason=1, reserved=b"\0" * 3)

SP_RETRANSMIT_REJECT_NOT_SENT = _sp(
    "sp_retransmit_reject_not_sent", "RetransmitReject (0x84, 40 bytes)", (
        "01"                    # version 1
        "84"                    # type RetransmitReject
        "2800"                  # length 40
        "01000000"              # session_id 1
        "0200000000000000"      # seq 2
        "0070359b5439bc16"      # timestamp_ns T0 + 6 * 4096
        "0200000000000000"      # from_seq 2, as asked
        "01000000"              # count 1, as asked
        "02"                    # reason 2 NOT_SENT (2 is the next outbound)
        "000000"                # reserved (3)
    ), "RetransmitReject", version=1, length=40, session_id=1, seq=2, timestamp_ns=now(6),
    from_seq=2, count=1, reason=2, reserved=b"\0" * 3)

SP_VECTORS = [
    SP_LOGOUT_OUT, SP_HEARTBEAT_OUT, SP_RETRANSMIT_REQUEST_OUT, SP_RETRANSMIT_REQUEST_1_5,
    SP_RETRANSMIT_REQUEST_0_1, SP_RETRANSMIT_REQUEST_2_1, SP_RETRANSMIT_REJECT_TOO_OLD,
    SP_RETRANSMIT_REJECT_NOT_SENT,
    SP_LOGIN, SP_LOGIN_DISABLED, SP_LOGOUT, SP_HEARTBEAT, SP_NEW_ORDER_AAPL,
    SP_NEW_ORDER_IBM, SP_NEW_ORDER_SPY_SELL, SP_NEW_ORDER_MSFT_MARKET, SP_NEW_ORDER_SPY_SHORT,
    SP_MODIFY_AAPL, SP_MODIFY_SPY, SP_CANCEL_AAPL, SP_MASS_CANCEL, SP_LOGIN_ACCEPTED,
    SP_LOGIN_REJECTED, SP_ACCEPTED_AAPL, SP_FILL_AAPL, SP_REPLACED_AAPL, SP_REJECTED_CANCEL,
    SP_CANCELED_USER, SP_REJECTED_IBM, SP_REJECTED_VENUE_NEW, SP_SESSION_REJECT,
    SP_ACCEPTED_MSFT, SP_FILL_MSFT, SP_CANCELED_IOC, SP_ACCEPTED_SPY, SP_REJECTED_VENUE_MODIFY,
]

# docs/protocol.md, Enums: the length of each type
SP_TABLE_LENGTHS = {"Login": 32, "Logout": 24, "Heartbeat": 24, "RetransmitRequest": 40,
                    "NewOrder": 64, "Modify": 48,
                    "Cancel": 32, "MassCancel": 32, "LoginAccepted": 32, "LoginRejected": 32,
                    "RetransmitReject": 40,
                    "Accepted": 48, "Rejected": 40, "Replaced": 48, "Canceled": 48,
                    "Fill": 64, "SessionReject": 40}
SP_TABLE_CODES = {"Login": 0x01, "Logout": 0x02, "Heartbeat": 0x03, "RetransmitRequest": 0x04,
                  "NewOrder": 0x10,
                  "Modify": 0x11, "Cancel": 0x12, "MassCancel": 0x13, "LoginAccepted": 0x81,
                  "LoginRejected": 0x82, "RetransmitReject": 0x84, "Accepted": 0x90,
                  "Rejected": 0x91,
                  "Replaced": 0x92, "Canceled": 0x93, "Fill": 0x94, "SessionReject": 0x9F}
# docs/protocol.md, Enums, in the words decode_sp uses
SP_ENUM_NAMES = {
    "side": {1: "buy", 2: "sell", 3: "sell_short"},
    "ord_type": {1: "limit", 2: "market"},
    "tif": {1: "day", 2: "ioc"},
    ("Rejected", "reason"): {6: "UNKNOWN_SYMBOL", 14: "VENUE_REJECTED"},
    ("Rejected", "ref_type"): {0x10: "NewOrder", 0x11: "Modify", 0x12: "Cancel"},
    ("Canceled", "reason"): {1: "USER", 2: "IOC", 3: "VENUE"},
    ("SessionReject", "reason"): {1: "UNKNOWN_TYPE", 2: "BAD_LENGTH"},
    ("LoginRejected", "reason"): {1: "DISABLED", 2: "BAD_SEQ"},
    ("RetransmitReject", "reason"): {1: "TOO_OLD", 2: "NOT_SENT"},
}


# ==========================================================================
# Sanity of the vectors themselves (their lengths against the tables)


@pytest.mark.parametrize("v", OUCH_VECTORS, ids=repr)
def test_ouch_vector_length_matches_table(v: Vector):
    assert len(v.data) == OUCH_TABLE_LENGTHS[v.name], v.source
    assert v.data[:1] == v.fields["type"]


@pytest.mark.parametrize("p", FRAMING_VECTORS, ids=repr)
def test_framing_vector_is_consistent(p: Packet):
    body = 20 + sum(2 + len(m.data) for m in p.messages)
    assert len(p.data) == body
    assert p.data[:10] == p.session


@pytest.mark.parametrize("v", SP_VECTORS, ids=repr)
def test_sp_vector_length_matches_table(v: Vector):
    assert len(v.data) == SP_TABLE_LENGTHS[v.kind] == v.fields["length"], v.source
    assert v.data[1] == SP_TABLE_CODES[v.kind]


def test_every_message_has_a_vector():
    assert {v.kind for v in SP_VECTORS} == set(SP_TABLE_CODES)
    assert {v.kind for v in OUCH_VECTORS} == set(L.OUCH_CLASSES)


# ==========================================================================
# 1. The scapy layers and the decode helpers


def _alpha_str(v):
    return v.decode("latin-1").rstrip(" ") if isinstance(v, bytes) else v


@pytest.mark.parametrize("v", OUCH_VECTORS, ids=repr)
def test_ouch_layer_builds_vector(v: Vector):
    cls = L.OUCH_CLASSES[v.kind]
    assert bytes(cls(**v.fields)).hex() == v.data.hex(), v.source
    assert L.ouch_message(v.kind, **v.fields) == v.data, v.source


@pytest.mark.parametrize("v", OUCH_VECTORS, ids=repr)
def test_ouch_layer_dissects_vector(v: Vector):
    from_venue = v in OUCH_FROM_VENUE_VECTORS
    cls = L.ouch_class(v.data, from_venue)
    assert cls is L.OUCH_CLASSES[v.kind]
    # the direction guessed from the bytes alone (no ports) agrees
    assert L.ouch_class(v.data) is cls
    pkt = cls(v.data)
    got = {k: pkt.getfieldval(k) for k in v.fields}
    assert got == v.fields, v.source
    assert isinstance(pkt.payload, NoPayload), "bytes left over"


@pytest.mark.parametrize("v", OUCH_VECTORS, ids=repr)
def test_decode_ouch(v: Vector):
    for direction in (v in OUCH_FROM_VENUE_VECTORS, None):
        d = L.decode_ouch(v.data, direction)
        assert d["msg"] == v.kind
        assert "error" not in d, d
        want = {k: _alpha_str(x) for k, x in v.fields.items() if k != "appendage"}
        assert {k: d[k] for k in want} == want, v.source
        assert d.get("appendage", "") == v.fields.get("appendage", b"").hex()


def _session(p: Packet) -> str:
    return p.session.decode().rstrip(" ")


@pytest.mark.parametrize("p", FRAMING_VECTORS, ids=repr)
def test_framing_builds_vector(p: Packet):
    msgs = [m.data for m in p.messages]
    assert L.ufo_packet(_session(p), p.seq, msgs, p.count if not msgs else None) == p.data
    pkt = L.UFOHeader(session=_session(p), seq=p.seq, count=None if msgs else p.count)
    for m in p.messages:
        pkt = pkt / L.UFOBlock() / L.OUCH_CLASSES[m.kind](**m.fields)
    assert bytes(pkt).hex() == p.data.hex(), p.source


@pytest.mark.parametrize("p", FRAMING_VECTORS, ids=repr)
def test_wire_helper_matches_framing_vector(p: Packet):
    """tests/wire.py's ufo() (used by other tests) frames as the vector does."""
    msgs = [m.data for m in p.messages]
    assert wire.ufo(_session(p), p.seq, *msgs, count=None if msgs else p.count) == p.data


@pytest.mark.parametrize("p", FRAMING_VECTORS, ids=repr)
def test_framing_dissects_vector(p: Packet):
    pkt = L.UFOHeader(p.data)
    assert (pkt.session, pkt.seq, pkt.count) == (p.session, p.seq, p.count)
    blocks = []
    layer = pkt.payload
    while not isinstance(layer, NoPayload):
        if isinstance(layer, L.UFOBlock):
            blocks.append(layer)
        assert not isinstance(layer, Raw), p.source
        layer = layer.payload
    assert len(blocks) == len(p.messages)
    for b, m in zip(blocks, p.messages, strict=True):
        assert b.length == len(m.data)
        assert isinstance(b.payload, L.OUCH_CLASSES[m.kind])
        assert {k: b.payload.getfieldval(k) for k in m.fields} == m.fields, m.source


@pytest.mark.parametrize("p", FRAMING_VECTORS, ids=repr)
def test_decode_venue(p: Packet):
    if p.request:
        got = L.decode_venue(p.data, direction="request")
        name = "Hello" if p.count == 0 else "Request"
        assert got == [{"ufo_session": _session(p), "ufo_seq": p.seq, "msg": name,
                        "count": p.count}]
        return
    got = L.decode_venue(p.data, direction="from_venue" if p.from_venue else "to_venue")
    if not p.messages:
        name = "Heartbeat" if p.count == 0 else "EndOfSession"
        assert got == [{"ufo_session": _session(p), "ufo_seq": p.seq, "msg": name,
                        "count": p.count}]
        return
    assert len(got) == len(p.messages)
    for i, (d, m) in enumerate(zip(got, p.messages, strict=True)):
        assert d["ufo_session"] == _session(p) and d["ufo_seq"] == p.seq + i
        assert d["msg"] == m.kind and "error" not in d, d
        want = {k: _alpha_str(x) for k, x in m.fields.items() if k != "appendage"}
        assert {k: d[k] for k in want} == want, m.source


@pytest.mark.parametrize("v", SP_VECTORS, ids=repr)
def test_sp_layer_builds_vector(v: Vector):
    assert L.sp_message(v.kind, **v.fields).hex() == v.data.hex(), v.source
    # and with the length left for the layer to compute
    fields = {k: x for k, x in v.fields.items() if k != "length"}
    assert L.sp_message(v.kind, **fields) == v.data, v.source


@pytest.mark.parametrize("v", SP_VECTORS, ids=repr)
def test_sp_layer_dissects_vector(v: Vector):
    pkt = L.SPHeader(v.data)
    assert pkt.type == SP_TABLE_CODES[v.kind]
    body = pkt.payload
    if SP_TABLE_LENGTHS[v.kind] == 24:
        # header-only messages (Logout, Heartbeat): scapy makes no empty body layer
        assert isinstance(body, NoPayload)
    else:
        assert isinstance(body, L.SP_CLASSES[v.kind])
        assert not isinstance(body.payload, Raw)
    got = {k: (pkt if k in L._HEADER_FIELDS else body).getfieldval(k) for k in v.fields}
    got = {k: int(x) if k == "flags" else x for k, x in got.items()}
    assert got == v.fields, v.source


@pytest.mark.parametrize("v", SP_VECTORS, ids=repr)
def test_decode_sp(v: Vector):
    [d] = L.decode_sp(v.data)
    assert "error" not in d and "raw" not in d, d
    assert d["type"] == v.kind
    for k, x in v.fields.items():
        names = SP_ENUM_NAMES.get((v.kind, k)) or SP_ENUM_NAMES.get(k)
        if names is not None and x in names:
            x = names[x]
        elif isinstance(x, bytes):
            x = x.decode("latin-1").rstrip(" ") if k == "symbol" else x.hex()
        assert d[k] == x, (k, v.source)


def test_sp_datagram_of_several_vectors():
    """docs/protocol.md, Overview: several messages per datagram, each framed
    by its header's length."""
    data = SP_NEW_ORDER_AAPL.data + SP_MODIFY_AAPL.data + SP_CANCEL_AAPL.data
    assert [d["type"] for d in L.decode_sp(data)] == ["NewOrder", "Modify", "Cancel"]


# ==========================================================================
# 2./3. The C core and the reference model: scripted scenarios


@dataclass(frozen=True)
class Step:
    what: str
    inputs: tuple  # ("sp", session_id, Vector) or ("venue", venue_id, Packet)
    outputs: tuple = ()  # Vector (strategy payload) or Packet (venue payload)
    order: dict | None = None  # cl_ord_id and expected order fields after the step
    events: dict = field(default_factory=dict)  # cumulative event counters after the step
    drops: dict = field(default_factory=dict)  # drop counters added by the step
    gone: int | None = None  # a cl_ord_id expected unknown to the core
    at: int | None = None  # now_ns of the step; None: T0 + k * 4096 for step k


PN, NEW, PF, FILLED, PR, REPL, PC, CXL, REJ, EXP = range(1, 11)  # semantics.md states

SCENARIOS: dict[str, list[Step]] = {
    # buy AAPL: accept, partial fill, replace, cancel rejected, system event,
    # mass cancel, canceled; heartbeats, logout, end of session
    "lifecycle": [
        Step("Login -> LoginAccepted", (("sp", 1, SP_LOGIN),), (SP_LOGIN_ACCEPTED,),
             events={"LOGINS": 1}),
        Step("NewOrder -> Enter Order", (("sp", 1, SP_NEW_ORDER_AAPL),), (P_OUT_ENTER_AAPL,),
             order=dict(cl_ord_id=12345, state=PN, account=1, side=1, ord_type=1, tif=1,
                        flags=0, price=15_025_000_000, qty=100, leaves_qty=100, cum_qty=0,
                        ref=1, venue=1, acked=0)),
        Step("Order Accepted -> Accepted", (("venue", 1, P_IN_ACCEPTED_AAPL),),
             (SP_ACCEPTED_AAPL,), order=dict(cl_ord_id=12345, state=NEW, acked=1)),
        Step("Order Executed -> Fill", (("venue", 1, P_IN_EXECUTED_AAPL),), (SP_FILL_AAPL,),
             order=dict(cl_ord_id=12345, state=PF, cum_qty=40, leaves_qty=60)),
        Step("Modify -> Replace Order", (("sp", 1, SP_MODIFY_AAPL),), (P_OUT_REPLACE_AAPL,),
             order=dict(cl_ord_id=12345, state=PR, pending_ref=2,
                        pending_price=15_100_000_000, pending_qty=200)),
        Step("Order Replaced -> Replaced", (("venue", 1, P_IN_REPLACED_AAPL),),
             (SP_REPLACED_AAPL,),
             order=dict(cl_ord_id=12345, state=REPL, ref=2, pending_ref=0,
                        price=15_100_000_000, qty=200, leaves_qty=160, cum_qty=40)),
        Step("Cancel -> Cancel Order", (("sp", 1, SP_CANCEL_AAPL),), (P_OUT_CANCEL_SEQ3,),
             order=dict(cl_ord_id=12345, state=PC)),
        # §3.10: a venue sends Cancel Reject for a partial cancel of a cross order in
        # the late period; the appliance only sends full cancels, so this checks
        # the decoding and the mapping (semantics.md), not a likely venue reply
        Step("Cancel Reject -> Rejected(Cancel)", (("venue", 1, P_IN_CANCEL_REJECT),),
             (SP_REJECTED_CANCEL,), order=dict(cl_ord_id=12345, state=REPL)),
        Step("System Event: ignored", (("venue", 1, P_IN_SYSTEM_EVENT),), (),
             events={"VENUE_IGNORED_TYPES": 1, "VENUE_MSGS_IN": 5}),
        Step("MassCancel -> Cancel Order", (("sp", 1, SP_MASS_CANCEL),), (P_OUT_CANCEL_SEQ4,),
             order=dict(cl_ord_id=12345, state=PC)),
        Step("Order Canceled -> Canceled", (("venue", 1, P_IN_CANCELED_USER),),
             (SP_CANCELED_USER,), order=dict(cl_ord_id=12345, state=CXL, leaves_qty=0)),
        Step("Heartbeat: counted", (("sp", 1, SP_HEARTBEAT),), (),
             events={"HEARTBEATS_IN": 1, "SP_MSGS_IN": 4}),
        Step("MoldUDP64 heartbeat: counted", (("venue", 1, P_IN_HEARTBEAT),), (),
             events={"VENUE_HEARTBEATS": 1, "VENUE_MSGS_IN": 6}),
        Step("Logout -> Logout", (("sp", 1, SP_LOGOUT),), (SP_LOGOUT_OUT,),
             events={"LOGOUTS": 1}),
        Step("MoldUDP64 end of session: counted", (("venue", 1, P_IN_END_OF_SESSION),), (),
             events={"VENUE_END_OF_SESSION": 1, "VENUE_MSGS_IN": 6}),
    ],
    # a local reject, a venue reject of a new order, a SessionReject and a
    # LoginRejected
    "rejects": [
        Step("Login -> LoginAccepted", (("sp", 1, SP_LOGIN),), (SP_LOGIN_ACCEPTED,)),
        Step("NewOrder unknown symbol -> Rejected", (("sp", 1, SP_NEW_ORDER_IBM),),
             (SP_REJECTED_IBM,), gone=7),
        Step("NewOrder -> Enter Order", (("sp", 1, SP_NEW_ORDER_SPY_SELL),),
             (P_OUT_ENTER_SPY_SELL,),
             order=dict(cl_ord_id=8, state=PN, side=2, qty=300, price=40_000_000_000, ref=1)),
        Step("Rejected -> Rejected(NewOrder)", (("venue", 1, P_IN_REJECTED_SPY),),
             (SP_REJECTED_VENUE_NEW,), order=dict(cl_ord_id=8, state=REJ)),
        Step("unknown type -> SessionReject", (("sp", 1, SP_UNKNOWN_TYPE),),
             (SP_SESSION_REJECT,), drops={"SP_UNKNOWN_TYPE": 1}),
        Step("Login (disabled session) -> LoginRejected", (("sp", 3, SP_LOGIN_DISABLED),),
             (SP_LOGIN_REJECTED,), events={"LOGINS": 1}),
    ],
    # market IOC partly filled then expired, in one three-block packet; a
    # short sale with SharesLocated, accepted, its replace rejected
    "market_and_short": [
        Step("Login -> LoginAccepted", (("sp", 1, SP_LOGIN),), (SP_LOGIN_ACCEPTED,)),
        Step("NewOrder market IOC -> Enter Order", (("sp", 1, SP_NEW_ORDER_MSFT_MARKET),),
             (P_OUT_ENTER_MSFT,),
             order=dict(cl_ord_id=1295, state=PN, account=2, side=2, ord_type=2, tif=2,
                        price=0, qty=500, venue=1, ref=1)),
        Step("NewOrder short + locate -> Enter Order", (("sp", 1, SP_NEW_ORDER_SPY_SHORT),),
             (P_OUT_ENTER_SPY_SHORT,),
             order=dict(cl_ord_id=46656, state=PN, side=3, flags=3, qty=999_999,
                        price=41_234_560_000, venue=1, ref=2)),
        Step("Accepted + Executed + Canceled(I) -> Accepted, Fill, Canceled(IOC)",
             (("venue", 1, P_IN_MSFT_THREE_BLOCKS),),
             (SP_ACCEPTED_MSFT, SP_FILL_MSFT, SP_CANCELED_IOC),
             order=dict(cl_ord_id=1295, state=EXP, cum_qty=200, leaves_qty=0),
             events={"VENUE_MSGS_IN": 3}),
        Step("Order Accepted with appendage -> Accepted", (("venue", 1, P_IN_ACCEPTED_SPY),),
             (SP_ACCEPTED_SPY,), order=dict(cl_ord_id=46656, state=NEW, acked=1)),
        Step("Modify -> Replace Order with SharesLocated", (("sp", 1, SP_MODIFY_SPY),),
             (P_OUT_REPLACE_SPY,),
             order=dict(cl_ord_id=46656, state=PR, pending_ref=3, pending_qty=999_999,
                        pending_price=41_234_000_000)),
        Step("Rejected (replace) -> Rejected(Modify)", (("venue", 1, P_IN_REJECTED_REPLACE),),
             (SP_REJECTED_VENUE_MODIFY,),
             order=dict(cl_ord_id=46656, state=NEW, ref=2, pending_ref=0,
                        price=41_234_560_000, qty=999_999)),
    ],
    # the strategy side of the session layer: a gap is asked for (go-back-N),
    # a RetransmitRequest is served byte for byte, TOO_OLD, NOT_SENT
    "session_layer": [
        Step("Login -> LoginAccepted", (("sp", 1, SP_LOGIN),), (SP_LOGIN_ACCEPTED,)),
        Step("NewOrder unknown symbol -> Rejected", (("sp", 1, SP_NEW_ORDER_IBM),),
             (SP_REJECTED_IBM,)),
        Step("Modify seq 3, expected 2 -> RetransmitRequest(2, 2), not handled",
             (("sp", 1, SP_MODIFY_SPY),), (SP_RETRANSMIT_REQUEST_OUT,),
             events={"SP_SEQ_GAPS": 1, "SP_SEQ_GAP_MSGS": 2, "SP_MSGS_IN": 1},
             drops={"SP_OUT_OF_ORDER": 1}),
        Step("RetransmitRequest(1, 5) -> Rejected seq 1 again, as first sent",
             (("sp", 1, SP_RETRANSMIT_REQUEST_1_5),), (SP_REJECTED_IBM,),
             events={"SP_RETRANSMIT_REQUESTS": 1, "SP_RETRANSMITTED": 1}),
        Step("RetransmitRequest(0, 1) -> RetransmitReject TOO_OLD",
             (("sp", 1, SP_RETRANSMIT_REQUEST_0_1),), (SP_RETRANSMIT_REJECT_TOO_OLD,)),
        Step("RetransmitRequest(2, 1) -> RetransmitReject NOT_SENT",
             (("sp", 1, SP_RETRANSMIT_REQUEST_2_1),), (SP_RETRANSMIT_REJECT_NOT_SENT,),
             events={"SP_RETRANSMIT_REQUESTS": 3, "SP_RETRANSMITTED": 1, "SP_MSGS_OUT": 5}),
        Step("NewOrder seq 2 (the resend) -> Enter Order", (("sp", 1, SP_NEW_ORDER_SPY_SELL),),
             (P_OUT_ENTER_SPY_SELL,), order=dict(cl_ord_id=8, state=PN, ref=1),
             events={"SP_MSGS_IN": 2, "SP_SEQ_GAPS": 1}),
    ],
    # the venue side: an out-of-order packet asked for, served requests,
    # heartbeat answers, a hello
    "venue_session_layer": [
        Step("Login -> LoginAccepted", (("sp", 1, SP_LOGIN),), (SP_LOGIN_ACCEPTED,)),
        Step("NewOrder -> Enter Order", (("sp", 1, SP_NEW_ORDER_AAPL),), (P_OUT_ENTER_AAPL,)),
        Step("Executed seq 2 (expected 1) -> request(1, 2); Accepted seq 1 -> Accepted",
             (("venue", 1, P_IN_EXECUTED_AAPL), ("venue", 1, P_IN_ACCEPTED_AAPL)),
             (P_OUT_REQUEST_1_2, SP_ACCEPTED_AAPL),
             order=dict(cl_ord_id=12345, state=NEW, cum_qty=0),
             events={"VENUE_SEQ_GAPS": 1, "VENUE_SEQ_GAP_MSGS": 2, "VENUE_MSGS_IN": 1},
             drops={"UFO_OUT_OF_ORDER": 1}),
        Step("Executed seq 2 resent -> Fill", (("venue", 1, P_IN_EXECUTED_AAPL),),
             (SP_FILL_AAPL,), order=dict(cl_ord_id=12345, state=PF, cum_qty=40)),
        Step("request(1, 5) -> Enter Order again, as first sent",
             (("venue_request", 1, P_IN_REQUEST_1_5),), (P_OUT_ENTER_AAPL,),
             events={"VENUE_RETRANSMIT_REQUESTS": 1, "VENUE_RETRANSMITTED": 1,
                     "VENUE_MSGS_OUT": 1}),
        Step("request(2, 1): not sent yet -> heartbeat", (("venue_request", 1, P_IN_REQUEST_2_1),),
             (P_OUT_HEARTBEAT_2,)),
        Step("hello -> heartbeat", (("venue_request", 1, P_IN_HELLO_2),), (P_OUT_HEARTBEAT_2,)),
        Step("request(0, 1): too old -> nothing", (("venue_request", 1, P_IN_REQUEST_0_1),), (),
             events={"VENUE_RETRANSMIT_REQUESTS": 4, "VENUE_RETRANSMITTED": 1,
                     "VENUE_RETRANSMIT_TOO_OLD": 1, "VENUE_HEARTBEATS_OUT": 0}),
    ],
    # timers (semantics.md "Time"): heartbeats after heartbeat_ms (1 s), the
    # session and both venues timed out after timeout_ms (3 s); down venues
    # get a hello with each heartbeat
    "timers": [
        Step("Login -> LoginAccepted", (("sp", 1, SP_LOGIN),), (SP_LOGIN_ACCEPTED,)),
        Step("1 s later: heartbeats to the session and both venues", (),
             (SP_HEARTBEAT_OUT, P_OUT_HEARTBEAT_1, P_OUT_HEARTBEAT_BX_1),
             events={"HEARTBEATS_OUT": 1, "VENUE_HEARTBEATS_OUT": 2},
             at=now(1) + 1_000_000_000),
        Step("3 s of silence: session disconnected; venues down, heartbeat + hello", (),
             (P_OUT_HEARTBEAT_1, P_OUT_HELLO_1, P_OUT_HEARTBEAT_BX_1, P_OUT_HELLO_BX_1),
             events={"SESSION_TIMEOUTS": 1, "VENUE_TIMEOUTS": 2, "HEARTBEATS_OUT": 1,
                     "VENUE_HEARTBEATS_OUT": 4},
             at=now(1) + 3_000_000_000),
    ],
}

# (implementation, scenario, step index) -> reason; none so far
XFAIL: dict[tuple[str, str, int], str] = {}

IMPLS = {"c_core": Core, "reference_model": ReferenceCore}


def _udp_payload(frame: bytes) -> bytes:
    assert frame[12:14] == b"\x08\x00", "untagged IPv4 expected"
    ihl = (frame[14] & 0x0F) * 4
    udp = frame[14 + ihl:]
    (udp_len,) = struct.unpack_from("!H", udp, 4)
    return udp[8:udp_len]


def _udp_ports(frame: bytes) -> tuple[int, int]:
    ihl = (frame[14] & 0x0F) * 4
    return struct.unpack_from("!HH", frame, 14 + ihl)


def _frame(kind: str, peer: int, v) -> bytes:
    if kind == "sp":
        return wire.from_strategy(peer, v.data)
    if kind == "venue":
        return wire.from_venue(peer, v.data)
    # a venue's request packet, to appliance.venue_request_port
    ven = next(x for x in wire.VENUES if x.id == peer)
    a = wire.APPLIANCE
    return wire.udp_frame(ven.mac, a.mac, ven.ip, a.ip, ven.port, a.request_port, v.data)


def _expected_ports(v) -> tuple[int, int]:
    """(source, destination) UDP port of an outbound vector (protocol.md
    Overview; venue-protocol.md UDP ports)."""
    a = wire.APPLIANCE
    if isinstance(v, Vector):
        s = next(x for x in wire.SESSIONS if x.id == v.fields["session_id"])
        return a.strategy_port, s.port
    ven = next(x for x in wire.VENUES if x.session.encode().ljust(10) == v.session)
    if v.request:
        return a.request_port, ven.retransmit_port
    return a.venue_port, ven.port


def _run(core, step: Step, k: int) -> list[bytes]:
    frames = [_frame(kind, peer, v) for kind, peer, v in step.inputs]
    return core.process_burst(frames, now(k) if step.at is None else step.at)


def _cases():
    for impl in IMPLS:
        for name, steps in SCENARIOS.items():
            for i, step in enumerate(steps):
                marks = []
                if (impl, name, i) in XFAIL:
                    marks.append(pytest.mark.xfail(strict=True, reason=XFAIL[(impl, name, i)]))
                yield pytest.param(impl, name, i, marks=marks,
                                   id=f"{impl}-{name}-{i + 1}-{step.what}")


@pytest.mark.parametrize("impl,scenario,index", list(_cases()))
def test_core_against_vectors(impl: str, scenario: str, index: int):
    """Replay the scenario up to step ``index`` (steps are numbered from 1 in
    the ids; step k runs at now_ns = T0 + k * 4096), then check that step:
    the emitted UDP payloads equal the outbound vectors byte for byte
    (encoder), and the order and counters show the inbound vectors were
    read as the specifications say (decoder)."""
    steps = SCENARIOS[scenario]
    core = IMPLS[impl](wire.config())
    drops: dict[str, int] = {}
    for i, step in enumerate(steps[:index]):
        _run(core, step, i + 1)
        for k, n in step.drops.items():
            drops[k] = drops.get(k, 0) + n
    step = steps[index]
    out = _run(core, step, index + 1)
    for k, n in step.drops.items():
        drops[k] = drops.get(k, 0) + n

    got = [_udp_payload(f).hex() for f in out]
    want = [v.data.hex() for v in step.outputs]
    assert got == want, "\n".join(f"expected {v.name}: {v.source}" for v in step.outputs)
    assert [_udp_ports(f) for f in out] == [_expected_ports(v) for v in step.outputs]

    st = core.stats()
    assert st["drop"] == drops
    for name, n in step.events.items():
        assert st["event"].get(name, 0) == n, name
    if step.order is not None:
        o = core.order(1, step.order["cl_ord_id"])
        assert o is not None
        assert {k: o[k] for k in step.order} == step.order
    if step.gone is not None:
        assert core.order(1, step.gone) is None
