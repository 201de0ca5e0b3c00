/* Strategy protocol (strategy <-> appliance, over UDP): the single definition
 * of its wire format.  docs/protocol.md describes each message; the scapy
 * layers in pcaps/layers.py are tested byte-for-byte against these structs.
 *
 * All integers are little-endian (the strategy and the appliance are both
 * x86 hosts, so neither side swaps bytes).  Every field is naturally
 * aligned, so the structs need no packing and cffi sees the same layout.
 */
#ifndef OMS_SP_WIRE_H
#define OMS_SP_WIRE_H

#ifndef OMS_CFFI
#include <stdint.h>
#endif

#define SP_VERSION 1

/* Prices are signed 64-bit fixed point with 8 implied decimals:
 * 150.25 is 15025000000.  Enough for sub-penny crypto and FX prices and
 * for +/- 92 billion in the unit currency. */
#define SP_PRICE_SCALE 100000000LL
enum { SP_PRICE_DECIMALS = 8 };

enum sp_msg_type {
	/* session level: not sequenced, header.seq carries the sender's next
	 * application sequence number */
	SP_LOGIN = 0x01,
	SP_LOGOUT = 0x02,
	SP_HEARTBEAT = 0x03,
	SP_RETRANSMIT_REQUEST = 0x04, /* both directions */
	/* inbound application messages: sequenced */
	SP_NEW_ORDER = 0x10,
	SP_MODIFY = 0x11,
	SP_CANCEL = 0x12,
	SP_MASS_CANCEL = 0x13,
	/* outbound session level */
	SP_LOGIN_ACCEPTED = 0x81,
	SP_LOGIN_REJECTED = 0x82,
	SP_RETRANSMIT_REJECT = 0x84,
	/* outbound application messages: sequenced */
	SP_ACCEPTED = 0x90,
	SP_REJECTED = 0x91,
	SP_REPLACED = 0x92,
	SP_CANCELED = 0x93,
	SP_FILL = 0x94,
	SP_SESSION_REJECT = 0x9F,
};

enum sp_side { SP_SIDE_BUY = 1, SP_SIDE_SELL = 2, SP_SIDE_SELL_SHORT = 3 };
enum sp_ord_type { SP_ORD_LIMIT = 1, SP_ORD_MARKET = 2 };
enum sp_tif { SP_TIF_DAY = 1, SP_TIF_IOC = 2 };
enum sp_flags {
	SP_FLAG_PRIORITY = 0x01,
	SP_FLAG_LOCATE = 0x02, /* short-sale locate obtained */
};

/* Reject reasons carried by Rejected.  Below 1000: business (the order
 * broke a rule).  1000 and above: system (the appliance could not handle
 * it); the brief promises zero of those. */
enum sp_reject_reason {
	SP_REJ_DUPLICATE_ID = 1,
	SP_REJ_BAD_SIDE = 2,
	SP_REJ_BAD_ORD_TYPE = 3,
	SP_REJ_BAD_TIF = 4,
	SP_REJ_BAD_QTY = 5,
	SP_REJ_UNKNOWN_SYMBOL = 6,
	SP_REJ_BAD_PRICE = 7,
	SP_REJ_UNKNOWN_VENUE = 8,
	SP_REJ_PRICE_UNREPRESENTABLE = 9,
	SP_REJ_LOCATE_REQUIRED = 10,
	SP_REJ_UNKNOWN_ORDER = 11,
	SP_REJ_TOO_LATE = 12,
	SP_REJ_ORDER_PENDING = 13,
	SP_REJ_VENUE_REJECTED = 14,
	/* pre-trade risk (cdefs/risk.c; docs/semantics.md "Pre-trade risk") */
	SP_REJ_THROTTLED = 15,
	SP_REJ_UNKNOWN_ACCOUNT = 16,
	SP_REJ_KILL_SWITCH = 17,
	SP_REJ_SYMBOL_HALTED = 18,
	SP_REJ_SYMBOL_RESTRICTED = 19,
	SP_REJ_VENUE_NOT_ALLOWED = 20,
	SP_REJ_ORD_TYPE_NOT_ALLOWED = 21,
	SP_REJ_TIF_NOT_ALLOWED = 22,
	SP_REJ_NO_POSITION_LIMIT = 23,
	SP_REJ_QTY_LIMIT = 24,
	SP_REJ_LOT_SIZE = 25,
	SP_REJ_TICK_SIZE = 26,
	SP_REJ_PRICE_BAND = 27,
	SP_REJ_NOTIONAL_LIMIT = 28,
	SP_REJ_OPEN_ORDERS_LIMIT = 29,
	SP_REJ_CREDIT_LIMIT = 30,
	SP_REJ_POSITION_LIMIT = 31,
	SP_REJ_ACCOUNT_NOT_PERMITTED = 32,
	SP_REJ_NO_ROUTE = 33, /* the smart router found no venue (check 8) */
	SP_REJ_SPLIT_ORDER = 34, /* a Modify of an order split across venues */
	SP_REJ_BUSINESS_MAX = 999,
	SP_REJ_SYS_TABLE_FULL = 1000,
	SP_REJ_SYS_TX_FULL = 1001,
	SP_REJ_SYS_REF_EXHAUSTED = 1002,
	/* the journal cannot record it (disk full): docs/durability.md */
	SP_REJ_SYS_JOURNAL = 1003,
};

/* Why an order ended in Canceled (or Expired). */
enum sp_cancel_reason {
	SP_CXL_USER = 1,        /* the strategy's Cancel or MassCancel */
	SP_CXL_IOC = 2,         /* IOC remainder: the order is Expired */
	SP_CXL_VENUE = 3,       /* the venue canceled it for its own reasons */
};

/* SessionReject reasons, for messages that could not be read as what
 * they claim to be. */
enum sp_session_reject_reason {
	SP_SREJ_UNKNOWN_TYPE = 1,
	SP_SREJ_BAD_LENGTH = 2,
};

enum sp_retransmit_reject_reason {
	SP_RTX_TOO_OLD = 1,  /* older than the replay buffer holds */
	SP_RTX_NOT_SENT = 2, /* not sent yet */
};

enum sp_login_reject_reason {
	SP_LREJ_DISABLED = 1,
	SP_LREJ_BAD_SEQ = 2, /* strategy expects a sequence number never sent */
};

struct sp_header {
	uint8_t version;
	uint8_t type;
	uint16_t length; /* whole message, header included */
	uint32_t session_id;
	uint64_t seq;
	uint64_t timestamp_ns; /* sender's clock */
};

struct sp_login {
	struct sp_header hdr;
	uint64_t next_expected_seq; /* next appliance seq the strategy expects */
};

/* Asks the other side to send messages from_seq .. from_seq + count - 1
 * again.  Session level: header.seq is the sender's next number. */
struct sp_retransmit_request {
	struct sp_header hdr;
	uint64_t from_seq;
	uint32_t count;
	uint32_t reserved;
};

struct sp_retransmit_reject {
	struct sp_header hdr;
	uint64_t from_seq;
	uint32_t count;
	uint8_t reason; /* enum sp_retransmit_reject_reason */
	uint8_t reserved[3];
};

struct sp_new_order {
	struct sp_header hdr;
	uint64_t cl_ord_id;
	uint32_t account;
	uint8_t side;
	uint8_t ord_type;
	uint8_t tif;
	uint8_t flags;
	char symbol[8]; /* left-justified, space padded */
	int64_t price;  /* SP_PRICE_SCALE; 0 for market orders */
	uint32_t qty;
	uint16_t venue; /* 0: the router chooses; else direct market access */
	uint16_t reserved;
};

struct sp_modify {
	struct sp_header hdr;
	uint64_t cl_ord_id;
	int64_t new_price;
	uint32_t new_qty; /* new total order quantity, as in OUCH */
	uint32_t reserved;
};

struct sp_cancel {
	struct sp_header hdr;
	uint64_t cl_ord_id;
};

struct sp_mass_cancel {
	struct sp_header hdr;
	uint32_t account;
	uint32_t reserved;
};

struct sp_login_accepted {
	struct sp_header hdr;
	uint64_t next_expected_seq; /* next strategy seq the appliance expects */
};

struct sp_login_rejected {
	struct sp_header hdr;
	uint8_t reason;
	uint8_t reserved[7];
};

struct sp_accepted {
	struct sp_header hdr;
	uint64_t cl_ord_id;
	int64_t price;
	uint32_t qty;
	uint16_t venue;
	uint16_t reserved;
};

struct sp_rejected {
	struct sp_header hdr;
	uint64_t cl_ord_id;
	uint16_t reason;   /* enum sp_reject_reason */
	uint8_t ref_type;  /* the message rejected: NewOrder, Modify or Cancel */
	uint8_t venue_code; /* the venue's own reason, for VENUE_REJECTED */
	uint32_t reserved;
};

struct sp_replaced {
	struct sp_header hdr;
	uint64_t cl_ord_id;
	int64_t price;
	uint32_t qty;    /* new total order quantity */
	uint32_t leaves_qty;
};

struct sp_canceled {
	struct sp_header hdr;
	uint64_t cl_ord_id;
	uint32_t canceled_qty;
	uint32_t leaves_qty;
	uint8_t reason; /* enum sp_cancel_reason */
	uint8_t reserved[7];
};

struct sp_fill {
	struct sp_header hdr;
	uint64_t cl_ord_id;
	int64_t last_price;
	uint32_t last_qty;
	uint32_t cum_qty;
	uint32_t leaves_qty;
	uint32_t reserved;
	uint64_t match_number;
};

struct sp_session_reject {
	struct sp_header hdr;
	uint64_t ref_seq;  /* seq of the message rejected */
	uint8_t reason;    /* enum sp_session_reject_reason */
	uint8_t ref_type;  /* its type byte as received */
	uint8_t reserved[6];
};

#ifndef OMS_CFFI
#define SP_STATIC_SIZE(t, n) _Static_assert(sizeof(struct t) == (n), #t)
SP_STATIC_SIZE(sp_header, 24);
SP_STATIC_SIZE(sp_login, 32);
SP_STATIC_SIZE(sp_retransmit_request, 40);
SP_STATIC_SIZE(sp_retransmit_reject, 40);
SP_STATIC_SIZE(sp_new_order, 64);
SP_STATIC_SIZE(sp_modify, 48);
SP_STATIC_SIZE(sp_cancel, 32);
SP_STATIC_SIZE(sp_mass_cancel, 32);
SP_STATIC_SIZE(sp_login_accepted, 32);
SP_STATIC_SIZE(sp_login_rejected, 32);
SP_STATIC_SIZE(sp_accepted, 48);
SP_STATIC_SIZE(sp_rejected, 40);
SP_STATIC_SIZE(sp_replaced, 48);
SP_STATIC_SIZE(sp_canceled, 48);
SP_STATIC_SIZE(sp_fill, 64);
SP_STATIC_SIZE(sp_session_reject, 40);
#endif

#endif
