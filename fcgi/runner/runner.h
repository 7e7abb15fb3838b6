/*
 * The runner's state, shared by its main loop (main.c) and the life of each job in flight
 * (flight.c). Single-threaded: one MariaDB connection, one curl multi handle.
 */
#ifndef KR_RUNNER_H
#define KR_RUNNER_H

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

/* Jobs in flight per workspace, for the per-workspace cap. */
struct ws_count {
	char		ws_id[KR_UUID_MAX];
	unsigned	flying;
	unsigned	batch;		/* taken by the claim in progress */
};

struct runner {
	const struct kr_config	*cfg;
	struct kr_db		*db;
	CURLM			*multi;
	char			 id[KR_UUID_MAX];
	int			 registered;
	int			 stopping;
	struct flight		*flights;	/* cfg->runner_max_in_flight slots */
	size_t			 nflying;
	struct ws_count		*ws;
	size_t			 nws;
	uint64_t		 done_ok, done_failed;
};

/* flight.c */
/* Take a new claimed job into a free slot and start its first attempt. */
void	flight_start(struct runner *r, const struct kr_claimed *job);
/* A transfer of the multi handle ended. */
void	flight_transfer_done(struct runner *r, CURL *easy, CURLcode rc);
/*
 * Transfers of one pass ended: failures are acted on one by one, the answers are stored
 * together in one transaction (one commit for up to KR_QUEUE_BATCH_MAX jobs).
 */
void	flight_transfers_done(struct runner *r, CURL *const *easy, const CURLcode *rc,
	    size_t n);
/* Abort flights whose lease is gone (cancelled or rescued); called every half second. */
void	flight_check_held(struct runner *r);
/* Shutdown: abort every call in hand and give the jobs back. */
void	flight_release_all(struct runner *r);
/* Per-workspace cap for kr_queue_claim. */
int	flight_may_take(const char *ws_id, void *arg);
void	flight_claim_done(struct runner *r);

#endif
