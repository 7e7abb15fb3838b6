/*
 * Fuzz target: the API layer's handling of what a client sends, through kr_dispatch with
 * the database down (as tests/unit/test_router.c drives it): URI splitting and routing,
 * the query string, the Cookie, Authorization and X-CSRF-Token headers, content type and
 * body checks, JSON parsing and the field validators of the routes reachable without a
 * database. The input is lines: method, URI, content type, cookie, authorization, CSRF
 * token, then the body (the rest). Invariant: every request gets a status, and a JSON body
 * with it.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "kr_config.h"
#include "kr_db.h"
#include "kr_log.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

extern char **environ;

static struct kr_config cfg;
static struct kr_db *db;

/* The configuration of test_router: nothing from the environment, a database socket
 * that does not exist. */
static void
setup(void)
{
	static const char text[] =
	    "db.socket = /nonexistent/keyrelay-fuzz/mysqld.sock\n"
	    "db.password = unused\n";
	char path[] = "/tmp/kr_fuzz_dispatch_XXXXXX", err[256];
	char *name;
	char **e;
	int fd;

	for (;;) {
		for (e = environ; *e != NULL && strncmp(*e, "KEYRELAY_", 9) != 0; e++)
			;
		if (*e == NULL || (name = strndup(*e, strcspn(*e, "="))) == NULL)
			break;
		unsetenv(name);
		free(name);
	}
	kr_log_init("fuzz_dispatch", KR_LOG_ERROR);
	if ((fd = mkstemp(path)) == -1)
		abort();
	if (write(fd, text, sizeof(text) - 1) != (ssize_t)(sizeof(text) - 1))
		abort();
	close(fd);
	if (kr_config_load(&cfg, path, err, sizeof(err)) != KR_CONFIG_OK)
		abort();
	unlink(path);
	if (access(cfg.db_socket, F_OK) == 0 || (db = kr_db_new(&cfg)) == NULL)
		abort();
}

/* The next line of [*p, end), malloc'd and NUL-terminated (the caller frees it). */
static char *
line(const char **p, const char *end)
{
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	size_t n = (size_t)((nl != NULL ? nl : end) - *p);
	char *s = malloc(n + 1);

	if (s == NULL)
		abort();
	memcpy(s, *p, n);	/* not strndup: the input is not a C string */
	s[n] = '\0';
	*p = nl != NULL ? nl + 1 : end;
	return s;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *cur = (const char *)data, *end = cur + size;
	char *method, *uri, *ctype, *cookie, *auth, *csrf, *body;
	struct kr_req req;
	struct kr_resp resp;

	if (db == NULL)
		setup();
	method = line(&cur, end);
	uri = line(&cur, end);
	ctype = line(&cur, end);
	cookie = line(&cur, end);
	auth = line(&cur, end);
	csrf = line(&cur, end);
	if ((body = malloc((size_t)(end - cur) + 1)) == NULL)
		abort();
	memcpy(body, cur, (size_t)(end - cur));
	body[end - cur] = '\0';

	kr_req_init(&req, &cfg, db);
	req.method = method;
	req.uri = uri;
	req.content_type = ctype[0] != '\0' ? ctype : NULL;
	req.cookie = cookie[0] != '\0' ? cookie : NULL;
	req.authorization = auth[0] != '\0' ? auth : NULL;
	req.csrf = csrf[0] != '\0' ? csrf : NULL;
	req.remote_addr = "192.0.2.1";
	req.host = "localhost";
	req.body = body;
	req.body_len = (size_t)(end - cur);
	req.content_length = (long long)req.body_len;
	kr_resp_init(&resp);
	kr_dispatch(&req, &resp);
	if (resp.status < 100 || resp.status > 599 ||
	    (resp.status != 204 && resp.body.len == 0))
		abort();
	kr_resp_release(&resp);
	kr_req_release(&req);
	free(body);
	free(csrf);
	free(auth);
	free(cookie);
	free(ctype);
	free(uri);
	free(method);
	return 0;
}
