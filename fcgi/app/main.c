/*
 * keyrelay-fcgi: the FastCGI program behind nginx.
 *
 * A pool of threads per socket, each with its own MariaDB connection, each taking one
 * request at a time with FCGX_Accept_r. The API pool serves short requests; the events pool
 * (its own socket, so long-lived streams never starve API requests) serves the server-sent
 * events streams, one per thread, fed by one events hub poller thread (events_hub.h).
 * SIGTERM or SIGINT: stop accepting, end the open streams, finish the API requests in hand,
 * exit 0.
 */
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <fcgiapp.h>
#include <curl/curl.h>
#include <mysql.h>

#include "events_hub.h"
#include "http.h"
#include "kr_config.h"
#include "kr_crypto.h"
#include "kr_db.h"
#include "kr_log.h"
#include "kr_startup.h"
#include "kr_vault.h"

#define API_BACKLOG	1024
#define EVENTS_BACKLOG	4096	/* design.md: a burst of reconnecting streams needs room */
/*
 * A stream write blocked this long (a client that stopped reading, with nginx's buffers
 * full) fails and ends the stream, so a stuck client can neither hold a thread for ever nor
 * delay shutdown for more than this.
 */
#define EVENTS_SEND_TIMEOUT_S	5
#define PROG		"keyrelay-fcgi"

struct pool {
	const char		*name;
	int			 sock;
	unsigned		 nthreads;
	pthread_t		*threads;
	const struct kr_config	*cfg;
	int			 streaming;	/* the events pool: requests get a kr_stream */
};

/* The kr_stream of one events-pool request (see http.h). */
struct fcgi_stream {
	struct kr_stream	 s;
	FCGX_Request		*r;
};

static volatile sig_atomic_t stopping;

static const char *
param(FCGX_Request *r, const char *name)
{
	return FCGX_GetParam(name, r->envp);
}

/* Read the body (at most KR_BODY_MAX bytes; more is left unread and answered 413). */
static int
read_body(FCGX_Request *r, struct kr_req *req, struct kr_buf *body)
{
	char chunk[8192];
	int n;

	if (req->content_length > KR_BODY_MAX)
		return 0;
	while ((n = FCGX_GetStr(chunk, sizeof(chunk), r->in)) > 0) {
		if (kr_buf_add(body, chunk, (size_t)n) != KR_BUF_OK) {
			req->content_length = KR_BODY_MAX + 1LL;	/* too big: 413 */
			return 0;
		}
	}
	req->body = kr_buf_str(body);
	req->body_len = body->len;
	return 0;
}

static void
fill_request(FCGX_Request *r, struct kr_req *req)
{
	const char *cl = param(r, "CONTENT_LENGTH"), *https = param(r, "HTTPS");
	char *end;

	req->method = param(r, "REQUEST_METHOD");
	req->uri = param(r, "REQUEST_URI");
	if (req->method == NULL)
		req->method = "GET";
	if (req->uri == NULL)
		req->uri = "/";
	req->content_type = param(r, "CONTENT_TYPE");
	req->cookie = param(r, "HTTP_COOKIE");
	req->authorization = param(r, "HTTP_AUTHORIZATION");
	req->csrf = param(r, "HTTP_X_CSRF_TOKEN");
	req->origin = param(r, "HTTP_ORIGIN");
	req->sec_fetch_site = param(r, "HTTP_SEC_FETCH_SITE");
	req->remote_addr = param(r, "REMOTE_ADDR");
	req->host = param(r, "HTTP_HOST");
	req->server_port = param(r, "SERVER_PORT");
	req->last_event_id = param(r, "HTTP_LAST_EVENT_ID");
	req->https = https != NULL && strcmp(https, "on") == 0;
	if (cl != NULL && *cl != '\0') {
		long long v = strtoll(cl, &end, 10);
		req->content_length = *end == '\0' && v >= 0 ? v : KR_BODY_MAX + 1LL;
	}
}

static const char *
reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 503: return "Service Unavailable";
	default: return status >= 500 ? "Internal Server Error" : "OK";
	}
}

static void
write_head(FCGX_Request *r, const struct kr_resp *resp)
{
	FCGX_FPrintF(r->out, "Status: %d %s\r\n", resp->status, reason(resp->status));
	if (resp->status != 204)
		FCGX_FPrintF(r->out, "Content-Type: %s\r\n", resp->content_type);
	FCGX_PutS("Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n", r->out);
	FCGX_PutStr(kr_buf_str(&resp->headers), (int)resp->headers.len, r->out);
	FCGX_PutS("\r\n", r->out);
}

static void
write_response(FCGX_Request *r, struct kr_resp *resp)
{
	write_head(r, resp);
	if (resp->status != 204)
		FCGX_PutStr(kr_buf_str(&resp->body), (int)resp->body.len, r->out);
}

/* kr_stream over FCGX: a failed write or flush means the client left (design.md). */
static int
stream_begin(void *ctx, const struct kr_resp *resp)
{
	struct fcgi_stream *fs = ctx;

	fs->s.begun = 1;
	write_head(fs->r, resp);
	return FCGX_FFlush(fs->r->out) == 0 ? 0 : -1;
}

static int
stream_write(void *ctx, const char *p, size_t n)
{
	struct fcgi_stream *fs = ctx;

	while (n > 0) {
		int k = n > 65536 ? 65536 : (int)n;
		if (FCGX_PutStr(p, k, fs->r->out) != k)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int
stream_flush(void *ctx)
{
	struct fcgi_stream *fs = ctx;

	return FCGX_FFlush(fs->r->out) == 0 ? 0 : -1;
}

/*
 * nginx sends nothing after the request (no FCGI_ABORT_REQUEST either) and closes the
 * connection when its client goes: end of file on our side.
 */
static int
stream_alive(void *ctx)
{
	struct fcgi_stream *fs = ctx;
	ssize_t n;
	char c;

	if (FCGX_GetError(fs->r->out) != 0)
		return 0;
	n = recv(fs->r->ipcFd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
}

static void
serve(FCGX_Request *r, const struct pool *p, struct kr_db *db)
{
	struct fcgi_stream fs = { { stream_begin, stream_write, stream_flush, stream_alive,
	    NULL, 0 }, r };
	struct kr_buf body;
	struct kr_resp resp;
	struct kr_req req;

	fs.s.ctx = &fs;
	kr_req_init(&req, p->cfg, db);
	kr_resp_init(&resp);
	kr_buf_init(&body, KR_BODY_MAX);
	fill_request(r, &req);
	if (p->streaming)
		req.stream = &fs.s;
	read_body(r, &req, &body);
	kr_dispatch(&req, &resp);
	if (!fs.s.begun)
		write_response(r, &resp);
	kr_req_release(&req);
	kr_resp_release(&resp);
	kr_buf_release(&body, 1);
}

static void *
worker(void *arg)
{
	const struct pool *p = arg;
	struct kr_db *db;
	FCGX_Request r;

	mysql_thread_init();
	if ((db = kr_db_new(p->cfg)) == NULL || FCGX_InitRequest(&r, p->sock, 0) != 0) {
		kr_error("%s worker: out of memory", p->name);
		kr_db_free(&db);
		mysql_thread_end();
		return NULL;
	}
	(void)kr_db_connect(db);	/* early, but a database that is down is no error */
	while (!stopping && FCGX_Accept_r(&r) >= 0) {
		if (p->streaming) {
			struct timeval tv = { EVENTS_SEND_TIMEOUT_S, 0 };
			(void)setsockopt(r.ipcFd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		}
		serve(&r, p, db);
		FCGX_Finish_r(&r);
	}
	FCGX_Free(&r, 0);
	kr_db_free(&db);
	mysql_thread_end();
	return NULL;
}

/* Create a unix socket at path with the configured mode and group. -1 on failure. */
static int
open_socket(const struct kr_config *cfg, const char *path, int backlog)
{
	mode_t old;
	int fd;

	if (unlink(path) != 0 && errno != ENOENT) {
		kr_error("cannot remove stale socket %s: %s", path, strerror(errno));
		return -1;
	}
	old = umask((mode_t)(~cfg->fcgi_socket_mode & 0777));
	fd = FCGX_OpenSocket(path, backlog);
	umask(old);
	if (fd < 0) {
		kr_error("cannot listen on %s", path);
		return -1;
	}
	if (chmod(path, (mode_t)cfg->fcgi_socket_mode) != 0) {
		kr_error("chmod %s: %s", path, strerror(errno));
		return -1;
	}
	if (cfg->fcgi_socket_group != NULL) {
		struct group *g = getgrnam(cfg->fcgi_socket_group);
		if (g == NULL || chown(path, (uid_t)-1, g->gr_gid) != 0) {
			kr_error("cannot give %s to group %s", path, cfg->fcgi_socket_group);
			return -1;
		}
	}
	return fd;
}

/*
 * Sockets handed over by systemd (LISTEN_FDS: fd 3 API, fd 4 events) or spawn-fcgi (a
 * listening socket on fd 0, API only) are used as they are; otherwise we create our own.
 */
static int
inherited_socket(int which)
{
	const char *fds = getenv("LISTEN_FDS"), *pid = getenv("LISTEN_PID");
	int accepting = 0;
	socklen_t len = sizeof(accepting);

	if (fds != NULL && pid != NULL && strtol(pid, NULL, 10) == (long)getpid())
		return strtol(fds, NULL, 10) > which ? 3 + which : -1;
	if (which == 0 && getsockopt(0, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) == 0 &&
	    accepting)
		return 0;
	return -1;
}

static int
start_pool(struct pool *p)
{
	if ((p->threads = calloc(p->nthreads, sizeof(*p->threads))) == NULL)
		return -1;
	for (unsigned i = 0; i < p->nthreads; i++)
		if (pthread_create(&p->threads[i], NULL, worker, p) != 0) {
			kr_error("cannot start %s thread %u", p->name, i);
			p->nthreads = i;
			return -1;
		}
	return 0;
}

/* Wake the threads blocked in accept (stopping is set): they finish and return. */
static void
wake_pool(const struct pool *p)
{
	if (p->sock >= 0)
		shutdown(p->sock, SHUT_RDWR);
}

static void
join_pool(struct pool *p)
{
	for (unsigned i = 0; p->threads != NULL && i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	free(p->threads);
	p->threads = NULL;
	if (p->sock >= 0)
		close(p->sock);
	p->sock = -1;
}

/*
 * Stop everything: the streams end at once (the hub wakes them), both pools stop accepting
 * in parallel, so the API pool never waits for the events pool, then the poller goes.
 */
static void
stop_all(struct pool *api, struct pool *events, pthread_t *poller, int have_poller)
{
	stopping = 1;
	hub_stop();
	wake_pool(api);
	wake_pool(events);
	join_pool(api);
	join_pool(events);
	if (have_poller)
		pthread_join(*poller, NULL);
	hub_release();
}

static void *
poller_main(void *arg)
{
	mysql_thread_init();
	(void)hub_run(arg);
	mysql_thread_end();
	return NULL;
}

static int
open_pools(const struct kr_config *cfg, struct pool *api, struct pool *events)
{
	*api = (struct pool){ "api", inherited_socket(0), cfg->fcgi_threads, NULL, cfg, 0 };
	*events = (struct pool){ "events", inherited_socket(1), cfg->fcgi_events_threads, NULL,
	    cfg, 1 };
	if (api->sock < 0)
		api->sock = open_socket(cfg, cfg->fcgi_socket, API_BACKLOG);
	if (events->sock < 0 && cfg->fcgi_events_socket != NULL)
		events->sock = open_socket(cfg, cfg->fcgi_events_socket, EVENTS_BACKLOG);
	if (api->sock < 0)
		return -1;
	if (events->sock < 0)
		events->nthreads = 0;
	return 0;
}

int
main(int argc, char **argv)
{
	struct kr_config cfg;
	struct pool api, events;
	pthread_t poller;
	char err[512];
	sigset_t sigs;
	int sig = 0, rc = 1, have_poller = 0;
	const char *path = kr_config_path(&argc, argv);

	if (argc > 1) {
		fprintf(stderr, "usage: %s [--config PATH]\n", PROG);
		return 2;
	}
	if (kr_config_load(&cfg, path, err, sizeof(err)) != KR_CONFIG_OK) {
		fprintf(stderr, "%s: config: %s\n", PROG, err);
		return 1;
	}
	kr_log_init(PROG, cfg.log_level);
	kr_password_set_concurrency(cfg.auth_hash_concurrency);
	/* Handle SIGTERM ourselves, before libfcgi installs its flag-only handler. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    mysql_library_init(0, NULL, NULL) != 0 || FCGX_Init() != 0) {
		kr_error("library initialisation failed");
		goto out;
	}
	if (kr_startup_vault(&cfg, PROG) != 0)
		goto out;
	/* Build the dummy password hash now, so the first unknown-user login is not faster. */
	kr_password_dummy("", 0);
	if (open_pools(&cfg, &api, &events) != 0)
		goto out;
	if (events.nthreads > 0) {
		if (pthread_create(&poller, NULL, poller_main, &cfg) != 0) {
			kr_error("cannot start the events poller");
			goto out;
		}
		have_poller = 1;
	}
	if (start_pool(&api) != 0 || start_pool(&events) != 0) {
		stop_all(&api, &events, &poller, have_poller);
		goto out;
	}
	kr_info("listening (api threads %u, events threads %u)", api.nthreads, events.nthreads);
	while (sigwait(&sigs, &sig) != 0 || (sig != SIGTERM && sig != SIGINT))
		;
	kr_info("signal %d: ending streams, finishing requests in hand", sig);
	stop_all(&api, &events, &poller, have_poller);
	rc = 0;
	kr_info("stopped");
out:
	kr_vault_unload();
	mysql_library_end();
	curl_global_cleanup();
	kr_config_release(&cfg);
	return rc;
}
