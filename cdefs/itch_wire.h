/* Market data: Nasdaq TotalView-ITCH 5.0 messages carried in MoldUDP64
 * packets (docs/market-data.md).  This header is the one definition of both
 * layouts: offsets and lengths below are the specifications' tables, field
 * by field (ITCH 5.0 section 1.3 and 4, MoldUDP64 1.00 "Downstream Packet"
 * and "Request Packet").  Everything is big-endian and unaligned, so the C
 * feed reads fields at these offsets rather than through structs; the
 * scapy layers (pcaps/itch_layers.py) are tested against these values
 * through cffi.  ITCH prices (Price(4)) carry 4 implied decimals. */
#ifndef OMS_ITCH_WIRE_H
#define OMS_ITCH_WIRE_H

enum {
	ITCH_PRICE_DECIMALS = 4,
	/* Price(4) -> the project's 8-decimal fixed point */
	ITCH_PRICE_TO_FIXED = 10000,
};

/* MoldUDP64 downstream packet: header, then `count` message blocks of a
 * u16 length and that many bytes.  A request packet is the header alone,
 * its count the number of messages asked for. */
enum {
	MOLD_SESSION_LEN = 10,
	MOLD_OFF_SESSION = 0,
	MOLD_OFF_SEQ = 10,   /* u64: sequence number of the first message */
	MOLD_OFF_COUNT = 18, /* u16: messages in the packet */
	MOLD_HLEN = 20,
	MOLD_BLOCK_HLEN = 2, /* u16 message length before each message */
	MOLD_COUNT_HEARTBEAT = 0,
	MOLD_COUNT_END_OF_SESSION = 0xFFFF,
	MOLD_REQUEST_LEN = 20,
};
/* Sequence numbers from here on are refused, so that a packet's range
 * (sequence number + count) never wraps: no session gets near 2^64. */
#define MOLD_SEQ_LIMIT (0xFFFFFFFFFFFFFFFFull - 0x10000ull)

/* Every ITCH 5.0 message starts with Message Type(0,1) Stock Locate(1,2)
 * Tracking Number(3,2) Timestamp(5,6: ns since midnight). */
enum {
	ITCH_OFF_TYPE = 0,
	ITCH_OFF_LOCATE = 1,
	ITCH_OFF_TRACKING = 3,
	ITCH_OFF_TIMESTAMP = 5,
	ITCH_HLEN = 11,
	ITCH_STOCK_LEN = 8, /* Alpha, space padded */
};

/* System Event 'S' (4.1) */
enum {
	ITCH_SYSTEM_EVENT_LEN = 12,
	ITCH_SYSTEM_EVENT_OFF_CODE = 11, /* O S Q M E C */
};

/* Stock Directory 'R' (4.2.1) */
enum {
	ITCH_DIRECTORY_LEN = 39,
	ITCH_DIRECTORY_OFF_STOCK = 11,
	ITCH_DIRECTORY_OFF_MARKET_CATEGORY = 19,
	ITCH_DIRECTORY_OFF_FINANCIAL_STATUS = 20,
	ITCH_DIRECTORY_OFF_ROUND_LOT = 21, /* u32 */
	ITCH_DIRECTORY_OFF_ROUND_LOTS_ONLY = 25,
	ITCH_DIRECTORY_OFF_ISSUE_CLASSIFICATION = 26,
	ITCH_DIRECTORY_OFF_ISSUE_SUBTYPE = 27, /* Alpha 2 */
	ITCH_DIRECTORY_OFF_AUTHENTICITY = 29,
	ITCH_DIRECTORY_OFF_SHORT_SALE_THRESHOLD = 30,
	ITCH_DIRECTORY_OFF_IPO_FLAG = 31,
	ITCH_DIRECTORY_OFF_LULD_TIER = 32,
	ITCH_DIRECTORY_OFF_ETP_FLAG = 33,
	ITCH_DIRECTORY_OFF_ETP_LEVERAGE = 34, /* u32 */
	ITCH_DIRECTORY_OFF_INVERSE = 38,
};

/* Stock Trading Action 'H' (4.2.2) */
enum {
	ITCH_TRADING_ACTION_LEN = 25,
	ITCH_TRADING_ACTION_OFF_STOCK = 11,
	ITCH_TRADING_ACTION_OFF_STATE = 19, /* H P Q T */
	ITCH_TRADING_ACTION_OFF_RESERVED = 20,
	ITCH_TRADING_ACTION_OFF_REASON = 21, /* Alpha 4 */
};

/* Reg SHO Short Sale Price Test Restricted Indicator 'Y' (4.2.3) */
enum {
	ITCH_REG_SHO_LEN = 20,
	ITCH_REG_SHO_OFF_STOCK = 11,
	ITCH_REG_SHO_OFF_ACTION = 19, /* '0' none, '1' in effect, '2' remains */
};

/* Add Order - No MPID Attribution 'A' (4.3.1); with MPID 'F' (4.3.2) adds
 * Attribution(36,4). */
enum {
	ITCH_ADD_LEN = 36,
	ITCH_ADD_MPID_LEN = 40,
	ITCH_ADD_OFF_REF = 11,   /* u64 */
	ITCH_ADD_OFF_SIDE = 19,  /* 'B' or 'S' */
	ITCH_ADD_OFF_SHARES = 20, /* u32 */
	ITCH_ADD_OFF_STOCK = 24,
	ITCH_ADD_OFF_PRICE = 32, /* Price(4) */
	ITCH_ADD_OFF_ATTRIBUTION = 36,
};

/* Order Executed 'E' (4.4.1); with Price 'C' (4.4.2) */
enum {
	ITCH_EXEC_LEN = 31,
	ITCH_EXEC_PRICE_LEN = 36,
	ITCH_EXEC_OFF_REF = 11,
	ITCH_EXEC_OFF_SHARES = 19,
	ITCH_EXEC_OFF_MATCH = 23, /* u64 */
	ITCH_EXEC_OFF_PRINTABLE = 31, /* 'C' only: 'Y' or 'N' */
	ITCH_EXEC_OFF_PRICE = 32,     /* 'C' only */
};

/* Order Cancel 'X' (4.4.3) */
enum {
	ITCH_CANCEL_LEN = 23,
	ITCH_CANCEL_OFF_REF = 11,
	ITCH_CANCEL_OFF_SHARES = 19,
};

/* Order Delete 'D' (4.4.4) */
enum {
	ITCH_DELETE_LEN = 19,
	ITCH_DELETE_OFF_REF = 11,
};

/* Order Replace 'U' (4.4.5): the original order leaves the book, the new
 * reference takes its side and stock with new shares and price. */
enum {
	ITCH_REPLACE_LEN = 35,
	ITCH_REPLACE_OFF_ORIG_REF = 11,
	ITCH_REPLACE_OFF_NEW_REF = 19,
	ITCH_REPLACE_OFF_SHARES = 27,
	ITCH_REPLACE_OFF_PRICE = 31,
};

/* Trade (Non-Cross) 'P' (4.5.1): a match against a non-displayed order */
enum {
	ITCH_TRADE_LEN = 44,
	ITCH_TRADE_OFF_REF = 11,
	ITCH_TRADE_OFF_SIDE = 19,
	ITCH_TRADE_OFF_SHARES = 20,
	ITCH_TRADE_OFF_STOCK = 24,
	ITCH_TRADE_OFF_PRICE = 32,
	ITCH_TRADE_OFF_MATCH = 36,
};

/* Cross Trade 'Q' (4.5.2) */
enum {
	ITCH_CROSS_LEN = 40,
	ITCH_CROSS_OFF_SHARES = 11, /* u64 */
	ITCH_CROSS_OFF_STOCK = 19,
	ITCH_CROSS_OFF_PRICE = 27,
	ITCH_CROSS_OFF_MATCH = 31,
	ITCH_CROSS_OFF_CROSS_TYPE = 39, /* O C H I */
};

/* Broken Trade / Order Execution 'B' (4.5.3) */
enum {
	ITCH_BROKEN_LEN = 19,
	ITCH_BROKEN_OFF_MATCH = 11,
};

#endif
