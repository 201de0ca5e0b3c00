#include <string.h>

#include "net.h"

/* 64-bit ones' complement addition: the carry out wraps around. */
static inline uint64_t add_wrap(uint64_t sum, uint64_t v)
{
	sum += v;
	return sum + (sum < v);
}

/* A 64-bit ones' complement sum folded to 16 bits. */
static inline uint16_t fold64(uint64_t sum)
{
	sum = (sum & 0xffffffffu) + (sum >> 32);
	sum = (sum & 0xffffffffu) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* 32 bytes at once.  On x86 one add-with-carry chain (as Linux's
 * csum_partial): a cycle per 8 bytes, where add_wrap's add then carry test
 * takes two dependent steps. */
static inline uint64_t add_wrap32(uint64_t sum, const uint8_t *p)
{
#if defined(__x86_64__)
	__asm__("addq 0(%[p]), %[s]\n\t"
		"adcq 8(%[p]), %[s]\n\t"
		"adcq 16(%[p]), %[s]\n\t"
		"adcq 24(%[p]), %[s]\n\t"
		"adcq $0, %[s]"
		: [s] "+r"(sum)
		: [p] "r"(p), "m"(*(const uint8_t(*)[32])p)
		: "cc");
	return sum;
#else
	uint64_t v[4];
	memcpy(v, p, 32);
	return add_wrap(add_wrap(add_wrap(add_wrap(sum, v[0]), v[1]), v[2]), v[3]);
#endif
}

/* Ones' complement sum of `len` bytes as big-endian 16-bit words, folded to
 * 16 bits.  RFC 1071 §2(B): the sum is independent of byte order, so it is
 * taken over native 64-bit loads and swapped once at the end; the tail is
 * zero-padded into one last word.  Inlined into its few callers: the core
 * bench ran 2 % faster a frame, 4 % with one frame a call. */
static inline __attribute__((always_inline)) uint32_t
csum_bytes(const uint8_t *p, uint32_t len)
{
	uint64_t sum = 0;

	for (; len >= 32; p += 32, len -= 32)
		sum = add_wrap32(sum, p);
	for (; len >= 8; p += 8, len -= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		sum = add_wrap(sum, v);
	}
	uint64_t tail = 0;
	uint32_t shift = 0;
	if (len & 4) {
		uint32_t v;
		memcpy(&v, p, 4);
		tail = v;
		shift = 32;
		p += 4;
	}
	if (len & 2) {
		uint16_t v;
		memcpy(&v, p, 2);
		tail |= (uint64_t)v << shift;
		shift += 16;
		p += 2;
	}
	if (len & 1) /* the odd byte is the high byte of a BE word */
		tail |= (uint64_t)p[0] << shift;
	sum = add_wrap(sum, tail);
	return __builtin_bswap16(fold64(sum));
}

static uint16_t csum_fold(uint32_t sum)
{
	return (uint16_t)~fold64(sum);
}

uint16_t net_ipv4_checksum(const uint8_t *hdr, uint32_t len)
{
	return csum_fold(csum_bytes(hdr, len));
}

/* The usual header, without options, in three loads; with options the
 * general sum. */
static uint16_t ipv4_header_checksum(const uint8_t *hdr, uint32_t ihl)
{
	if (ihl != IPV4_HLEN)
		return net_ipv4_checksum(hdr, ihl);
	uint64_t a, b;
	uint32_t c;
	memcpy(&a, hdr, 8);
	memcpy(&b, hdr + 8, 8);
	memcpy(&c, hdr + 16, 4);
	return (uint16_t)~fold64(add_wrap(add_wrap(a, b), c));
}

/* UDP checksum over the pseudo-header and the datagram (RFC 768); `udp`
 * points at the UDP header, its checksum field included as it is. */
static uint16_t udp_checksum(uint32_t src_ip, uint32_t dst_ip,
			     const uint8_t *udp, uint32_t udp_len)
{
	uint32_t sum = 0;

	sum += src_ip >> 16;
	sum += src_ip & 0xffff;
	sum += dst_ip >> 16;
	sum += dst_ip & 0xffff;
	sum += 17;
	sum += udp_len;
	return csum_fold(sum + csum_bytes(udp, udp_len));
}

int net_parse_udp_opt(const uint8_t *frame, uint32_t len, uint32_t my_ip, int verify_csum,
		      struct net_udp_view *out)
{
	uint32_t off = ETH_HLEN;
	uint16_t ethertype;

	if (len < ETH_HLEN)
		return OMS_DROP_RUNT;
	ethertype = rd_be16(frame + 12);
	if (ethertype == 0x8100) {
		if (len < ETH_HLEN + VLAN_HLEN)
			return OMS_DROP_RUNT;
		ethertype = rd_be16(frame + 16);
		off += VLAN_HLEN;
	}
	if (ethertype != 0x0800)
		return OMS_DROP_NOT_IPV4;

	const uint8_t *ip = frame + off;
	uint32_t avail = len - off;
	if (avail < IPV4_HLEN || (ip[0] >> 4) != 4)
		return OMS_DROP_BAD_IP_HEADER;
	uint32_t ihl = (uint32_t)(ip[0] & 0x0f) * 4;
	if (ihl < IPV4_HLEN || ihl > avail)
		return OMS_DROP_BAD_IP_HEADER;
	uint32_t total = rd_be16(ip + 2);
	/* Ethernet may pad short frames, so only a total length beyond the
	 * frame is wrong */
	if (total < ihl + UDP_HLEN || total > avail)
		return OMS_DROP_BAD_IP_LENGTH;
	if (verify_csum && ipv4_header_checksum(ip, ihl) != 0)
		return OMS_DROP_IP_CHECKSUM;
	if (rd_be16(ip + 6) & 0x3fff) /* MF flag or a fragment offset */
		return OMS_DROP_IP_FRAGMENT;
	if (ip[9] != 17)
		return OMS_DROP_NOT_UDP;
	if (rd_be32(ip + 16) != my_ip)
		return OMS_DROP_NOT_FOR_US;

	const uint8_t *udp = ip + ihl;
	uint32_t udp_len = rd_be16(udp + 4);
	if (udp_len != total - ihl)
		return OMS_DROP_BAD_UDP_LENGTH;
	out->src_ip = rd_be32(ip + 12);
	out->dst_ip = my_ip;
	if (verify_csum && rd_be16(udp + 6) != 0 &&
	    udp_checksum(out->src_ip, my_ip, udp, udp_len) != 0)
		return OMS_DROP_UDP_CHECKSUM;

	out->src_port = rd_be16(udp);
	out->dst_port = rd_be16(udp + 2);
	out->payload = udp + UDP_HLEN;
	out->payload_len = udp_len - UDP_HLEN;
	out->src_mac = frame + 6;
	return OMS_OK;
}

void net_build_udp_opt(uint8_t *frame, const uint8_t src_mac[6],
		   const uint8_t dst_mac[6], uint32_t src_ip, uint32_t dst_ip,
		   uint16_t src_port, uint16_t dst_port, uint32_t payload_len, int offload)
{
	uint8_t *ip = frame + ETH_HLEN;
	uint8_t *udp = ip + IPV4_HLEN;
	uint32_t udp_len = UDP_HLEN + payload_len;

	memcpy(frame, dst_mac, 6);
	memcpy(frame + 6, src_mac, 6);
	wr_be16(frame + 12, 0x0800);

	ip[0] = 0x45;
	ip[1] = 0;
	wr_be16(ip + 2, (uint16_t)(IPV4_HLEN + udp_len));
	/* DF set and no fragmentation ever, so the ID carries nothing
	 * (RFC 6864) and stays 0: output bytes depend only on input */
	wr_be16(ip + 4, 0);
	wr_be16(ip + 6, 0x4000);
	ip[8] = 64;
	ip[9] = 17;
	wr_be16(ip + 10, 0);
	wr_be32(ip + 12, src_ip);
	wr_be32(ip + 16, dst_ip);
	if (!offload) /* the header's words, summed from the values just written */
		wr_be16(ip + 10, csum_fold(0x4500 + IPV4_HLEN + udp_len + 0x4000 + (64 << 8) + 17 +
					   (src_ip >> 16) + (src_ip & 0xffff) + (dst_ip >> 16) +
					   (dst_ip & 0xffff)));

	wr_be16(udp, src_port);
	wr_be16(udp + 2, dst_port);
	wr_be16(udp + 4, (uint16_t)udp_len);
	wr_be16(udp + 6, 0);
	if (offload) {
		uint32_t ph = (src_ip >> 16) + (src_ip & 0xffff) + (dst_ip >> 16) +
			      (dst_ip & 0xffff) + 17 + udp_len;
		while (ph >> 16)
			ph = (ph & 0xffff) + (ph >> 16);
		wr_be16(udp + 6, (uint16_t)ph);
		return;
	}
	uint16_t c = udp_checksum(src_ip, dst_ip, udp, udp_len);
	wr_be16(udp + 6, c ? c : 0xffff); /* 0 means "no checksum" */
}
