/* Hot standby: the journal streamed to a backup, acknowledgements, takeover
 * and fencing (replication.h, docs/durability.md "Hot standby"). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "replication.h"

#define ALIGN8(x) (((uint64_t)(x) + 7) & ~(uint64_t)7)
/* a backup's receive buffer: the largest record it can take whole */
#define RBUF_BYTES (8u << 20)
/* a primary sends at most this much catch-up per poll, so that a backup
 * joining a long journal does not stall the loop */
#define PUSH_SLICE (1u << 20)
#define CONNECT_EVERY_NS 20000000ull

/* Control messages share the record header's size and place of the magic,
 * so the reader tells them from records ('J''R') by the first word. */
enum {
	MSG_MAGIC = 0x52500000, /* 'R' 'P' */
	MSG_HELLO = 1,          /* backup -> primary: seq = the next it needs */
	MSG_WELCOME = 2,        /* primary -> backup: epoch */
	MSG_ACK = 3,            /* backup -> primary: seq = the highest it holds */
	MSG_HEARTBEAT = 4,      /* primary -> backup: seq = its last */
	MSG_FENCE = 5,          /* a new primary's epoch */
};

struct repl_msg {
	uint32_t magic_type;
	uint32_t length; /* 0 */
	uint32_t crc;
	uint32_t reserved; /* HELLO: the CRC of the backup's record seq - 1 */
	uint64_t seq;
	uint64_t epoch;
};

struct oms_repl {
	struct oms_repl_config cfg;
	struct oms_journal *j;
	struct oms_core *core;
	int role;
	uint64_t epoch;
	int lfd;
	int cfd;
	int connecting;    /* backup: a non-blocking connect under way */
	int hello_done;    /* primary: the backup said where it stands */
	int ever_connected;
	uint64_t send_off; /* primary: journal bytes sent */
	uint64_t whole_off; /* primary: send_off when it last ended a record */
	uint64_t acked;    /* primary: the backup's highest; backup: applied */
	uint64_t peer_seq;
	uint64_t last_rx_ns;
	uint64_t last_ack_ns; /* primary: when the backup last acknowledged */
	uint64_t lease_ns;    /* primary: how long after it it may transmit */
	uint64_t last_tx_ns;
	uint64_t last_poll_ns;
	uint64_t next_connect_ns;
	uint64_t fence_req; /* oms_repl_fence, any thread */
	int in_sync;
	/* backup: its primary welcomed it, and it once held all the primary
	 * had (its heartbeat's seq): only such a backup may take over */
	int welcomed;
	int caught_up;
	int hb_seen;
	uint32_t rlen;
	uint8_t *rbuf;                /* backup: what the link brought */
	struct repl_msg ctl[64];      /* primary: what the backup sent */
	const char *hold_dir; /* test hook: OMS_REPL_TEST_HOLD */
	uint16_t strategy_udp;
	struct oms_repl_stats st;
};

static uint32_t record_crc_at(const struct oms_repl *r, uint64_t seq);

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void note(const struct oms_repl *r, const char *what)
{
	fprintf(stderr, "omsctl: replication (epoch %llu): %s\n", (unsigned long long)r->epoch,
		what);
}

static uint32_t msg_crc(const struct repl_msg *m)
{
	struct repl_msg c = *m;

	c.crc = 0;
	return oms_crc32c(0, &c, sizeof(c));
}

static void drop_link(struct oms_repl *r, const char *why)
{
	if (r->cfd >= 0) {
		close(r->cfd);
		r->cfd = -1;
		r->st.disconnects++;
		note(r, why);
	}
	r->connecting = 0;
	r->hello_done = 0;
	r->in_sync = 0;
	r->rlen = 0;
}

/* A whole control message or the link goes: they are 32 bytes into a
 * socket buffer that holds megabytes, so a partial send means trouble. */
static int send_msg(struct oms_repl *r, uint32_t type, uint64_t seq, uint64_t epoch)
{
	struct repl_msg m = {.magic_type = MSG_MAGIC | type, .seq = seq, .epoch = epoch};

	/* a HELLO names its last record by its CRC (the primary checks it) */
	if (type == MSG_HELLO)
		m.reserved = record_crc_at(r, seq - 1);

	if (r->cfd < 0)
		return -1;
	m.crc = msg_crc(&m);
	if (send(r->cfd, &m, sizeof(m), MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)sizeof(m)) {
		drop_link(r, "link lost (send)");
		return -1;
	}
	r->last_tx_ns = mono_ns();
	return 0;
}

static void set_degraded(struct oms_repl *r, int on, const char *why)
{
	if ((int)r->st.degraded == on)
		return;
	r->st.degraded = (uint64_t)on;
	if (r->cfg.degrade == OMS_REPL_REJECT_NEW)
		oms_journal_set_blocked(r->j, on);
	note(r, why);
}

static void fence(struct oms_repl *r, uint64_t epoch)
{
	char why[128];

	r->role = OMS_REPL_FENCED;
	r->st.fenced_by = epoch;
	snprintf(why, sizeof(why), "fenced by epoch %llu: transmitting nothing more",
		 (unsigned long long)epoch);
	note(r, why);
	drop_link(r, "link closed (fenced)");
}

/* The CRC of record `seq` of our journal (0 when it holds none such): the
 * check that a joining backup's history is a prefix of the primary's. */
static uint32_t record_crc_at(const struct oms_repl *r, uint64_t seq)
{
	uint64_t end, off = oms_journal_offset_of(r->j, seq);
	const uint8_t *base = oms_journal_data(r->j, &end);

	if (seq == 0 || off == UINT64_MAX || off + OMS_JOURNAL_RECORD > end)
		return 0;
	return ((const struct oms_journal_record *)(base + off))->crc;
}

/* ---- The primary ---------------------------------------------------------- */

/* Send what the journal holds past send_off (whole records were published
 * by the writer, this same thread); a short send leaves the rest for the
 * next call. */
static void push(struct oms_repl *r, uint64_t limit)
{
	uint64_t end;
	const uint8_t *base = oms_journal_data(r->j, &end);

	if (r->cfd < 0 || !r->hello_done || r->send_off >= end)
		return;
	uint64_t len = end - r->send_off < limit ? end - r->send_off : limit;
	ssize_t n = send(r->cfd, base + r->send_off, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			drop_link(r, "link lost (send)");
		return;
	}
	r->send_off += (uint64_t)n;
	if (r->send_off == end)
		r->whole_off = end;
	r->st.bytes_sent += (uint64_t)n;
	r->st.sends++;
	r->last_tx_ns = mono_ns();
}

static void on_hello(struct oms_repl *r, const struct repl_msg *m)
{
	char why[160];

	if (m->epoch > r->epoch) {
		fence(r, m->epoch);
		return;
	}
	uint64_t off = oms_journal_offset_of(r->j, m->seq);
	if (off == UINT64_MAX) {
		snprintf(why, sizeof(why), "the backup asks for seq %llu, which this journal does "
			 "not hold: refused", (unsigned long long)m->seq);
		drop_link(r, why);
		return;
	}
	if (m->seq > 1 && record_crc_at(r, m->seq - 1) != m->reserved) {
		/* its journal holds records this one does not: another history */
		snprintf(why, sizeof(why), "the backup's journal differs from this one at seq %llu "
			 "(another history): refused; start it with an empty journal",
			 (unsigned long long)(m->seq - 1));
		drop_link(r, why);
		return;
	}
	r->send_off = off;
	r->whole_off = off;
	r->acked = m->seq - 1;
	r->hello_done = 1;
	snprintf(why, sizeof(why), "backup joined at seq %llu", (unsigned long long)m->seq);
	note(r, why);
	send_msg(r, MSG_WELCOME, oms_journal_next_seq(r->j) - 1, r->epoch);
}

/* Everything the backup has sent: acks, its hello, a fence.  -1 when the
 * link is gone. */
static int primary_read(struct oms_repl *r)
{
	struct repl_msg *m = r->ctl; /* a partial message waits there for its rest */

	if (r->cfd < 0)
		return -1;
	for (;;) {
		ssize_t n = recv(r->cfd, (uint8_t *)m + r->rlen, sizeof(r->ctl) - r->rlen,
				 MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
			drop_link(r, "backup gone (link closed): going on alone");
			set_degraded(r, 1, "degraded: no backup holds what follows");
			return -1;
		}
		if (n < 0)
			break;
		r->rlen += (uint32_t)n;
		uint32_t k = r->rlen / sizeof(m[0]);
		for (uint32_t i = 0; i < k && r->role == OMS_REPL_PRIMARY; i++) {
			if ((m[i].magic_type & 0xffff0000u) != MSG_MAGIC || msg_crc(&m[i]) != m[i].crc) {
				drop_link(r, "garbage on the link: closed");
				return -1;
			}
			switch (m[i].magic_type & 0xffff) {
			case MSG_HELLO:
				on_hello(r, &m[i]);
				break;
			case MSG_ACK:
				if (m[i].seq > r->acked)
					r->acked = m[i].seq;
				r->last_ack_ns = mono_ns();
				break;
			case MSG_FENCE:
				if (m[i].epoch > r->epoch)
					fence(r, m[i].epoch);
				break;
			}
		}
		if (r->cfd < 0)
			return -1;
		r->rlen -= k * (uint32_t)sizeof(m[0]);
		memmove(m, (uint8_t *)m + k * sizeof(m[0]), r->rlen);
	}
	r->st.acked_seq = r->acked;
	if (r->hello_done && !r->in_sync && r->acked + 1 >= oms_journal_next_seq(r->j) &&
	    mono_ns() - r->last_ack_ns < r->lease_ns) {
		r->in_sync = 1;
		set_degraded(r, 0, "backup in sync: acknowledgements gate the output again");
	}
	return 0;
}

static void accept_backup(struct oms_repl *r)
{
	int fd = accept4(r->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	int one = 1;

	if (fd < 0)
		return;
	if (r->cfd >= 0) {
		close(fd); /* one backup at a time */
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	r->cfd = fd;
	r->rlen = 0;
	r->st.connects++;
	note(r, "backup connected");
}

/* The test hook (OMS_REPL_TEST_HOLD=DIR): when DIR/arm exists and this core
 * call sends to a venue, hold here - phase 0: before the records go to the
 * backup, 1: after, before its ack; armed by DIR/arm0 or DIR/arm1, taken by
 * one instance only (rename) - and say so in DIR/held, so that a test
 * can kill the primary in that window.  Never set in production. */
static void test_hold(struct oms_repl *r, int phase)
{
	char path[512];
	uint32_t n = oms_core_tx_count(r->core);
	const uint8_t *tx = oms_core_tx_buf(r->core);
	int venue = 0;

	for (uint32_t i = 0; i < n && !venue; i++) {
		const uint8_t *f = tx + (size_t)i * OMS_TX_SLOT;
		venue = ((f[34] << 8) | f[35]) != r->strategy_udp;
	}
	if (!venue)
		return;
	char taken[520];
	snprintf(path, sizeof(path), "%s/arm%d", r->hold_dir, phase);
	snprintf(taken, sizeof(taken), "%s/taken.%d", r->hold_dir, (int)getpid());
	if (rename(path, taken) != 0) /* not armed, or another instance took it */
		return;
	unlink(taken);
	snprintf(path, sizeof(path), "%s/held.tmp", r->hold_dir);
	FILE *f = fopen(path, "w");
	if (f) {
		char done[520];
		fprintf(f, "{\"phase\": %d, \"seq\": %llu, \"wall_ns\": %llu}\n", phase,
			(unsigned long long)(oms_journal_next_seq(r->j) - 1),
			(unsigned long long)wall_ns());
		fclose(f);
		snprintf(done, sizeof(done), "%s/held", r->hold_dir);
		rename(path, done);
	}
	r->st.held++;
	/* the test kills us in here; alive until then (heartbeats, between
	 * whole records), so that the backup learns of the death from the link */
	for (int i = 0; i < 2000; i++) {
		usleep(1000);
		if (r->cfd >= 0 && r->send_off == r->whole_off)
			send_msg(r, MSG_HEARTBEAT, r->acked, r->epoch);
	}
}

void oms_repl_commit(void *arg)
{
	struct oms_repl *r = arg;

	if (r->role != OMS_REPL_PRIMARY)
		return;
	primary_read(r);
	if (r->role != OMS_REPL_PRIMARY)
		return;
	if (r->hold_dir)
		test_hold(r, 0);
	push(r, UINT64_MAX);
	if (r->hold_dir)
		test_hold(r, 1);
	if (!r->cfg.sync || !r->in_sync)
		return;
	uint64_t target = oms_journal_next_seq(r->j) - 1;
	if (r->acked >= target)
		return;
	uint64_t t0 = mono_ns(), limit = (uint64_t)r->cfg.ack_wait_us * 1000ull, waited = 0;
	r->st.ack_waits++;
	while (r->acked < target && r->role == OMS_REPL_PRIMARY) {
		uint64_t end;
		oms_journal_data(r->j, &end);
		if (r->send_off < end)
			push(r, UINT64_MAX);
		waited = mono_ns() - t0;
		if (waited >= limit) {
			r->st.ack_timeouts++;
			r->in_sync = 0;
			set_degraded(r, 1, "degraded: the backup's ack did not come in time");
			break;
		}
		struct pollfd pfd = {.fd = r->cfd, .events = POLLIN};
		uint64_t left = limit - waited;
		struct timespec ts = {.tv_sec = (time_t)(left / 1000000000ull),
				      .tv_nsec = (long)(left % 1000000000ull)};
		ppoll(&pfd, 1, &ts, NULL);
		if (primary_read(r))
			break; /* gone: degraded, or fenced */
	}
	waited = mono_ns() - t0;
	r->st.ack_wait_ns += waited;
	if (waited > r->st.ack_wait_max_ns)
		r->st.ack_wait_max_ns = waited;
}

static int primary_poll(struct oms_repl *r)
{
	uint64_t now = mono_ns();

	if (now - r->last_poll_ns < (uint64_t)r->cfg.poll_us * 1000ull)
		return OMS_REPL_ACTIVE;
	r->last_poll_ns = now;
	if (r->cfd < 0)
		accept_backup(r);
	if (r->cfd >= 0) {
		primary_read(r);
		push(r, PUSH_SLICE);
		uint64_t end;
		oms_journal_data(r->j, &end);
		if (r->cfd >= 0 && r->hello_done && r->send_off == end &&
		    now - r->last_tx_ns >= (uint64_t)r->cfg.heartbeat_us * 1000ull &&
		    send_msg(r, MSG_HEARTBEAT, oms_journal_next_seq(r->j) - 1, r->epoch) == 0)
			r->st.heartbeats_sent++;
	}
	return r->role == OMS_REPL_PRIMARY ? OMS_REPL_ACTIVE : OMS_REPL_PASSIVE;
}

/* ---- The backup ----------------------------------------------------------- */

static void try_connect(struct oms_repl *r, uint64_t now)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(r->cfg.peer_port),
				 .sin_addr.s_addr = htonl(r->cfg.peer_ip)};
	int one = 1;

	if (r->connecting) {
		struct pollfd pfd = {.fd = r->cfd, .events = POLLOUT};
		int err = 0;
		socklen_t len = sizeof(err);
		if (poll(&pfd, 1, 0) <= 0)
			return;
		getsockopt(r->cfd, SOL_SOCKET, SO_ERROR, &err, &len);
		r->connecting = 0;
		if (err) {
			close(r->cfd);
			r->cfd = -1;
			return;
		}
		r->ever_connected = 1;
		r->last_rx_ns = now;
		r->st.connects++;
		note(r, "connected to the primary");
		send_msg(r, MSG_HELLO, oms_journal_next_seq(r->j), r->epoch);
		return;
	}
	if (now < r->next_connect_ns)
		return;
	r->next_connect_ns = now + CONNECT_EVERY_NS;
	r->cfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (r->cfd < 0)
		return;
	setsockopt(r->cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(r->cfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EINPROGRESS) {
		r->connecting = 1;
		return;
	}
	close(r->cfd);
	r->cfd = -1;
}

/* The records and messages in rbuf, whole ones only: records checked,
 * appended to our journal, applied to our core.  -1: the stream is broken
 * (this backup cannot follow it and must not take over). */
static int backup_take(struct oms_repl *r)
{
	uint32_t off = 0;
	char err[256];

	while (r->rlen - off >= OMS_JOURNAL_RECORD) {
		const struct oms_journal_record *h = (const void *)(r->rbuf + off);
		if ((h->magic_type & 0xffff0000u) == MSG_MAGIC) {
			const struct repl_msg *m = (const void *)h;
			if (msg_crc(m) != m->crc)
				goto broken;
			uint32_t type = m->magic_type & 0xffff;
			if (type == MSG_WELCOME) {
				r->welcomed = 1;
				if (m->epoch > r->epoch) {
					r->epoch = m->epoch;
					oms_journal_set_epoch(r->j, r->epoch);
				}
			}
			if (type == MSG_HEARTBEAT || type == MSG_WELCOME)
				r->peer_seq = m->seq;
			if (type == MSG_HEARTBEAT)
				r->hb_seen = 1; /* answered: the primary's lease */
			off += OMS_JOURNAL_RECORD;
			continue;
		}
		uint64_t total = OMS_JOURNAL_RECORD + ALIGN8(h->length);
		if (total > RBUF_BYTES) {
			snprintf(err, sizeof(err), "record %llu of %llu bytes: too big for the link",
				 (unsigned long long)h->seq, (unsigned long long)total);
			goto failed;
		}
		if (r->rlen - off < total)
			break;
		if (h->seq != oms_journal_next_seq(r->j)) {
			snprintf(err, sizeof(err), "seq %llu where %llu was due",
				 (unsigned long long)h->seq,
				 (unsigned long long)oms_journal_next_seq(r->j));
			goto failed;
		}
		if (oms_journal_apply(r->core, h, total, NULL, NULL, err, sizeof(err)) != 0)
			goto failed;
		if (oms_journal_append_raw(r->j, h, total) != 0) {
			snprintf(err, sizeof(err), "seq %llu: cannot append to the journal",
				 (unsigned long long)h->seq);
			goto failed;
		}
		r->acked = h->seq;
		r->st.records_applied++;
		off += (uint32_t)total;
	}
	r->rlen -= off;
	memmove(r->rbuf, r->rbuf + off, r->rlen);
	return 0;
broken:
	snprintf(err, sizeof(err), "a control message with a bad CRC");
failed:
	r->st.apply_errors++;
	{
		char why[400];
		snprintf(why, sizeof(why), "the stream cannot be followed (%s): this backup "
			 "gives up and will not take over; restart it", err);
		r->role = OMS_REPL_FENCED;
		drop_link(r, why);
	}
	return -1;
}

static int take_over(struct oms_repl *r, const char *why)
{
	char line[200];

	if (r->cfd >= 0) /* the old primary, if it is only paused, learns it */
		send_msg(r, MSG_FENCE, r->acked, r->epoch + 1);
	drop_link(r, why);
	r->epoch++;
	oms_journal_set_epoch(r->j, r->epoch);
	r->role = OMS_REPL_PRIMARY;
	r->st.takeovers++;
	r->st.takeover_ns = wall_ns();
	r->send_off = 0;
	r->acked = 0;
	r->last_poll_ns = 0;
	oms_journal_set_commit_hook(r->j, oms_repl_commit, r);
	set_degraded(r, 1, "degraded: no backup yet");
	snprintf(line, sizeof(line), "took over as primary at seq %llu (wall clock %llu ns)",
		 (unsigned long long)(oms_journal_next_seq(r->j) - 1),
		 (unsigned long long)r->st.takeover_ns);
	note(r, line);
	return OMS_REPL_TAKEOVER;
}

static int backup_poll(struct oms_repl *r)
{
	uint64_t now = mono_ns();

	if (r->cfd < 0 || r->connecting) {
		try_connect(r, now);
		return OMS_REPL_PASSIVE;
	}
	uint64_t applied = r->acked;
	int closed = 0;
	for (int i = 0; i < 16; i++) {
		ssize_t n = recv(r->cfd, r->rbuf + r->rlen, RBUF_BYTES - r->rlen, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
			closed = 1;
			break;
		}
		if (n < 0)
			break;
		r->rlen += (uint32_t)n;
		r->last_rx_ns = now;
		if (backup_take(r))
			return OMS_REPL_PASSIVE;
	}
	r->st.acked_seq = r->acked;
	if (r->acked != applied || r->hb_seen)
		send_msg(r, MSG_ACK, r->acked, r->epoch);
	r->hb_seen = 0;
	if (r->welcomed && r->peer_seq && r->acked >= r->peer_seq && !r->caught_up) {
		r->caught_up = 1;
		note(r, "caught up with the primary");
	}
	/* not yet welcomed: its primary-to-be may still be a backup itself,
	 * which accepts once it takes over */
	int quiet = r->welcomed && now - r->last_rx_ns > (uint64_t)r->cfg.timeout_us * 1000ull;
	if ((closed || quiet) && !r->caught_up) {
		/* it holds a prefix of the primary's history at best: taking
		 * over would lose what the primary acknowledged since */
		drop_link(r, closed ? "the primary's link closed before this backup caught up: "
				      "not taking over" : "the primary went quiet before this backup "
				      "caught up: not taking over");
		r->welcomed = 0;
		return OMS_REPL_PASSIVE;
	}
	if (closed)
		return take_over(r, "the primary's link closed: taking over");
	if (quiet)
		return take_over(r, "the primary went quiet: taking over");
	return OMS_REPL_PASSIVE;
}

/* ---- Both ------------------------------------------------------------------ */

int oms_repl_poll(struct oms_repl *r)
{
	uint64_t want = __atomic_load_n(&r->fence_req, __ATOMIC_ACQUIRE);

	if (want > r->epoch && r->role != OMS_REPL_FENCED)
		fence(r, want);
	if (r->role == OMS_REPL_PRIMARY)
		return primary_poll(r);
	if (r->role == OMS_REPL_BACKUP)
		return backup_poll(r);
	return OMS_REPL_PASSIVE;
}

/* A primary whose backup is in sync transmits only while its lease holds:
 * within lease_ns (timeout_us / 2) of the backup's last ack, before which
 * the backup cannot have taken over.  So a primary paused anywhere - even
 * between its last check of the link and a send - and resumed after a
 * takeover sends nothing, not even an ARP reply, before it reads the
 * FENCE.  With sync every output follows a fresh ack; idle, the backup
 * answers each heartbeat. */
int oms_repl_may_transmit(const struct oms_repl *r)
{
	return r->role == OMS_REPL_PRIMARY &&
	       (!r->cfg.sync || !r->in_sync || mono_ns() - r->last_ack_ns < r->lease_ns);
}

void oms_repl_count_fenced(struct oms_repl *r, uint32_t n)
{
	r->st.tx_fenced += n;
}

void oms_repl_fence(struct oms_repl *r, uint64_t epoch)
{
	__atomic_store_n(&r->fence_req, epoch, __ATOMIC_RELEASE);
}

void oms_repl_stats(const struct oms_repl *r, struct oms_repl_stats *out)
{
	*out = r->st;
	out->role = (uint64_t)r->role;
	out->epoch = r->epoch;
	out->connected = r->cfd >= 0 && !r->connecting;
	out->in_sync = (uint64_t)(r->role == OMS_REPL_BACKUP ? r->caught_up : r->in_sync);
	out->peer_seq = r->peer_seq;
}

struct oms_repl *oms_repl_open(const struct oms_repl_config *cfg, struct oms_journal *j,
			       struct oms_core *core, char *err, unsigned errlen)
{
	struct oms_repl *r = calloc(1, sizeof(*r));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(cfg->listen_port),
				 .sin_addr.s_addr = htonl(cfg->listen_ip)};
	int one = 1;

	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->cfg = *cfg;
	r->j = j;
	r->core = core;
	r->role = cfg->role;
	r->epoch = oms_journal_epoch(j);
	r->cfd = -1;
	r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	r->hold_dir = getenv("OMS_REPL_TEST_HOLD");
	r->strategy_udp = cfg->strategy_udp;
	if (r->cfg.poll_us == 0)
		r->cfg.poll_us = 100;
	r->lease_ns = (uint64_t)r->cfg.timeout_us * 500ull;
	if (r->lfd < 0 || setsockopt(r->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(r->lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(r->lfd, 4)) {
		snprintf(err, errlen, "replication: cannot listen on %s:%u: %s",
			 inet_ntoa(sa.sin_addr), cfg->listen_port, strerror(errno));
		goto out;
	}
	if (cfg->role == OMS_REPL_BACKUP) {
		r->rbuf = malloc(RBUF_BYTES);
		if (!r->rbuf) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
	} else if (cfg->role == OMS_REPL_PRIMARY) {
		oms_journal_set_commit_hook(j, oms_repl_commit, r);
		set_degraded(r, 1, "primary: no backup yet");
	} else {
		snprintf(err, errlen, "replication role %d unknown", cfg->role);
		goto out;
	}
	return r;
out:
	oms_repl_close(r);
	return NULL;
}

void oms_repl_close(struct oms_repl *r)
{
	if (!r)
		return;
	if (r->role == OMS_REPL_PRIMARY)
		oms_journal_set_commit_hook(r->j, NULL, NULL);
	if (r->cfd >= 0)
		close(r->cfd);
	if (r->lfd >= 0)
		close(r->lfd);
	free(r->rbuf);
	free(r);
}
