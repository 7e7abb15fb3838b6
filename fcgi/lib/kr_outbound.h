/*
 * kr_outbound: the guard of every outbound HTTP call (style.md, "Outbound HTTP"), shared by
 * the provider calls (kr_llm) and the notifications (kr_telegram).
 */
#ifndef KR_OUTBOUND_H
#define KR_OUTBOUND_H

#include <netinet/in.h>
#include <stddef.h>

#include <curl/curl.h>

#include "kr_buf.h"

/* 1 when sa is a public address; 0 for loopback, private, link-local, unique-local, etc. */
int	kr_outbound_addr_public(const void *sa, size_t salen);

/*
 * kr_outbound_open_socket, as CURLOPT_OPENSOCKETFUNCTION with a struct kr_outbound_guard as
 * CURLOPT_OPENSOCKETDATA, refuses every address that is not public (kr_outbound_addr_public)
 * unless the origin is allowlisted, and notes the first refused one. kr_outbound_keep_body,
 * as CURLOPT_WRITEFUNCTION with a struct kr_buf as CURLOPT_WRITEDATA, keeps the body up to
 * the buffer's maximum and fails the transfer (CURLE_WRITE_ERROR) past it.
 */
struct kr_outbound_guard {
	int	allowlisted;
	int	refused;			/* an address was refused */
	char	refused_addr[INET6_ADDRSTRLEN];	/* "?" when unprintable */
};
curl_socket_t	kr_outbound_open_socket(void *guard, curlsocktype purpose,
		    struct curl_sockaddr *a);
size_t		kr_outbound_keep_body(char *p, size_t size, size_t n, void *buf);

#endif
