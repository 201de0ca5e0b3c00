/* Link-level duties the kernel no longer does for ports DPDK owns: answer
 * ARP requests for the appliance's address, announce it (gratuitous ARP),
 * and answer ICMP echo.  The worker calls link_handle() on every received
 * frame before the order core; frames it takes never reach the core. */
#include <string.h>

#include "link.h"
#include "net.h"

enum { ETH_P_IP = 0x0800, ETH_P_ARP = 0x0806, ARP_LEN = 28 };

static void put_eth(uint8_t *f, const uint8_t dst[6], const uint8_t src[6], uint16_t type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	wr_be16(f + 12, type);
}

static uint32_t put_arp(uint8_t *f, uint16_t op, const uint8_t sha[6], uint32_t spa,
			const uint8_t tha[6], uint32_t tpa)
{
	uint8_t *a = f + ETH_HLEN;

	wr_be16(a, 1);          /* Ethernet */
	wr_be16(a + 2, ETH_P_IP);
	a[4] = 6;
	a[5] = 4;
	wr_be16(a + 6, op);
	memcpy(a + 8, sha, 6);
	wr_be32(a + 14, spa);
	memcpy(a + 18, tha, 6);
	wr_be32(a + 24, tpa);
	/* pad to the Ethernet minimum (60 bytes without the FCS) */
	memset(f + ETH_HLEN + ARP_LEN, 0, 60 - ETH_HLEN - ARP_LEN);
	return 60;
}

uint32_t link_gratuitous_arp(const uint8_t mac[6], uint32_t ip, uint8_t *out)
{
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	static const uint8_t zero[6] = {0};

	put_eth(out, bcast, mac, ETH_P_ARP);
	return put_arp(out, 1, mac, ip, zero, ip);
}

int link_handle(const uint8_t *f, uint32_t len, const uint8_t mac[6], uint32_t ip,
		uint8_t *out, uint32_t *out_len, struct link_stats *st)
{
	if (len < ETH_HLEN)
		return 0;
	uint16_t type = rd_be16(f + 12);

	if (type == ETH_P_ARP) {
		const uint8_t *a = f + ETH_HLEN;
		if (len < ETH_HLEN + ARP_LEN || rd_be16(a) != 1 || rd_be16(a + 2) != ETH_P_IP ||
		    a[4] != 6 || a[5] != 4) {
			st->arp_bad++;
			return 1;
		}
		uint16_t op = rd_be16(a + 6);
		uint32_t tpa = rd_be32(a + 24);
		if (op == 1 && tpa == ip) {
			put_eth(out, a + 8, mac, ETH_P_ARP);
			*out_len = put_arp(out, 2, mac, ip, a + 8, rd_be32(a + 14));
			st->arp_replies++;
		} else {
			st->arp_ignored++;
		}
		return 1;
	}
	if (type != ETH_P_IP || len < ETH_HLEN + IPV4_HLEN)
		return 0;
	const uint8_t *iph = f + ETH_HLEN;
	uint32_t ihl = (uint32_t)(iph[0] & 0x0f) * 4;
	uint32_t total = rd_be16(iph + 2);
	if (iph[9] != 1 || ihl < IPV4_HLEN || total > len - ETH_HLEN || total < ihl + 8 ||
	    rd_be32(iph + 16) != ip)
		return 0; /* not ICMP for us: the core's business (and counters) */
	const uint8_t *icmp = iph + ihl;
	if (icmp[0] != 8) { /* only echo requests need an answer */
		st->icmp_ignored++;
		return 1;
	}
	if (total > LINK_MAX_FRAME - ETH_HLEN) {
		st->icmp_ignored++;
		return 1;
	}
	put_eth(out, f + 6, mac, ETH_P_IP);
	uint8_t *oip = out + ETH_HLEN;
	memcpy(oip, iph, total);
	memcpy(oip + 12, iph + 16, 4); /* swap addresses */
	memcpy(oip + 16, iph + 12, 4);
	oip[8] = 64;
	wr_be16(oip + 10, 0);
	wr_be16(oip + 10, net_ipv4_checksum(oip, ihl));
	uint8_t *oicmp = oip + ihl;
	oicmp[0] = 0; /* echo reply */
	wr_be16(oicmp + 2, 0);
	wr_be16(oicmp + 2, net_ipv4_checksum(oicmp, total - ihl));
	*out_len = ETH_HLEN + total;
	st->icmp_echo_replies++;
	return 1;
}
