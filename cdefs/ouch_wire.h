/* Venue protocol: Nasdaq OUCH 5.0 (Order Entry Specification, rev 1.04,
 * 2024-05-01) carried in the UDP framing of docs/venue-protocol.md.
 * Offsets and lengths below are the specification's tables, section by
 * section; OUCH is big-endian and its messages are not aligned, so the C
 * core reads and writes fields at these offsets instead of through
 * structs.  Prices carry 4 implied decimals. */
#ifndef OMS_OUCH_WIRE_H
#define OMS_OUCH_WIRE_H

#define OUCH_PRICE_DECIMALS 4
enum {
	/* $199,999.9900 (OUCH 5.0 §1.2): the highest limit price */
	OUCH_MAX_PRICE = 1999999900,
	/* $214,748.3647: the price that makes an order a market order */
	OUCH_MARKET_PRICE = 0x7FFFFFFF,
	/* quantity must be > 0 and < 1,000,000 (§2.1) */
	OUCH_MAX_QTY = 999999,
	OUCH_CLORDID_LEN = 14,
};

/* Framing (docs/venue-protocol.md): MoldUDP64's downstream packet header,
 * used in both directions, followed by message blocks of a 2-byte length
 * and one OUCH message. */
enum {
	UFO_SESSION_LEN = 10,
	UFO_OFF_SESSION = 0,
	UFO_OFF_SEQ = 10,   /* u64: sequence number of the first message */
	UFO_OFF_COUNT = 18, /* u16: messages in this packet */
	UFO_HLEN = 20,
	UFO_COUNT_END_OF_SESSION = 0xFFFF,
};

/* Inbound to the venue: Enter Order 'O' (§2.1), 47 bytes + appendage. */
enum {
	OUCH_ENTER_LEN = 47,
	OUCH_ENTER_OFF_REF = 1,
	OUCH_ENTER_OFF_SIDE = 5,
	OUCH_ENTER_OFF_QTY = 6,
	OUCH_ENTER_OFF_SYMBOL = 10,
	OUCH_ENTER_OFF_PRICE = 18,
	OUCH_ENTER_OFF_TIF = 26,
	OUCH_ENTER_OFF_DISPLAY = 27,
	OUCH_ENTER_OFF_CAPACITY = 28,
	OUCH_ENTER_OFF_ISO = 29,
	OUCH_ENTER_OFF_CROSS = 30,
	OUCH_ENTER_OFF_CLORDID = 31,
	OUCH_ENTER_OFF_APPLEN = 45,
};

/* Replace Order Request 'U' (§2.2), 40 bytes + appendage. */
enum {
	OUCH_REPLACE_LEN = 40,
	OUCH_REPLACE_OFF_ORIG_REF = 1,
	OUCH_REPLACE_OFF_REF = 5,
	OUCH_REPLACE_OFF_QTY = 9, /* total shares, previous executions included */
	OUCH_REPLACE_OFF_PRICE = 13,
	OUCH_REPLACE_OFF_TIF = 21,
	OUCH_REPLACE_OFF_DISPLAY = 22,
	OUCH_REPLACE_OFF_ISO = 23,
	OUCH_REPLACE_OFF_CLORDID = 24,
	OUCH_REPLACE_OFF_APPLEN = 38,
};

/* Cancel Order Request 'X' (§2.3), 9 bytes, no appendage. */
enum {
	OUCH_CANCEL_LEN = 9,
	OUCH_CANCEL_OFF_REF = 1,
	OUCH_CANCEL_OFF_QTY = 5, /* shares that may still execute: 0 cancels */
};

/* Option tag 25, Shares Located (Appendix A). */
enum { OUCH_TAG_SHARES_LOCATED = 25 };

/* Outbound from the venue, all Type(0,1) Timestamp(1,8) UserRefNum(9,4). */
enum {
	OUCH_OFF_TIMESTAMP = 1,
	OUCH_OFF_REF = 9,

	/* Order Accepted 'A' (§3.2), 64 + appendage */
	OUCH_ACCEPTED_LEN = 64,
	OUCH_ACCEPTED_OFF_QTY = 14,
	OUCH_ACCEPTED_OFF_PRICE = 26,
	OUCH_ACCEPTED_OFF_ORDER_REF = 36,
	OUCH_ACCEPTED_OFF_STATE = 47, /* 'L' live, 'D' dead */
	OUCH_ACCEPTED_OFF_APPLEN = 62,

	/* Order Replaced 'U' (§3.3), 68 + appendage */
	OUCH_REPLACED_LEN = 68,
	OUCH_REPLACED_OFF_ORIG_REF = 9,
	OUCH_REPLACED_OFF_REF = 13,
	OUCH_REPLACED_OFF_QTY = 18, /* shares outstanding */
	OUCH_REPLACED_OFF_PRICE = 30,
	OUCH_REPLACED_OFF_STATE = 51,
	OUCH_REPLACED_OFF_APPLEN = 66,

	/* Order Canceled 'C' (§3.4), 18, appendage optional */
	OUCH_CANCELED_LEN = 18,
	OUCH_CANCELED_OFF_QTY = 13, /* shares decremented */
	OUCH_CANCELED_OFF_REASON = 17,

	/* Order Executed 'E' (§3.6), 36 + appendage */
	OUCH_EXECUTED_LEN = 36,
	OUCH_EXECUTED_OFF_QTY = 13,
	OUCH_EXECUTED_OFF_PRICE = 17,
	OUCH_EXECUTED_OFF_LIQUIDITY = 25,
	OUCH_EXECUTED_OFF_MATCH = 26,
	OUCH_EXECUTED_OFF_APPLEN = 34,

	/* Rejected 'J' (§3.8), 29, appendage optional */
	OUCH_REJECTED_LEN = 29,
	OUCH_REJECTED_OFF_REASON = 13, /* u16 */
	OUCH_REJECTED_OFF_CLORDID = 15,

	/* Cancel Reject 'I' (§3.10), 13, appendage optional */
	OUCH_CANCEL_REJECT_LEN = 13,

	/* System Event 'S' (§3.1), 10 */
	OUCH_SYSTEM_EVENT_LEN = 10,
};

#endif
