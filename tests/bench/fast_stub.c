/*
 * fast_stub: a benchmark-only stand-in for the Anthropic Messages API. Every request gets a
 * 200 after a fixed delay: POST -> a messages answer, GET -> a models list. Nothing is
 * checked (no key, no body validation): tests/stub/stub_provider.py is the real stub; this
 * one exists because that asyncio server cannot keep 2,000 one-second calls at 2,000/s.
 *
 * One thread, epoll, HTTP/1.1 keep-alive (Content-Length bodies, Expect: 100-continue), no
 * TLS. The delay is the same for every request, so answers fall due in arrival order and a
 * FIFO is the timer queue.
 *
 *   cc -O2 -o fast_stub fast_stub.c
 *   fast_stub --port-file FILE [--port N] [--delay-ms MS]
 *
 * Writes the port to FILE once it accepts connections; runs until SIGTERM or SIGINT.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX	(64 * 1024)
#define BODY_MAX	(32 * 1024 * 1024)

static const char msg_body[] =
    "{\"id\":\"msg_01bench\",\"type\":\"message\",\"role\":\"assistant\","
    "\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[{\"type\":\"text\","
    "\"text\":\"Hello from the benchmark stub.\"}],\"stop_reason\":\"end_turn\","
    "\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"output_tokens\":6}}";
static const char models_body[] =
    "{\"data\":[{\"type\":\"model\",\"id\":\"claude-sonnet-4-5-20250929\","
    "\"display_name\":\"Claude Sonnet 4.5\",\"created_at\":\"2025-09-29T00:00:00Z\"}],"
    "\"has_more\":false,\"first_id\":\"claude-sonnet-4-5-20250929\","
    "\"last_id\":\"claude-sonnet-4-5-20250929\"}";

struct conn {
	char		*in;		/* bytes read, not yet consumed */
	size_t		 inlen, incap;
	size_t		 reqlen;	/* head + body of the request at in[0]; 0: head incomplete */
	int		 is_get, close_after, sent_continue, waiting;
	unsigned	 gen;		/* bumped at close: stale timer entries are skipped */
	char		*out;		/* unsent answer bytes */
	size_t		 outlen, outoff;
	int		 open;
};

struct due {
	int		fd;
	unsigned	gen;
	int64_t		at_ms;
};

static struct conn *conns;
static size_t nconns;
static struct due *q;
static size_t qcap, qhead, qlen;
static int ep;
static long delay_ms;
static char msg_resp[1024], models_resp[1024];
static size_t msg_resp_len, models_resp_len;

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
conn_close(int fd)
{
	struct conn *c = &conns[fd];

	epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
	close(fd);
	free(c->in);
	free(c->out);
	c->in = c->out = NULL;
	c->inlen = c->incap = c->reqlen = c->outlen = c->outoff = 0;
	c->is_get = c->close_after = c->sent_continue = c->waiting = 0;
	c->open = 0;
	c->gen++;
}

static int
want_write(int fd, int on)
{
	struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0), .data.fd = fd };

	return epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

/* Send what is pending; -1 when the connection is gone. */
static int
flush_out(int fd)
{
	struct conn *c = &conns[fd];

	while (c->outoff < c->outlen) {
		ssize_t n = send(fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return want_write(fd, 1);
		if (n <= 0)
			return -1;
		c->outoff += (size_t)n;
	}
	free(c->out);
	c->out = NULL;
	c->outlen = c->outoff = 0;
	return want_write(fd, 0);
}

static int
queue_out(int fd, const char *p, size_t len)
{
	struct conn *c = &conns[fd];
	char *n = realloc(c->out, c->outlen + len);

	if (n == NULL)
		return -1;
	memcpy(n + c->outlen, p, len);
	c->out = n;
	c->outlen += len;
	return flush_out(fd);
}

/* Value of header name in head (NUL-terminated, lines end with CRLF), or NULL. */
static const char *
header(const char *head, const char *name, size_t *vlen)
{
	size_t nlen = strlen(name);
	const char *p = strstr(head, "\r\n");

	while (p != NULL && p[2] != '\r' && p[2] != '\0') {
		const char *line = p + 2, *end = strstr(line, "\r\n");
		if (end == NULL)
			return NULL;
		if ((size_t)(end - line) > nlen && strncasecmp(line, name, nlen) == 0 &&
		    line[nlen] == ':') {
			const char *v = line + nlen + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			*vlen = (size_t)(end - v);
			return v;
		}
		p = end;
	}
	return NULL;
}

static int
push_due(int fd)
{
	if (qlen == qcap) {
		size_t ncap = qcap ? qcap * 2 : 4096;
		struct due *n = malloc(ncap * sizeof(*n));
		if (n == NULL)
			return -1;
		for (size_t i = 0; i < qlen; i++)
			n[i] = q[(qhead + i) % qcap];
		free(q);
		q = n;
		qcap = ncap;
		qhead = 0;
	}
	q[(qhead + qlen) % qcap] = (struct due){ fd, conns[fd].gen, now_ms() + delay_ms };
	qlen++;
	return 0;
}

/* The answer to the request at in[0] goes out; the request is consumed. -1: close. */
static int
answer(int fd)
{
	struct conn *c = &conns[fd];
	int rc;

	rc = c->is_get ? queue_out(fd, models_resp, models_resp_len) :
	    queue_out(fd, msg_resp, msg_resp_len);
	memmove(c->in, c->in + c->reqlen, c->inlen - c->reqlen);
	c->inlen -= c->reqlen;
	c->reqlen = 0;
	c->waiting = c->sent_continue = 0;
	if (rc != 0 || c->close_after)
		return -1;
	return 0;
}

/* Look at the buffered bytes: a complete request is answered now or queued. -1: close. */
static int
parse(int fd)
{
	struct conn *c = &conns[fd];

	while (!c->waiting && c->inlen > 0) {
		char *end, *head;
		const char *v;
		size_t vlen = 0, hlen, body = 0;

		if (c->reqlen == 0) {
			end = memmem(c->in, c->inlen, "\r\n\r\n", 4);
			if (end == NULL)
				return c->inlen > HEAD_MAX ? -1 : 0;
			hlen = (size_t)(end - c->in) + 4;
			if ((head = strndup(c->in, hlen)) == NULL)
				return -1;
			if ((v = header(head, "content-length", &vlen)) != NULL) {
				char *e;
				unsigned long long n = strtoull(v, &e, 10);
				if (e == v || n > BODY_MAX) {
					free(head);
					return -1;
				}
				body = (size_t)n;
			}
			c->is_get = strncmp(head, "GET ", 4) == 0;
			c->close_after = (v = header(head, "connection", &vlen)) != NULL &&
			    vlen >= 5 && strncasecmp(v, "close", 5) == 0;
			if (body > 0 && (v = header(head, "expect", &vlen)) != NULL &&
			    vlen >= 12 && strncasecmp(v, "100-continue", 12) == 0 &&
			    c->inlen == hlen && !c->sent_continue) {
				static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
				c->sent_continue = 1;
				if (queue_out(fd, cont, sizeof(cont) - 1) != 0) {
					free(head);
					return -1;
				}
			}
			free(head);
			c->reqlen = hlen + body;
		}
		if (c->inlen < c->reqlen)
			return 0;
		if (delay_ms <= 0) {
			if (answer(fd) != 0)
				return -1;
			continue;
		}
		c->waiting = 1;
		return push_due(fd);
	}
	return 0;
}

static void
on_readable(int fd)
{
	struct conn *c = &conns[fd];

	for (;;) {
		ssize_t n;
		if (c->incap - c->inlen < 4096) {
			size_t ncap = c->incap ? c->incap * 2 : 8192;
			char *b = realloc(c->in, ncap);
			if (b == NULL) {
				conn_close(fd);
				return;
			}
			c->in = b;
			c->incap = ncap;
		}
		n = recv(fd, c->in + c->inlen, c->incap - c->inlen, 0);
		if (n > 0) {
			c->inlen += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		conn_close(fd);	/* EOF or error: a queued answer is dropped via gen */
		return;
	}
	if (parse(fd) != 0)
		conn_close(fd);
}

static void
on_accept(int lfd)
{
	for (;;) {
		int one = 1, fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
		if (fd < 0)
			return;
		if ((size_t)fd >= nconns) {
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		conns[fd].open = 1;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
			conn_close(fd);
	}
}

/* Answer what fell due; returns the ms until the next one (-1: none). */
static int
fire_due(void)
{
	int64_t now = now_ms();

	while (qlen > 0) {
		struct due d = q[qhead];
		if (d.at_ms > now)
			return (int)(d.at_ms - now);
		qhead = (qhead + 1) % qcap;
		qlen--;
		if (!conns[d.fd].open || conns[d.fd].gen != d.gen || !conns[d.fd].waiting)
			continue;
		if (answer(d.fd) != 0 || parse(d.fd) != 0)
			conn_close(d.fd);
	}
	return -1;
}

static int
build_responses(void)
{
	int n = snprintf(msg_resp, sizeof(msg_resp), "HTTP/1.1 200 OK\r\n"
	    "Content-Type: application/json\r\nrequest-id: req_bench\r\n"
	    "Content-Length: %zu\r\n\r\n%s", sizeof(msg_body) - 1, msg_body);
	int m = snprintf(models_resp, sizeof(models_resp), "HTTP/1.1 200 OK\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
	    sizeof(models_body) - 1, models_body);

	if (n <= 0 || (size_t)n >= sizeof(msg_resp) || m <= 0 || (size_t)m >= sizeof(models_resp))
		return -1;
	msg_resp_len = (size_t)n;
	models_resp_len = (size_t)m;
	return 0;
}

static int
write_port(const char *path, unsigned port)
{
	char tmp[4096];
	FILE *f;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp) ||
	    (f = fopen(tmp, "w")) == NULL)
		return -1;
	fprintf(f, "%u\n", port);
	if (fclose(f) != 0)
		return -1;
	return rename(tmp, path);
}

int
main(int argc, char **argv)
{
	const char *port_file = NULL;
	unsigned long port = 0;
	struct sockaddr_in sa;
	socklen_t salen = sizeof(sa);
	struct rlimit rl;
	struct epoll_event evs[512], ev;
	int lfd, one = 1;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--port-file") == 0 && i + 1 < argc)
			port_file = argv[++i];
		else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
			port = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--delay-ms") == 0 && i + 1 < argc)
			delay_ms = strtol(argv[++i], NULL, 10);
		else {
			fprintf(stderr, "usage: fast_stub --port-file FILE [--port N] "
			    "[--delay-ms MS]\n");
			return 2;
		}
	}
	if (port_file == NULL || port > 65535 || delay_ms < 0 || build_responses() != 0) {
		fprintf(stderr, "fast_stub: bad arguments\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	nconns = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < 1048576 ? (size_t)rl.rlim_cur : 65536;
	if ((conns = calloc(nconns, sizeof(*conns))) == NULL)
		return 1;
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(lfd, 4096) != 0 || getsockname(lfd, (struct sockaddr *)&sa, &salen) != 0 ||
	    (ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		perror("fast_stub: listen");
		return 1;
	}
	ev.events = EPOLLIN;
	ev.data.fd = lfd;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0 ||
	    write_port(port_file, ntohs(sa.sin_port)) != 0) {
		perror("fast_stub: start");
		return 1;
	}
	for (;;) {
		int timeout = fire_due(), n = epoll_wait(ep, evs, 512, timeout);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == lfd) {
				on_accept(lfd);
				continue;
			}
			if (!conns[fd].open)
				continue;
			if ((evs[i].events & EPOLLOUT) && flush_out(fd) != 0) {
				conn_close(fd);
				continue;
			}
			if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				on_readable(fd);
		}
	}
}
