/*
 * Claims ahead: a thread of its own, with its own MariaDB connection, claims due jobs
 * while the main loop drives the calls, and keeps up to as many claimed jobs ready as
 * there are slots (at most AHEAD_MAX). When a call ends, the main loop starts a ready job
 * in its slot at once, without waiting for the database (ahead_take). A full slot count
 * ready also makes the claims big, and a claim costs MariaDB less per job the more jobs
 * it takes.
 *
 * A ready job is claimed like any other (running, under this runner's lease, extended by
 * the heartbeat) and handed back at shutdown. The per-workspace cap limits calls: a
 * workspace may have runner.workspace_cap calls in flight and as many again ready behind
 * them, so when its cap is below the slot count its ready jobs, which wait for its own
 * calls to end, never fill the room that the other workspaces need.
 *
 * Claims gather: at once when an eighth of the room (or a full batch) is free, else
 * CLAIM_GATHER_MS after the last claim; never within CLAIM_IDLE_MS of a claim that found
 * the queue short, nor while as many answers wait for the store thread's next batch as
 * there are slots. Claims that find no due job at all (none taken, none kept out by a cap)
 * double that pause, up to runner.idle_poll_ms, so an idle runner costs MariaDB a few
 * reads a second; the first job seen brings it back to CLAIM_IDLE_MS.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <mysql.h>

#include "kr_log.h"
#include "kr_time.h"
#include "runner.h"

#define CLAIM_BATCH	KR_DB_ROWS_MAX	/* jobs per claim at most */
#define CLAIM_GATHER_MS	5	/* free room waits this long for more before a claim */
#define CLAIM_IDLE_MS	20	/* after a claim that found fewer due jobs than it wanted */
#define PASS_MS		20	/* first attempts this close together share their key reads */
#define AHEAD_MAX	(2 * CLAIM_BATCH)	/* ready jobs at most */
#define FULL_WAIT_MS	100	/* the longest sleep without room (a safety net) */
#define HISTORY_AHEAD_MAX (64 * 1024)	/* bytes of a ready job's history, at most */

struct ahead {
	struct kr_db		*db;
	pthread_t		 thread;
	pthread_cond_t		 cond;
	struct kr_claimed	*ready;		/* oldest first; r->nready of them */
	struct kr_claimed	*take;		/* ahead_take's, max_in_flight of them */
	size_t			 depth;		/* ready jobs kept at most beyond free slots */
	int			 waiting;	/* the thread sleeps on cond */
	int			 stop;
	int			 wake;		/* eventfd, in the main loop's epoll set */
	size_t			 refused;	/* due jobs the caps kept out of this claim */
	struct pass		 memo;		/* the main loop's shared key reads */
	int64_t			 memo_at;	/* when they began; 0: none */
};

/* A workspace's ready jobs at most: its cap. */
static unsigned
ws_ahead(const struct runner *r)
{
	unsigned cap = r->cfg->runner_workspace_cap;

	return cap > AHEAD_MAX ? AHEAD_MAX : cap;
}

/* How many jobs the next claim should ask for; called with r->lock held. */
static size_t
wanted(struct runner *r)
{
	size_t max = r->cfg->runner_max_in_flight, room = max - r->nflying + r->ahead->depth;

	if (r->stopping || room <= r->nready)
		return 0;
	room -= r->nready;
	return room < CLAIM_BATCH ? room : CLAIM_BATCH;
}

/* kr_queue_claim's per-workspace cap: calls in flight, ready jobs and this claim's. */
static int
may_take(const char *ws_id, void *arg)
{
	struct runner *r = arg;
	struct ws_count *w;
	int ok = 0;

	pthread_mutex_lock(&r->lock);
	if ((w = flight_ws(r, ws_id, 1)) != NULL &&
	    w->flying + w->ready + w->batch < r->cfg->runner_workspace_cap + ws_ahead(r)) {
		w->batch++;
		ok = 1;
	} else
		r->ahead->refused++;
	pthread_mutex_unlock(&r->lock);
	return ok;
}

/* Claim up to want jobs and put them behind the ready ones; how many came. */
static size_t
claim(struct runner *r, size_t want)
{
	struct ahead *a = r->ahead;
	struct kr_claimed *jobs = NULL;
	size_t n = 0;

	a->refused = 0;
	if (kr_queue_claim(a->db, r->id, r->cfg->runner_lease_seconds, (unsigned)want,
	    may_take, r, &jobs, &n) != KR_DB_OK)
		n = 0;
	/* A chat job's history, read here so that the main loop need not when the call starts
	 * (it does when this read failed, or when the history was too long to hold ahead). */
	for (size_t i = 0; i < n; i++)
		if (jobs[i].chat_id[0] != '\0' && kr_queue_history(a->db, &jobs[i], HISTORY_MAX,
		    &jobs[i].history) == KR_DB_OK) {
			size_t bytes = 0;
			for (size_t c = 0; c < (size_t)jobs[i].history.nrows *
			    jobs[i].history.ncols; c++)
				bytes += jobs[i].history.lens[c];
			if (bytes <= HISTORY_AHEAD_MAX)
				jobs[i].has_history = 1;
			else
				kr_db_res_free(&jobs[i].history);
		}
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < n; i++) {
		struct ws_count *w = flight_ws(r, jobs[i].ws_id, 1);
		if (w != NULL)
			w->ready++;
		a->ready[r->nready++] = jobs[i];	/* the queue owns the job now */
	}
	flight_ws_forget(r);
	pthread_mutex_unlock(&r->lock);
	free(jobs);
	if (n > 0)
		(void)eventfd_write(a->wake, 1);
	return n;
}

/* The pause after a claim that took got of want jobs, given the one before. */
static int64_t
claim_pause(const struct runner *r, size_t got, size_t want, int64_t pause)
{
	int64_t max = r->cfg->runner_idle_poll_ms;

	if (got == want)
		return 0;
	if (got > 0 || r->ahead->refused > 0 || pause < CLAIM_IDLE_MS)
		return CLAIM_IDLE_MS;
	return pause >= max / 2 ? max : 2 * pause;
}

static void *
ahead_main(void *arg)
{
	struct runner *r = arg;
	struct ahead *a = r->ahead;
	int64_t last = 0, not_before = 0, pause = 0, now, wait_ms;
	size_t max = r->cfg->runner_max_in_flight, want, enough, waiting;

	enough = (max + a->depth) / 8 < CLAIM_BATCH ? (max + a->depth) / 8 : CLAIM_BATCH;
	mysql_thread_init();
	pthread_mutex_lock(&r->lock);
	while (!a->stop) {
		struct timespec until;
		now = kr_time_mono_ms();
		want = wanted(r);
		(void)store_pending(r, &waiting);
		if (want > 0 && now >= not_before && (want >= enough || r->nready == 0 ||
		    now - last >= CLAIM_GATHER_MS) && waiting < max) {
			pthread_mutex_unlock(&r->lock);
			last = now;
			pause = claim_pause(r, claim(r, want), want, pause);
			not_before = now + pause;
			pthread_mutex_lock(&r->lock);
			continue;
		}
		/* No room: ahead_take signals when there is. Room: the gather or idle pause. */
		wait_ms = want == 0 ? FULL_WAIT_MS : not_before > now ? not_before - now :
		    CLAIM_GATHER_MS;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += (time_t)(wait_ms / 1000);	/* up to runner.idle_poll_ms: */
		until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;	/* seconds apart */
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec += until.tv_nsec / 1000000000L;
			until.tv_nsec %= 1000000000L;
		}
		a->waiting = 1;
		pthread_cond_timedwait(&a->cond, &r->lock, &until);
		a->waiting = 0;
	}
	pthread_mutex_unlock(&r->lock);
	kr_db_free(&a->db);
	mysql_thread_end();
	return NULL;
}

int
ahead_start(struct runner *r)
{
	struct ahead *a = calloc(1, sizeof(*a));
	size_t max = r->cfg->runner_max_in_flight;

	if (a == NULL)
		return -1;
	a->depth = max < AHEAD_MAX ? max : AHEAD_MAX;
	a->wake = -1;
	if ((a->ready = calloc(max + a->depth, sizeof(*a->ready))) == NULL ||
	    (a->take = calloc(max, sizeof(*a->take))) == NULL ||
	    (a->db = kr_db_new(r->cfg)) == NULL ||
	    (a->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
		goto fail;
	pthread_cond_init(&a->cond, NULL);
	r->ahead = a;
	if (pthread_create(&a->thread, NULL, ahead_main, r) == 0)
		return 0;
	r->ahead = NULL;
	pthread_cond_destroy(&a->cond);
fail:
	kr_db_free(&a->db);
	if (a->wake >= 0)
		close(a->wake);
	free(a->ready);
	free(a->take);
	free(a);
	return -1;
}

int
ahead_wake_fd(const struct runner *r)
{
	return r->ahead->wake;
}

/* Wipe the shared key reads once they are PASS_MS old; the next start reads again. */
static void
memo_expire(struct runner *r, int64_t now)
{
	struct ahead *a = r->ahead;

	if (a->memo_at != 0 && now - a->memo_at < PASS_MS)
		return;
	if (a->memo_at != 0) {
		r->pass = &a->memo;
		flight_pass_end(r);		/* wipes the secrets */
		a->memo_at = 0;
	}
}

void
ahead_take(struct runner *r)
{
	struct ahead *a = r->ahead;
	size_t max = r->cfg->runner_max_in_flight, n = 0, keep = 0;
	struct kr_claimed *take = a->take;
	int64_t now = kr_time_mono_ms();
	eventfd_t v;

	(void)eventfd_read(a->wake, &v);
	memo_expire(r, now);
	pthread_mutex_lock(&r->lock);
	if (r->nready > 0 && r->nflying < max && !r->stopping) {
		for (size_t i = 0; i < r->nready; i++) {
			struct ws_count *w = flight_ws(r, a->ready[i].ws_id, 1);
			if (r->nflying < max && w != NULL &&
			    w->flying < r->cfg->runner_workspace_cap) {
				w->ready--;
				w->flying++;
				r->nflying++;
				take[n++] = a->ready[i];
			} else
				a->ready[keep++] = a->ready[i];
		}
		r->nready = keep;
	}
	if (a->waiting && wanted(r) > 0)
		pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&r->lock);
	if (n > 0) {
		if (a->memo_at == 0) {
			flight_pass_begin(r, &a->memo);
			a->memo_at = now;
		}
		r->pass = &a->memo;
		for (size_t i = 0; i < n; i++)
			flight_start(r, &take[i]);	/* the flight owns the job now */
		r->pass = NULL;
	}
}

size_t
ahead_capacity(const struct runner *r)
{
	return r->ahead != NULL ? r->cfg->runner_max_in_flight + r->ahead->depth : 0;
}

size_t
ahead_ready(struct runner *r)
{
	size_t n;

	pthread_mutex_lock(&r->lock);
	n = r->nready;
	pthread_mutex_unlock(&r->lock);
	return n;
}

size_t
ahead_held_ids(struct runner *r, char (*ids)[KR_UUID_MAX], char (*leases)[KR_UUID_MAX],
    size_t max)
{
	size_t n = 0;

	if (r->ahead == NULL)
		return 0;
	pthread_mutex_lock(&r->lock);
	for (; n < r->nready && n < max; n++) {
		memcpy(ids[n], r->ahead->ready[n].id, KR_UUID_MAX);
		if (leases != NULL)
			memcpy(leases[n], r->ahead->ready[n].lease, KR_UUID_MAX);
	}
	pthread_mutex_unlock(&r->lock);
	return n;
}

int
ahead_drop(struct runner *r, const char *id, const char *lease)
{
	struct ahead *a = r->ahead;
	struct ws_count *w;
	size_t i;

	pthread_mutex_lock(&r->lock);
	for (i = 0; i < r->nready; i++)
		if (strcmp(a->ready[i].id, id) == 0 && strcmp(a->ready[i].lease, lease) == 0)
			break;
	if (i == r->nready) {
		pthread_mutex_unlock(&r->lock);
		return 0;
	}
	if ((w = flight_ws(r, a->ready[i].ws_id, 0)) != NULL && w->ready > 0)
		w->ready--;
	kr_claimed_release(&a->ready[i]);
	memmove(&a->ready[i], &a->ready[i + 1], (r->nready - i - 1) * sizeof(a->ready[0]));
	r->nready--;
	if (a->waiting && wanted(r) > 0)
		pthread_cond_signal(&a->cond);	/* its place is free for a claim */
	pthread_mutex_unlock(&r->lock);
	return 1;
}

void
ahead_stop(struct runner *r)
{
	struct ahead *a = r->ahead;
	size_t n;

	if (a == NULL)
		return;
	pthread_mutex_lock(&r->lock);
	a->stop = 1;
	pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&r->lock);
	pthread_join(a->thread, NULL);
	/* The thread is gone: what it claimed and nobody started goes back. */
	if ((n = r->nready) > 0)
		kr_info("handing back %zu job(s) claimed ahead", n);
	for (size_t i = 0; i < n; i++) {
		(void)kr_queue_release(r->db, &a->ready[i]);
		kr_claimed_release(&a->ready[i]);
	}
	r->nready = 0;
	if (a->memo_at != 0) {
		r->pass = &a->memo;
		flight_pass_end(r);
	}
	pthread_cond_destroy(&a->cond);
	close(a->wake);
	free(a->ready);
	free(a->take);
	free(a);
	r->ahead = NULL;
}
