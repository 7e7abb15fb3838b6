/*
 * http: the request and response of one API call, independent of FastCGI.
 *
 * The FastCGI main fills a struct kr_req from the request's parameters and body, calls
 * kr_dispatch(), and writes the struct kr_resp back. Handlers read validated input through
 * the req_* helpers, which answer 422 naming the field themselves when a value is wrong,
 * and answer through resp_json() / resp_error(): no handler prints JSON or HTTP.
 */
#ifndef KR_HTTP_H
#define KR_HTTP_H

#include <stddef.h>

#include <json-c/json.h>

#include "kr_accounts.h"
#include "kr_buf.h"
#include "kr_config.h"
#include "kr_db.h"
#include "kr_workspaces.h"

#define KR_BODY_MAX	(1024 * 1024)
#define KR_MAX_PARAMS	4

enum kr_principal_kind { KR_PRINCIPAL_NONE, KR_PRINCIPAL_SESSION, KR_PRINCIPAL_TOKEN };

/* Who is calling, and in which workspace (for workspace routes). */
struct kr_principal {
	enum kr_principal_kind	kind;
	struct kr_user		user;		/* KR_PRINCIPAL_SESSION */
	char			cookie[KR_COOKIE_MAX];
	struct kr_token		token;		/* KR_PRINCIPAL_TOKEN */
	struct kr_workspace	ws;		/* resolved {ws}, workspace routes only */
	enum kr_role		role;		/* the caller's role in ws */
};

struct kr_resp;

/*
 * A response written as it goes (server-sent events). The FastCGI main sets req->stream
 * for the requests of its events pool, NULL elsewhere. A streaming handler sets resp's
 * status, content type and headers, calls begin() once (after which resp's body is never
 * sent), then write()s and flush()es. Each returns 0, or -1 when the client has gone or
 * stopped reading: end the stream then. alive() is 0 once the client has hung up.
 */
struct kr_stream {
	int	(*begin)(void *ctx, const struct kr_resp *resp);
	int	(*write)(void *ctx, const char *p, size_t n);
	int	(*flush)(void *ctx);
	int	(*alive)(void *ctx);
	void	*ctx;
	int	 begun;		/* set by begin() */
};

struct kr_req {
	/* From the web server; any may be NULL except method and uri. */
	const char	*method;
	const char	*uri;		/* path and query, as sent */
	const char	*content_type;
	const char	*cookie;
	const char	*authorization;
	const char	*csrf;		/* X-CSRF-Token */
	const char	*origin;
	const char	*sec_fetch_site;
	const char	*remote_addr;
	const char	*host;		/* Host, without port (nginx passes $host) */
	const char	*server_port;	/* the port the request came in on */
	const char	*last_event_id;	/* Last-Event-ID (server-sent events) */
	int		 https;
	long long	 content_length;	/* -1 when absent */
	const char	*body;		/* NUL-terminated at body_len */
	size_t		 body_len;

	/* Filled by kr_dispatch. */
	char		 path[1024];
	const char	*query;		/* after '?', or "" */
	const char	*params[KR_MAX_PARAMS];	/* {…} path segments, in order */
	char		 param_buf[1024];
	json_object	*json;		/* the parsed body of POST, PUT and PATCH */
	const char	*route;		/* the matched pattern, for metrics */
	struct kr_principal p;

	const struct kr_config	*cfg;
	struct kr_db		*db;
	struct kr_stream	*stream;	/* events pool only, else NULL */
};

struct kr_resp {
	int		status;
	const char	*content_type;	/* static; "application/json" unless changed */
	struct kr_buf	headers;	/* "Name: value\r\n" lines */
	struct kr_buf	body;
};

void	kr_req_init(struct kr_req *req, const struct kr_config *cfg, struct kr_db *db);
void	kr_req_release(struct kr_req *req);
void	kr_resp_init(struct kr_resp *resp);
void	kr_resp_release(struct kr_resp *resp);

/* Route and run the request; resp always holds a complete answer afterwards. */
void	kr_dispatch(struct kr_req *req, struct kr_resp *resp);

/* Answer obj (consumed) with status. */
void	resp_json(struct kr_resp *resp, int status, json_object *obj);
/* Answer the api.md error shape; field may be NULL. The code follows from the status. */
void	resp_error(struct kr_resp *resp, int status, const char *field, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));
/* 400 invalid_json. */
void	resp_invalid_json(struct kr_resp *resp, const char *msg);
/* 500 or 503 for a database failure (503 when the database is down or busy). */
void	resp_db_error(struct kr_resp *resp, enum kr_db_err rc);
void	resp_header(struct kr_resp *resp, const char *name, const char *value);
void	resp_no_content(struct kr_resp *resp);

/*
 * Validated input. Each returns 0 with *out set (or left alone when absent and optional),
 * or -1 after answering 422 naming the field.
 */
int	req_str(struct kr_req *req, struct kr_resp *resp, const char *field, int required,
	    size_t minlen, size_t maxlen, const char **out);
int	req_bool(struct kr_req *req, struct kr_resp *resp, const char *field, int required,
	    int *out);
int	req_role(struct kr_req *req, struct kr_resp *resp, const char *field, int required,
	    enum kr_role *out);
/*
 * A string of minbytes..maxbytes bytes (not characters: for long texts such as inputs and
 * prompts); an empty string is left as NULL in *out. 0, or -1 after answering 422.
 */
int	req_bytes(struct kr_req *req, struct kr_resp *resp, const char *field, int required,
	    size_t minbytes, size_t maxbytes, const char **out);
/*
 * ?name= holding an id: *out NULL when absent or empty, else the UUID (in buf). -1 after
 * answering 422 naming it.
 */
int	req_query_id(struct kr_req *req, struct kr_resp *resp, const char *name, char *buf,
	    size_t len, const char **out);
/* 1 when the query string names the parameter at all (even with an undecodable value). */
int	req_query_has(const struct kr_req *req, const char *name);
/* A query-string parameter (decoded into buf); NULL when absent. */
const char *req_query(const struct kr_req *req, const char *name, char *buf, size_t buflen);
/* ?limit= between 1 and 200 (default 50); -1 after answering 422. */
int	req_limit(struct kr_req *req, struct kr_resp *resp, unsigned *limit);

/*
 * A page of a list (api.md "Conventions"): ?limit= (1..200, default 50) and ?before=<the
 * id of an item of the list, as given in nextCursor>. The list function is asked for
 * limit + 1 rows after the item before (from the newest when NULL); resp_page() drops the
 * extra row and turns it into nextCursor.
 */
struct kr_page {
	unsigned	 limit;
	const char	*before;	/* NULL: the first page; else points into buf */
	char		 buf[64];
};
/* Read ?limit= and ?before= into pg; 0, or -1 after answering 422 naming the field. */
int	req_page(struct kr_req *req, struct kr_resp *resp, struct kr_page *pg);
/* A paged list: its name in the answer, what its cursors are ("a token"), its row view. */
struct kr_list {
	const char	*name;
	const char	*item;
	json_object	*(*view)(const struct kr_db_res *, unsigned);
};
/*
 * Answer a page of list l, from what its list function gave for pg: rc, res (freed here
 * when rc is KR_DB_OK) and found (whether pg->before is an item of the list).
 * {"<name>": [view(res, i) for the first pg->limit rows], "nextCursor": the id (column 0)
 * of the last of them when res holds more than pg->limit rows, else null}; 422 on field
 * before when found is 0; the database error when rc says one.
 */
void	resp_page(struct kr_resp *resp, const struct kr_list *l, const struct kr_page *pg,
	    enum kr_db_err rc, struct kr_db_res *res, int found);

/* The audit actor for the caller. */
struct kr_actor	req_actor(const struct kr_req *req);

#endif
