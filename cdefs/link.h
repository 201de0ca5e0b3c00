/* ARP and ICMP echo for the appliance's address on DPDK-owned ports. */
#ifndef OMS_LINK_H
#define OMS_LINK_H

#ifndef OMS_CFFI
#include <stdint.h>
#endif

enum { LINK_MAX_FRAME = 1514 };

struct link_stats {
	uint64_t arp_replies;
	uint64_t arp_ignored; /* requests for other addresses, replies, ... */
	uint64_t arp_bad;
	uint64_t icmp_echo_replies;
	uint64_t icmp_ignored;
};

/* 1 when the frame was ARP or ICMP for us (handled: *out_len > 0 means
 * send `out`), 0 when it is the order core's. */
int link_handle(const uint8_t *frame, uint32_t len, const uint8_t mac[6], uint32_t ip,
		uint8_t *out, uint32_t *out_len, struct link_stats *st);
/* A broadcast ARP announcing ip at mac; returns its length. */
uint32_t link_gratuitous_arp(const uint8_t mac[6], uint32_t ip, uint8_t *out);

#endif
