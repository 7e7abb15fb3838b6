/*
 * The runner's state, shared by its main loop (main.c) and the life of each job in flight
 * (flight.c): one MariaDB connection, one curl multi handle driven through its socket
 * interface (epoll), so each pass costs what the sockets with news cost. Two threads with
 * connections of their own claim jobs ahead (ahead.c) and store answers (store.c); what
 * the claim thread shares with the main loop is under r->lock.
 */
#ifndef KR_RUNNER_H
#define KR_RUNNER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "kr_config.h"
#include "kr_db.h"
#include "kr_llm.h"
#include "kr_queue.h"
#include "kr_select.h"

/* A claimed job and, while a provider answers, its call. */
struct flight {
	struct kr_claimed	 job;
	struct kr_llm_call	*call;		/* NULL between attempts */
	struct kr_candidate	 cand;		/* the key of the call in hand */
	char			 started_at[KR_TIME_MAX];	/* DATETIME(3) text */
	int			 used;
};

/* Jobs in flight and ready per workspace, for the per-workspace cap (under r->lock). */
struct ws_count {
	char		ws_id[KR_UUID_MAX];
	unsigned	flying;
	unsigned	ready;		/* claimed ahead, not started */
	unsigned	batch;		/* taken by the claim in progress */
};

/*
 * What first attempts starting within a few milliseconds of each other share (ahead.c,
 * PASS_MS): the key choice of each workspace (and requested provider) and the secrets of
 * the keys chosen, read from the database once for all of them when the first starts.
 * Wiped and freed when the pass ends. Later attempts (failover, retries) read afresh.
 */
struct pass_pick {
	char			 ws_id[KR_UUID_MAX];
	const struct kr_provider *want;
	enum kr_db_err		 rc;
	struct kr_candidates	 c;
};

struct pass_secret {
	char			 ws_id[KR_UUID_MAX];
	char			 key_id[KR_UUID_MAX];
	const struct kr_provider *prov;
	unsigned		 system_index;
	char			*secret;	/* NULL: gone or unreadable */
	size_t			 len;
};

struct pass {
	struct pass_pick	*picks;
	size_t			 npicks;
	struct pass_secret	*secrets;
	size_t			 nsecrets;
};

/*
 * Keys whose last_used_at this runner set lately (flight.c), by a hash of the key id: a
 * success on a healthy key sets it once per KEY_TOUCH_MS, not once per call.
 */
#define KEY_TOUCH_SLOTS	256
#define HISTORY_MAX	40	/* chat messages sent as context */
struct key_touch {
	char	key_id[KR_UUID_MAX];
	int64_t	at;			/* kr_time_mono_ms */
};

struct store;		/* store.c */
struct stored;
struct ahead;		/* ahead.c */

struct runner {
	const struct kr_config	*cfg;
	struct kr_db		*db;
	CURLM			*multi;
	int			 epfd;		/* the sockets curl asks to watch */
	int64_t			 curl_due;	/* when curl's timer fires; -1: no timer */
	char			 id[KR_UUID_MAX];
	int			 registered;
	struct flight		*flights;	/* cfg->runner_max_in_flight slots */
	size_t			*free_slots;	/* indexes of the unused ones, a stack */
	size_t			 nfree;
	struct pass		*pass;		/* while first attempts start */
	struct key_touch	 touched[KEY_TOUCH_SLOTS];
	/* Shared with the claim thread (ahead.c), under lock: */
	pthread_mutex_t		 lock;
	int			 stopping;
	size_t			 nflying;	/* slots in use */
	size_t			 nready;	/* jobs claimed ahead, not started */
	struct ws_count		*ws;		/* max_in_flight * 3 / 2 + 1 of them */
	size_t			 nws;
	struct ahead		*ahead;		/* the claims' thread */
	struct store		*store;		/* the answers' thread */
	uint64_t		 done_failed;
};

/* flight.c */
/*
 * Take a claimed job into a free slot and start its first attempt; the caller counted it
 * in nflying and its workspace's flying already.
 */
void	flight_start(struct runner *r, const struct kr_claimed *job);
/*
 * Transfers of one pass ended: failures are acted on one by one, the answers go to the
 * store thread together.
 */
void	flight_transfers_done(struct runner *r, CURL *const *easy, const CURLcode *rc,
	    size_t n);
/*
 * Abort flights whose lease is gone (cancelled or rescued) and drop such ready jobs before
 * their call; called every half second.
 */
void	flight_check_held(struct runner *r);
/* Shutdown: abort every call in hand and give the jobs back. */
void	flight_release_all(struct runner *r);
/* Around flight_start calls: the first attempts share their key reads (r->pass). */
void	flight_pass_begin(struct runner *r, struct pass *p);
void	flight_pass_end(struct runner *r);
/* A workspace's counts (created when asked and there is room); with r->lock held. */
struct ws_count	*flight_ws(struct runner *r, const char *ws_id, int create);
/* After a claim: forget the batch counts, and workspaces with nothing left; r->lock held. */
void	flight_ws_forget(struct runner *r);

/* ahead.c: jobs are claimed by a thread of their own, ahead of need (see there). */
int	ahead_start(struct runner *r);
/* An eventfd readable when claimed jobs are ready. */
int	ahead_wake_fd(const struct runner *r);
/* Start ready jobs in the free slots (within the workspace caps); wake the claims. */
void	ahead_take(struct runner *r);
/* How many jobs can be ready at most, and how many are. */
size_t	ahead_capacity(const struct runner *r);
size_t	ahead_ready(struct runner *r);
/*
 * Copy the ids of the ready jobs into ids, and their leases into leases unless it is NULL
 * (at most max); the count copied.
 */
size_t	ahead_held_ids(struct runner *r, char (*ids)[KR_UUID_MAX], char (*leases)[KR_UUID_MAX],
	    size_t max);
/* Drop the ready job id claimed under lease (cancelled or taken over): 1, or 0: not ready. */
int	ahead_drop(struct runner *r, const char *id, const char *lease);
/* End the thread and hand back the jobs it claimed that did not start. */
void	ahead_stop(struct runner *r);

/* store.c: answers are stored by a thread of their own (see there). */
struct store_list {
	struct stored	*head, **tail;
	size_t		 n;
};
int	store_start(struct runner *r);
/* The answer of a flight, taken over (job and text) for storing; NULL without memory. */
struct stored	*store_item(struct flight *f, struct kr_llm_result *res);
void	store_add(struct store_list *l, struct stored *s);
/* Queue a pass's answers for storing (the list is emptied). */
void	store_put(struct runner *r, struct store_list *l);
/*
 * Answers handed over and not yet stored (and freed by store_woken); *waiting (unless
 * NULL) gets those of them not taken into a batch yet.
 */
size_t	store_pending(struct runner *r, size_t *waiting);
/* Copy the ids of answers not yet stored into ids (at most max); the count copied. */
size_t	store_held_ids(struct runner *r, char (*ids)[KR_UUID_MAX], size_t max);
/* An eventfd readable after each stored batch; store_woken frees the stored answers. */
int	store_wake_fd(const struct runner *r);
void	store_woken(struct runner *r);
/* Store what is queued, then end the thread; counts of answers stored and found lost. */
void	store_stop(struct runner *r, uint64_t *ok, uint64_t *lost);

/* Jobs this runner holds: ready, calls in flight, and answers waiting to be stored. */
size_t	runner_held(struct runner *r);

#endif
