#include "events_hub.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kr_events.h"
#include "kr_log.h"
#include "kr_time.h"

#define HUB_BATCH_BYTES	(256 * 1024)	/* what one hub_next hands a stream at most */
#define HUB_EVENT_MAX	(32 * 1024 * 1024)	/* one event in wire form (payload: MEDIUMTEXT) */
#define HUB_PAGES_MAX	8	/* pages per workspace and tick before the next one's turn */
/*
 * How long a missing id may stay missing before the poller steps over it. Every append
 * takes its id under the workspace row's lock inside a transaction (the caller's, or one of
 * its own), so ids commit in order and a gap should never be seen; this is the safety net.
 */
#define HUB_GAP_MS	5000
#define HUB_WARN_MS	10000	/* at most one database warning this often */

struct hub_event {
	uint64_t	 seq;
	char		*text;	/* wire form (hub_format), NUL-terminated */
	size_t		 len;
};

/*
 * A watched workspace. Everything but id and next is guarded by hub.lock; next changes only
 * in the poller (reap), so the poller may walk the list without the lock.
 */
struct hub_ws {
	struct hub_ws	*next;
	char		 id[KR_UUID_MAX];
	unsigned	 listeners;
	int		 primed;	/* floor and last are known */
	uint64_t	 floor;		/* the ring holds exactly the events (floor, last] */
	uint64_t	 last;
	size_t		 bytes;
	int64_t		 gap_since;	/* when the poller first met the missing id, or 0 */
	pthread_cond_t	 cond;		/* broadcast when last grows, and on hub_stop */
	struct hub_event ring[HUB_RING];	/* event seq sits at seq % HUB_RING */
};

/* A caller with streams open; hub.callers holds ncallers of them. */
struct hub_caller {
	char		 name[HUB_CALLER_MAX];
	unsigned	 streams;
};

static struct {
	pthread_mutex_t		 lock;
	pthread_once_t		 once;
	pthread_condattr_t	 attr;	/* CLOCK_MONOTONIC, for every condition variable here */
	pthread_cond_t		 poll;	/* wakes the poller */
	int			 ready;	/* attr and poll are initialised */
	int			 wake;
	int			 stopping;
	struct hub_ws		*list;
	struct hub_caller	*callers;
	size_t			 ncallers, callers_cap;
} hub = { .lock = PTHREAD_MUTEX_INITIALIZER, .once = PTHREAD_ONCE_INIT };

static void
hub_init(void)
{
	if (pthread_condattr_init(&hub.attr) != 0)
		return;
	if (pthread_condattr_setclock(&hub.attr, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&hub.poll, &hub.attr) != 0) {
		pthread_condattr_destroy(&hub.attr);
		return;
	}
	hub.ready = 1;
}

static int
hub_ready(void)
{
	return pthread_once(&hub.once, hub_init) == 0 && hub.ready;
}

/* An absolute CLOCK_MONOTONIC time ms from now. */
static void
deadline(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Wire form ------------------------------------------------------------------------------ */

enum kr_buf_err
hub_format(struct kr_buf *out, uint64_t seq, const char *type, const char *data)
{
	const char *p = data != NULL ? data : "";

	kr_buf_printf(out, "id: %llu\nevent: ", (unsigned long long)seq);
	for (const char *t = type != NULL ? type : "message"; *t != '\0'; ) {
		size_t n = strcspn(t, "\r\n");
		kr_buf_add(out, t, n);
		t += n;
		t += strspn(t, "\r\n");
	}
	/* SSE ends a line at CRLF, LF or CR: each line of data gets a "data:" of its own. */
	for (;;) {
		size_t n = strcspn(p, "\r\n");
		kr_buf_puts(out, "\ndata: ");
		kr_buf_add(out, p, n);
		p += n;
		if (*p == '\0')
			break;
		p += p[0] == '\r' && p[1] == '\n' ? 2 : 1;
	}
	return kr_buf_puts(out, "\n\n");
}

enum kr_db_err
hub_head(struct kr_db *db, const char *ws_id, uint64_t *first, uint64_t *head)
{
	enum kr_db_err rc;

	if ((rc = kr_events_bounds(db, ws_id, first, head)) != KR_DB_OK || *head != 0)
		return rc;
	return kr_events_last_seq(db, ws_id, head);
}

/* The ring (hub.lock held) ----------------------------------------------------------------- */

static void
ring_drop_oldest(struct hub_ws *w)
{
	struct hub_event *e = &w->ring[(w->floor + 1) % HUB_RING];

	w->bytes -= e->len;
	free(e->text);
	e->text = NULL;
	e->len = 0;
	w->floor++;
}

/* Empty the ring; it then holds the events after `at` as they come. */
static void
ring_reset(struct hub_ws *w, uint64_t at)
{
	while (w->floor < w->last)
		ring_drop_oldest(w);
	w->floor = w->last = at;
}

/* Append e (e->seq == last + 1), taking its text; the oldest events make room. */
static void
ring_push(struct hub_ws *w, struct hub_event *e)
{
	while (w->last > w->floor &&
	    (w->last - w->floor >= HUB_RING || w->bytes + e->len > HUB_RING_BYTES))
		ring_drop_oldest(w);
	w->ring[e->seq % HUB_RING] = *e;
	w->bytes += e->len;
	w->last = e->seq;
	e->text = NULL;
}

/* The poller ------------------------------------------------------------------------------- */

/* Free the workspaces nobody listens to any more (hub.lock held; poller only). */
static void
reap(void)
{
	struct hub_ws **pp = &hub.list;

	while (*pp != NULL) {
		struct hub_ws *w = *pp;
		if (w->listeners > 0) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		ring_reset(w, 0);
		pthread_cond_destroy(&w->cond);
		free(w);
	}
}

/* Put the rows of a kr_events_after result into evs in wire form; the count made. */
static unsigned
format_rows(const struct kr_db_res *res, struct hub_event *evs)
{
	unsigned n = 0;

	for (unsigned i = 0; i < res->nrows && i < HUB_PAGE; i++) {
		struct kr_buf b;
		kr_buf_init(&b, HUB_EVENT_MAX);
		evs[n].seq = (uint64_t)kr_db_cell_int(res, i, 0, 0);
		if (hub_format(&b, evs[n].seq, kr_db_cell(res, i, 1), kr_db_cell(res, i, 2)) !=
		    KR_BUF_OK || (evs[n].text = kr_buf_detach(&b, &evs[n].len)) == NULL) {
			kr_buf_release(&b, 0);
			break;		/* out of memory: the rest comes again next tick */
		}
		n++;
	}
	return n;
}

/*
 * Move evs[0..n) into w's ring, in order, stopping at a missing id until it has been
 * missing for HUB_GAP_MS (hub.lock held). Returns how many were taken; frees the rest.
 */
static unsigned
ring_take(struct hub_ws *w, struct hub_event *evs, unsigned n, int *gap)
{
	unsigned taken = 0, i;

	*gap = 0;
	for (i = 0; i < n; i++) {
		struct hub_event *e = &evs[i];
		if (e->seq <= w->last)
			continue;
		if (e->seq != w->last + 1) {
			int64_t now = kr_time_mono_ms();
			if (w->gap_since == 0)
				w->gap_since = now;
			if (now - w->gap_since < HUB_GAP_MS) {
				*gap = 1;
				break;
			}
			kr_warn("events: workspace %s: ids %llu to %llu never appeared; going on",
			    w->id, (unsigned long long)w->last + 1, (unsigned long long)e->seq - 1);
			ring_reset(w, e->seq - 1);	/* streams behind it read the database */
		}
		ring_push(w, e);
		w->gap_since = 0;
		taken++;
	}
	for (i = 0; i < n; i++) {	/* what the ring did not take */
		free(evs[i].text);
		evs[i].text = NULL;
	}
	return taken;
}

/*
 * One query for one workspace: its latest id when it is new to the hub, else the events
 * after what the ring has. 1 when a full page came (there may be more), 0, -1 on a
 * database error.
 */
static int
poll_ws(struct kr_db *db, struct hub_ws *w, struct hub_event *evs)
{
	struct kr_db_res res;
	uint64_t after;
	unsigned n, taken;
	int primed, gap;

	pthread_mutex_lock(&hub.lock);
	primed = w->primed;
	after = w->last;
	n = w->listeners;
	pthread_mutex_unlock(&hub.lock);
	if (n == 0)
		return 0;
	if (!primed) {
		uint64_t first;
		if (hub_head(db, w->id, &first, &after) != KR_DB_OK)
			return -1;
		pthread_mutex_lock(&hub.lock);
		w->floor = w->last = after;
		w->primed = 1;
		pthread_cond_broadcast(&w->cond);
		pthread_mutex_unlock(&hub.lock);
		return 0;
	}
	if (kr_events_after(db, w->id, after, HUB_PAGE, &res) != KR_DB_OK)
		return -1;
	n = format_rows(&res, evs);
	pthread_mutex_lock(&hub.lock);
	taken = ring_take(w, evs, n, &gap);
	if (taken > 0)
		pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&hub.lock);
	n = res.nrows;
	kr_db_res_free(&res);
	return n == HUB_PAGE && taken == n && !gap ? 1 : 0;
}

int
hub_run(const struct kr_config *cfg)
{
	struct hub_event *evs = calloc(HUB_PAGE, sizeof(*evs));
	struct kr_db *db = kr_db_new(cfg);
	int64_t warned = 0;
	int rc = -1;

	if (evs == NULL || db == NULL || !hub_ready()) {
		kr_error("events poller: out of memory");
		goto out;
	}
	pthread_mutex_lock(&hub.lock);
	while (!hub.stopping) {
		struct hub_ws *head;
		unsigned failed = 0;
		struct timespec until;

		reap();
		head = hub.list;
		hub.wake = 0;
		pthread_mutex_unlock(&hub.lock);
		for (struct hub_ws *w = head; w != NULL; w = w->next) {
			int r, pages = 0;
			while ((r = poll_ws(db, w, evs)) == 1 && ++pages < HUB_PAGES_MAX)
				;
			failed += r < 0;
		}
		if (failed > 0 && kr_time_mono_ms() - warned >= HUB_WARN_MS) {
			warned = kr_time_mono_ms();
			kr_warn("events poller: database error %u reading %u workspace(s); "
			    "retrying every %d ms", kr_db_errno(db), failed, HUB_POLL_MS);
		}
		deadline(&until, HUB_POLL_MS);
		pthread_mutex_lock(&hub.lock);
		while (!hub.stopping && !hub.wake &&
		    pthread_cond_timedwait(&hub.poll, &hub.lock, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&hub.lock);
	rc = 0;
out:
	free(evs);
	kr_db_free(&db);
	return rc;
}

void
hub_stop(void)
{
	if (!hub_ready())
		return;
	pthread_mutex_lock(&hub.lock);
	hub.stopping = 1;
	pthread_cond_signal(&hub.poll);
	for (struct hub_ws *w = hub.list; w != NULL; w = w->next)
		pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&hub.lock);
}

int
hub_stopping(void)
{
	int s;

	pthread_mutex_lock(&hub.lock);
	s = hub.stopping;
	pthread_mutex_unlock(&hub.lock);
	return s;
}

void
hub_release(void)
{
	pthread_mutex_lock(&hub.lock);
	for (struct hub_ws *w = hub.list; w != NULL; w = w->next)
		w->listeners = 0;
	reap();
	free(hub.callers);
	hub.callers = NULL;
	hub.ncallers = hub.callers_cap = 0;
	pthread_mutex_unlock(&hub.lock);
}

/* Streams ------------------------------------------------------------------------------- */

/* The caller's entry, made (with no stream) when create is set; NULL when out of memory. */
static struct hub_caller *
caller_find(const char *name, int create)
{
	struct hub_caller *c;

	for (size_t i = 0; i < hub.ncallers; i++)
		if (strcmp(hub.callers[i].name, name) == 0)
			return &hub.callers[i];
	if (!create)
		return NULL;
	if (hub.ncallers == hub.callers_cap) {
		size_t cap = hub.callers_cap ? hub.callers_cap * 2 : 16;
		if ((c = reallocarray(hub.callers, cap, sizeof(*c))) == NULL)
			return NULL;
		hub.callers = c;
		hub.callers_cap = cap;
	}
	c = &hub.callers[hub.ncallers++];
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->streams = 0;
	return c;
}

/* The workspace's entry, made when missing; NULL when out of memory. */
static struct hub_ws *
ws_find(const char *ws_id)
{
	struct hub_ws *w;

	for (w = hub.list; w != NULL; w = w->next)
		if (strcmp(w->id, ws_id) == 0)
			return w;
	if ((w = calloc(1, sizeof(*w))) == NULL || pthread_cond_init(&w->cond, &hub.attr) != 0) {
		free(w);
		return NULL;
	}
	memcpy(w->id, ws_id, strlen(ws_id) + 1);
	w->next = hub.list;
	hub.list = w;
	return w;
}

enum hub_err
hub_join(const char *ws_id, const char *caller, const struct hub_limits *lim,
    struct hub_ws **out)
{
	enum hub_err err = HUB_OK;
	struct hub_caller *c;
	struct hub_ws *w;

	*out = NULL;
	if (strlen(ws_id) >= sizeof(w->id) || strlen(caller) >= sizeof(c->name) || !hub_ready())
		return HUB_NOMEM;
	pthread_mutex_lock(&hub.lock);
	if (hub.stopping)
		err = HUB_STOPPING;
	else if ((c = caller_find(caller, 1)) == NULL || (w = ws_find(ws_id)) == NULL)
		err = HUB_NOMEM;
	else if (c->streams >= lim->max_per_caller)
		err = HUB_CALLER_FULL;
	else if (w->listeners >= lim->max_per_ws)
		err = HUB_WS_FULL;
	if (err != HUB_OK) {
		if ((c = caller_find(caller, 0)) != NULL && c->streams == 0)
			*c = hub.callers[--hub.ncallers];
		pthread_mutex_unlock(&hub.lock);
		return err;
	}
	c->streams++;
	w->listeners++;
	if (!w->primed) {
		hub.wake = 1;
		pthread_cond_signal(&hub.poll);
	}
	pthread_mutex_unlock(&hub.lock);
	*out = w;
	return HUB_OK;
}

void
hub_leave(struct hub_ws **ws, const char *caller)
{
	struct hub_caller *c;

	if (*ws == NULL)
		return;
	pthread_mutex_lock(&hub.lock);
	(*ws)->listeners--;
	if ((c = caller_find(caller, 0)) != NULL && --c->streams == 0)
		*c = hub.callers[--hub.ncallers];
	pthread_mutex_unlock(&hub.lock);
	*ws = NULL;
}

/* Copy the ring's events after *cursor into out (hub.lock held). */
static enum hub_next
ring_copy(const struct hub_ws *w, uint64_t *cursor, struct kr_buf *out)
{
	size_t start = out->len;

	do {
		const struct hub_event *e = &w->ring[(*cursor + 1) % HUB_RING];
		if (kr_buf_add(out, e->text, e->len) != KR_BUF_OK)
			return HUB_NEXT_NOMEM;
		(*cursor)++;
	} while (*cursor < w->last && out->len - start < HUB_BATCH_BYTES);
	return HUB_NEXT_EVENTS;
}

enum hub_next
hub_next(struct hub_ws *w, uint64_t *cursor, struct kr_buf *out, unsigned wait_ms)
{
	enum hub_next rc = HUB_NEXT_TIMEOUT;
	struct timespec until;
	int timed_out = 0;

	deadline(&until, wait_ms);
	pthread_mutex_lock(&hub.lock);
	for (;;) {
		if (hub.stopping) {
			rc = HUB_NEXT_STOP;
			break;
		}
		if (w->primed && *cursor < w->floor) {
			rc = HUB_NEXT_BEHIND;
			break;
		}
		if (w->primed && *cursor < w->last) {
			rc = ring_copy(w, cursor, out);
			break;
		}
		if (timed_out)
			break;
		timed_out = pthread_cond_timedwait(&w->cond, &hub.lock, &until) == ETIMEDOUT;
	}
	pthread_mutex_unlock(&hub.lock);
	return rc;
}
