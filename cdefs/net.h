/* Ethernet / 802.1Q / IPv4 / UDP: parsing of received frames and building
 * of transmitted ones.  Addresses are kept in host byte order. */
#ifndef OMS_NET_H
#define OMS_NET_H

#include <stddef.h>
#include <stdint.h>

#include "oms_core.h"

#define ETH_HLEN 14
#define VLAN_HLEN 4
#define IPV4_HLEN 20
#define UDP_HLEN 8
/* headers of every frame the core builds: untagged Ethernet, IPv4 without
 * options, UDP */
#define NET_TX_HLEN (ETH_HLEN + IPV4_HLEN + UDP_HLEN)

struct net_udp_view {
	const uint8_t *payload;
	uint32_t payload_len;
	uint32_t src_ip;
	uint32_t dst_ip;
	uint16_t src_port;
	uint16_t dst_port;
	const uint8_t *src_mac;
};

/* Returns OMS_OK or the OMS_DROP_* reason the frame is not a UDP datagram
 * for `my_ip`. */
int net_parse_udp(const uint8_t *frame, uint32_t len, uint32_t my_ip,
		  struct net_udp_view *out);

/* Writes Ethernet, IPv4 and UDP headers in front of a payload already
 * placed at frame + NET_TX_HLEN, with both checksums. */
void net_build_udp(uint8_t *frame, const uint8_t src_mac[6],
		   const uint8_t dst_mac[6], uint32_t src_ip, uint32_t dst_ip,
		   uint16_t src_port, uint16_t dst_port, uint32_t payload_len);

uint16_t net_ipv4_checksum(const uint8_t *hdr, uint32_t len);

static inline uint16_t rd_be16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t rd_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t rd_be64(const uint8_t *p)
{
	return ((uint64_t)rd_be32(p) << 32) | rd_be32(p + 4);
}

static inline void wr_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void wr_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void wr_be64(uint8_t *p, uint64_t v)
{
	wr_be32(p, (uint32_t)(v >> 32));
	wr_be32(p + 4, (uint32_t)v);
}

#endif
