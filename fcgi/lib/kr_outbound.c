/*
 * kr_outbound: the guard of every outbound HTTP call (provider calls, notifications):
 * which addresses a connection may go to, and how much of an answer is kept (kr_outbound.h).
 */
#include "kr_outbound.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

struct v4_range {
	uint32_t	net;
	unsigned	bits;
};

/* Not public: RFC 6890's special-purpose ranges that a provider API never lives in. */
static const struct v4_range v4_closed[] = {
	{ 0x00000000, 8 },	/* "this network" */
	{ 0x0a000000, 8 },	/* private */
	{ 0x64400000, 10 },	/* carrier-grade NAT */
	{ 0x7f000000, 8 },	/* loopback */
	{ 0xa9fe0000, 16 },	/* link-local (cloud metadata) */
	{ 0xac100000, 12 },	/* private */
	{ 0xc0000000, 24 },	/* IETF protocol assignments */
	{ 0xc0000200, 24 },	/* documentation */
	{ 0xc0a80000, 16 },	/* private */
	{ 0xc6120000, 15 },	/* benchmarking */
	{ 0xc6336400, 24 },	/* documentation */
	{ 0xcb007100, 24 },	/* documentation */
	{ 0xe0000000, 4 },	/* multicast */
	{ 0xf0000000, 4 },	/* reserved, broadcast */
};

static int
v4_public(uint32_t a)
{
	for (size_t i = 0; i < sizeof(v4_closed) / sizeof(v4_closed[0]); i++)
		if ((a >> (32 - v4_closed[i].bits)) == (v4_closed[i].net >> (32 - v4_closed[i].bits)))
			return 0;
	return 1;
}

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/*
 * IPv6: loopback, unspecified, link-local fe80::/10, site-local fec0::/10, unique-local
 * fc00::/7, multicast ff00::/8 and documentation 2001:db8::/32 are closed; addresses that
 * carry an IPv4 address (mapped ::ffff:0:0/96, compatible ::/96, NAT64 64:ff9b::/96, 6to4
 * 2002::/16) are judged by that address.
 */
static int
v6_public(const unsigned char *a)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	static const unsigned char nat64[12] = { 0, 0x64, 0xff, 0x9b };
	static const unsigned char zero[12];

	if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0 || memcmp(a, zero, 12) == 0)
		return v4_public(be32(a + 12));
	if (a[0] == 0x20 && a[1] == 0x02)
		return v4_public(be32(a + 2));
	if (a[0] == 0xff || (a[0] & 0xfe) == 0xfc || (a[0] == 0xfe && (a[1] & 0x80) == 0x80))
		return 0;
	return !(a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8);
}

int
kr_outbound_addr_public(const void *sa, size_t salen)
{
	const struct sockaddr *s = sa;
	struct sockaddr_in v4;
	struct sockaddr_in6 v6;

	if (s == NULL || salen < sizeof(s->sa_family))
		return 0;
	if (s->sa_family == AF_INET && salen >= sizeof(v4)) {
		memcpy(&v4, sa, sizeof(v4));
		return v4_public(ntohl(v4.sin_addr.s_addr));
	}
	if (s->sa_family == AF_INET6 && salen >= sizeof(v6)) {
		memcpy(&v6, sa, sizeof(v6));
		return v6_public(v6.sin6_addr.s6_addr);
	}
	return 0;
}

curl_socket_t
kr_outbound_open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct kr_outbound_guard *g = ud;
	const void *ip = NULL;

	if (purpose != CURLSOCKTYPE_IPCXN)
		return CURL_SOCKET_BAD;
	if (!g->allowlisted && !kr_outbound_addr_public(&a->addr, a->addrlen)) {
		if (a->family == AF_INET)
			ip = &((const struct sockaddr_in *)(const void *)&a->addr)->sin_addr;
		else if (a->family == AF_INET6)
			ip = &((const struct sockaddr_in6 *)(const void *)&a->addr)->sin6_addr;
		if (!g->refused && (ip == NULL || inet_ntop(a->family, ip, g->refused_addr,
		    sizeof(g->refused_addr)) == NULL))
			snprintf(g->refused_addr, sizeof(g->refused_addr), "?");
		g->refused = 1;
		return CURL_SOCKET_BAD;
	}
#ifdef SOCK_CLOEXEC
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
#else
	return socket(a->family, a->socktype, a->protocol);
#endif
}

size_t
kr_outbound_keep_body(char *p, size_t size, size_t n, void *ud)
{
	if (size != 1 || kr_buf_add(ud, p, n) != KR_BUF_OK)
		return 0;	/* CURLE_WRITE_ERROR; the buffer's failed says why */
	return n;
}
