/* Ethernet / 802.1Q / IPv4 / UDP: parsing of received frames and building
 * of transmitted ones.  Addresses are kept in host byte order. */
#ifndef OMS_NET_H
#define OMS_NET_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "oms_core.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the wire helpers assume a little-endian host (x86, arm64)"
#endif

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
int net_parse_udp_opt(const uint8_t *frame, uint32_t len, uint32_t my_ip, int verify_csum,
		      struct net_udp_view *out);
static inline int net_parse_udp(const uint8_t *frame, uint32_t len, uint32_t my_ip,
				struct net_udp_view *out)
{
	return net_parse_udp_opt(frame, len, my_ip, 1, out);
}

/* Writes Ethernet, IPv4 and UDP headers in front of a payload already
 * placed at frame + NET_TX_HLEN, with both checksums - or, with
 * `offload`, with what a NIC's checksum offload expects (IPv4 checksum 0,
 * the pseudo-header sum in the UDP checksum). */
void net_build_udp_opt(uint8_t *frame, const uint8_t src_mac[6],
		       const uint8_t dst_mac[6], uint32_t src_ip, uint32_t dst_ip,
		       uint16_t src_port, uint16_t dst_port, uint32_t payload_len, int offload);
static inline void net_build_udp(uint8_t *frame, const uint8_t src_mac[6],
				 const uint8_t dst_mac[6], uint32_t src_ip, uint32_t dst_ip,
				 uint16_t src_port, uint16_t dst_port, uint32_t payload_len)
{
	net_build_udp_opt(frame, src_mac, dst_mac, src_ip, dst_ip, src_port, dst_port,
			  payload_len, 0);
}

uint16_t net_ipv4_checksum(const uint8_t *hdr, uint32_t len);

/* Big-endian loads and stores at any alignment: one load or store and a
 * byte swap (movbe), not four byte operations. */
static inline uint16_t rd_be16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return __builtin_bswap16(v);
}

static inline uint32_t rd_be32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return __builtin_bswap32(v);
}

static inline uint64_t rd_be64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return __builtin_bswap64(v);
}

static inline void wr_be16(uint8_t *p, uint16_t v)
{
	v = __builtin_bswap16(v);
	memcpy(p, &v, 2);
}

static inline void wr_be32(uint8_t *p, uint32_t v)
{
	v = __builtin_bswap32(v);
	memcpy(p, &v, 4);
}

static inline void wr_be64(uint8_t *p, uint64_t v)
{
	v = __builtin_bswap64(v);
	memcpy(p, &v, 8);
}

#endif
