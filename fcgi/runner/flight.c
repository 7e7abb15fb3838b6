/*
 * The life of a job in the runner: pick the next key (read fresh), call the provider on the
 * multi handle, and act on the answer (design.md, "Key selection" and "Job lifecycle"):
 * success delivers; auth, quota and rate-limit failures mark the key and move on to the next
 * key at once; transient failures back off and, after TRANSIENT_PER_PROVIDER of them, fall
 * through to the next provider; request errors fail the job.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kr_crypto.h"
#include "kr_keys.h"
#include "kr_log.h"
#include "kr_time.h"
#include "runner.h"

#define TRANSIENT_PER_PROVIDER	2	/* transient failures before the next provider */
#define KEY_TOUCH_MS		10000	/* last_used_at's precision (kr_select's use_stale) */

static void flight_next(struct runner *r, struct flight *f);

struct ws_count *
flight_ws(struct runner *r, const char *ws_id, int create)
{
	size_t max = r->cfg->runner_max_in_flight * 3 / 2 + 1;

	for (size_t i = 0; i < r->nws; i++)
		if (strcmp(r->ws[i].ws_id, ws_id) == 0)
			return &r->ws[i];
	if (!create || r->nws == max)
		return NULL;
	memset(&r->ws[r->nws], 0, sizeof(r->ws[0]));
	snprintf(r->ws[r->nws].ws_id, sizeof(r->ws[0].ws_id), "%s", ws_id);
	return &r->ws[r->nws++];
}

void
flight_ws_forget(struct runner *r)
{
	size_t i = 0;

	while (i < r->nws) {
		r->ws[i].batch = 0;
		if (r->ws[i].flying == 0 && r->ws[i].ready == 0)
			r->ws[i] = r->ws[--r->nws];
		else
			i++;
	}
}

/* The slot is free again. */
static void
flight_end(struct runner *r, struct flight *f)
{
	struct ws_count *w;

	if (f->call != NULL) {
		curl_multi_remove_handle(r->multi, kr_llm_call_easy(f->call));
		kr_llm_call_free(&f->call);
	}
	pthread_mutex_lock(&r->lock);
	if ((w = flight_ws(r, f->job.ws_id, 0)) != NULL && w->flying > 0)
		w->flying--;
	r->nflying--;
	pthread_mutex_unlock(&r->lock);
	kr_claimed_release(&f->job);
	memset(f, 0, sizeof(*f));
	r->free_slots[r->nfree++] = (size_t)(f - r->flights);
}

void
flight_start(struct runner *r, const struct kr_claimed *job)
{
	struct flight *f;

	if (r->nfree == 0) {	/* cannot happen: the caller counted the slot */
		kr_error("no free slot for job %s", job->id);
		return;
	}
	f = &r->flights[r->free_slots[--r->nfree]];
	memset(f, 0, sizeof(*f));
	f->job = *job;
	f->used = 1;
	flight_next(r, f);
}

static void
db_time_now(char out[KR_TIME_MAX])
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(out, KR_TIME_MAX, "%04u-%02u-%02u %02u:%02u:%02u.%03u",
	    (unsigned)(tm.tm_year + 1900) % 10000u, (unsigned)(tm.tm_mon + 1) % 100u,
	    (unsigned)tm.tm_mday % 100u, (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u,
	    (unsigned)tm.tm_sec % 100u, (unsigned)(ts.tv_nsec / 1000000L) % 1000u);
}

/* Fail the job (the flight ends). */
static void
flight_fail(struct runner *r, struct flight *f, const char *error)
{
	enum kr_queue_result res;

	if (kr_queue_fail(r->db, &f->job, error, &res) != KR_DB_OK)
		kr_warn("job %s: could not record its failure; its lease will expire", f->job.id);
	r->done_failed++;
	flight_end(r, f);
}

/* Give the job back for a later attempt (the flight ends). */
static void
flight_later(struct runner *r, struct flight *f, long delay_ms, const char *error)
{
	enum kr_queue_result res;

	if (kr_queue_retry_later(r->db, &f->job, delay_ms, error, &res) != KR_DB_OK)
		kr_warn("job %s: could not reschedule it; its lease will expire", f->job.id);
	flight_end(r, f);
}

/* Milliseconds until an RFC 3339 time (at least 100). */
static long
ms_until(const char *rfc3339)
{
	struct tm tm;
	struct timespec now;
	time_t t;

	memset(&tm, 0, sizeof(tm));
	if (sscanf(rfc3339, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
	    &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
		return 1000;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	t = timegm(&tm) + 1;	/* round the milliseconds up */
	clock_gettime(CLOCK_REALTIME, &now);
	return t > now.tv_sec ? (long)(t - now.tv_sec) * 1000 : 100;
}

/*
 * Drop candidates of providers that already failed transiently too often for this job, so
 * the job falls through the chain; unless that would leave nothing to try.
 */
static void
drop_exhausted_providers(struct runner *r, struct flight *f, struct kr_candidates *c)
{
	struct kr_db_res res;
	size_t k = 0;

	if (f->job.attempts == 0 ||
	    kr_queue_transient_providers(r->db, f->job.id, TRANSIENT_PER_PROVIDER, &res) !=
	    KR_DB_OK)
		return;
	for (size_t i = 0; i < c->n; i++) {
		int gone = 0;
		for (unsigned row = 0; row < res.nrows && !gone; row++)
			gone = strcmp(kr_db_cell(&res, row, 0), c->v[i].prov->slug) == 0;
		if (!gone)
			c->v[k++] = c->v[i];
	}
	/* With no other provider left, the last ones are retried until maxAttempts. */
	if (k > 0)
		c->n = k;
	kr_db_res_free(&res);
}

void
flight_pass_begin(struct runner *r, struct pass *p)
{
	memset(p, 0, sizeof(*p));
	r->pass = p;
}

void
flight_pass_end(struct runner *r)
{
	struct pass *p = r->pass;

	if (p == NULL)
		return;
	for (size_t i = 0; i < p->npicks; i++)
		kr_candidates_release(&p->picks[i].c);
	for (size_t i = 0; i < p->nsecrets; i++)
		if (p->secrets[i].secret != NULL) {
			kr_wipe(p->secrets[i].secret, p->secrets[i].len);
			free(p->secrets[i].secret);
		}
	free(p->picks);
	free(p->secrets);
	r->pass = NULL;
}

/* c becomes a copy (the caller releases it) of a candidate list, or of nothing. */
static enum kr_db_err
candidates_copy(const struct pass_pick *pk, struct kr_candidates *c)
{
	memset(c, 0, sizeof(*c));
	if (pk->rc != KR_DB_OK)
		return pk->rc;
	memcpy(c->earliest_cooldown, pk->c.earliest_cooldown, sizeof(c->earliest_cooldown));
	if (pk->c.n == 0)
		return KR_DB_OK;
	if ((c->v = calloc(pk->c.n, sizeof(*c->v))) == NULL)
		return KR_DB_ERROR;
	memcpy(c->v, pk->c.v, pk->c.n * sizeof(*c->v));
	c->n = pk->c.n;
	return KR_DB_OK;
}

/* The candidates of a job's next attempt: shared within a pass, else read now. */
static enum kr_db_err
candidates(struct runner *r, const struct flight *f, const struct kr_provider *want,
    struct kr_candidates *c)
{
	struct pass *p = r->pass;
	struct pass_pick *pk;

	if (p == NULL)
		return kr_select_candidates(r->db, r->cfg, f->job.ws_id, want, c);
	for (size_t i = 0; i < p->npicks; i++)
		if (p->picks[i].want == want && strcmp(p->picks[i].ws_id, f->job.ws_id) == 0)
			return candidates_copy(&p->picks[i], c);
	if ((pk = reallocarray(p->picks, p->npicks + 1, sizeof(*pk))) == NULL)
		return kr_select_candidates(r->db, r->cfg, f->job.ws_id, want, c);
	p->picks = pk;
	pk = &p->picks[p->npicks++];
	memset(pk, 0, sizeof(*pk));
	snprintf(pk->ws_id, sizeof(pk->ws_id), "%s", f->job.ws_id);
	pk->want = want;
	pk->rc = kr_select_candidates(r->db, r->cfg, f->job.ws_id, want, &pk->c);
	return candidates_copy(pk, c);
}

/* A copy of a secret (the caller wipes and frees it); -1 when there is none. */
static int
secret_copy(const struct pass_secret *ps, char **secret, size_t *len)
{
	if (ps->secret == NULL || (*secret = malloc(ps->len + 1)) == NULL)
		return -1;
	memcpy(*secret, ps->secret, ps->len + 1);
	*len = ps->len;
	return 0;
}

/* The secret of a candidate: shared within a pass, else read now. */
static int
key_secret(struct runner *r, const char *ws_id, const struct kr_candidate *c, char **out,
    size_t *len)
{
	struct pass *p = r->pass;
	struct pass_secret *ps;

	*out = NULL;
	if (p == NULL)
		return kr_select_secret(r->db, ws_id, c, out, len);
	for (size_t i = 0; i < p->nsecrets; i++) {
		ps = &p->secrets[i];
		if (ps->prov == c->prov && ps->system_index == c->system_index &&
		    strcmp(ps->key_id, c->key_id) == 0 && strcmp(ps->ws_id, ws_id) == 0)
			return secret_copy(ps, out, len);
	}
	if ((ps = reallocarray(p->secrets, p->nsecrets + 1, sizeof(*ps))) == NULL)
		return kr_select_secret(r->db, ws_id, c, out, len);
	p->secrets = ps;
	ps = &p->secrets[p->nsecrets++];
	memset(ps, 0, sizeof(*ps));
	snprintf(ps->ws_id, sizeof(ps->ws_id), "%s", ws_id);
	snprintf(ps->key_id, sizeof(ps->key_id), "%s", c->key_id);
	ps->prov = c->prov;
	ps->system_index = c->system_index;
	if (kr_select_secret(r->db, ws_id, c, &ps->secret, &ps->len) != 0)
		ps->secret = NULL;
	return secret_copy(ps, out, len);
}

/* Build and add the call for the chosen candidate; -1 when its secret is gone. */
static int
flight_call(struct runner *r, struct flight *f, const struct kr_candidate *c)
{
	struct kr_llm_msg one = { "user", f->job.input }, *msgs = &one;
	struct kr_llm_request req;
	struct kr_db_res hist = { 0, 0, NULL, NULL };
	size_t nmsgs = 1, len = 0;
	char *key = NULL, err[256];
	int rc = -1;

	if (key_secret(r, f->job.ws_id, c, &key, &len) != 0)
		return -1;
	if (f->job.has_history) {
		/* Read by the claim thread: the first call does not wait for the database. The
		 * job keeps it no longer (later attempts read it again here, as they are rare). */
		hist = f->job.history;
		memset(&f->job.history, 0, sizeof(f->job.history));
		f->job.has_history = 0;
	} else if (f->job.chat_id[0] != '\0' &&
	    kr_queue_history(r->db, &f->job, HISTORY_MAX, &hist) != KR_DB_OK)
		kr_db_res_free(&hist);
	if (hist.nrows > 0 && (msgs = calloc(hist.nrows + 1, sizeof(*msgs))) != NULL) {
		for (unsigned i = 0; i < hist.nrows; i++) {
			msgs[i].role = strcmp(kr_db_cell(&hist, i, 0), "out") == 0 ? "assistant" :
			    "user";
			msgs[i].content = kr_db_cell(&hist, i, 1);
		}
		nmsgs = hist.nrows;
		/* A chat job's input is its `in` message, the last of the history already; a
		 * task or a schedule posted into a chat asks its own question after it. */
		if (strcmp(f->job.type, "chat") != 0)
			msgs[nmsgs++] = one;
	} else
		msgs = &one;
	memset(&req, 0, sizeof(req));
	req.prov = c->prov;
	req.base_url = c->base_url;
	req.key = key;
	req.keylen = len;
	req.model = !c->is_fallback && f->job.requested_model[0] ? f->job.requested_model :
	    c->model;
	req.system = f->job.system_prompt;
	req.msgs = msgs;
	req.nmsgs = nmsgs;
	req.timeout_ms = (long)r->cfg->runner_attempt_timeout_seconds * 1000;
	f->call = kr_llm_call_new(r->cfg, &req, 0, err, sizeof(err));
	kr_wipe(key, len);
	free(key);
	if (f->call != NULL) {
		f->cand = *c;
		if (!c->is_fallback && f->job.requested_model[0])
			snprintf(f->cand.model, sizeof(f->cand.model), "%s", f->job.requested_model);
		db_time_now(f->started_at);
		curl_easy_setopt(kr_llm_call_easy(f->call), CURLOPT_PRIVATE, f);
		curl_multi_add_handle(r->multi, kr_llm_call_easy(f->call));
		rc = 0;
	} else
		kr_warn("job %s: cannot call %s: %s", f->job.id, c->prov->slug, err);
	if (msgs != &one)
		free(msgs);
	kr_db_res_free(&hist);
	return rc;
}

/* Start the next attempt of a job in flight, or end it when there is nothing to try. */
static void
flight_next(struct runner *r, struct flight *f)
{
	const struct kr_provider *want = kr_provider_find(f->job.requested_provider);
	struct kr_candidates c;
	char msg[256];

	if (r->stopping) {
		(void)kr_queue_release(r->db, &f->job);
		flight_end(r, f);
		return;
	}
	if (candidates(r, f, want, &c) != KR_DB_OK) {
		flight_later(r, f, 1000, "database error while choosing a key");
		return;
	}
	drop_exhausted_providers(r, f, &c);
	for (size_t i = 0; i < c.n; i++)
		if (flight_call(r, f, &c.v[i]) == 0) {
			kr_candidates_release(&c);
			return;
		}
	if (c.earliest_cooldown[0] != '\0') {
		snprintf(msg, sizeof(msg), "every usable key is rate limited until %s",
		    c.earliest_cooldown);
		flight_later(r, f, ms_until(c.earliest_cooldown), msg);
	} else
		flight_fail(r, f, f->job.attempts > 0 ? "no provider left to try after the "
		    "failures above" : "no usable key: add a key for the primary provider or its "
		    "fallback chain (or the model or base URL it needs: see the provider "
		    "settings)");
	kr_candidates_release(&c);
}

/* What an attempt taught about its key, as a kr_db_tx body's argument. */
struct record_tx {
	const struct flight		*f;
	const struct kr_llm_result	*res;
};

/*
 * The key's health and, when its status changed, the key_status_changed event (the key as
 * the API shows it).
 */
static enum kr_db_err
record_key_in_tx(struct kr_db *db, void *arg)
{
	const struct record_tx *t = arg;
	const struct flight *f = t->f;
	enum kr_db_err rc;
	int changed = 0;

	rc = kr_keys_record(db, f->job.ws_id, f->cand.key_id, f->cand.fingerprint, t->res, 0, 1,
	    &changed);
	if (rc == KR_DB_ABORT)
		return KR_DB_OK;	/* rotated or deleted while the call was out */
	if (rc != KR_DB_OK || !changed)
		return rc;
	return kr_keys_event(db, f->job.ws_id, f->cand.key_id);
}

/* The slot of key_id in r->touched. */
static struct key_touch *
touch_slot(struct runner *r, const char *key_id)
{
	uint32_t h = 2166136261u;

	for (const char *p = key_id; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return &r->touched[h % KEY_TOUCH_SLOTS];
}

/* Whether this runner set the key's last_used_at within KEY_TOUCH_MS. */
static int
touched_lately(struct runner *r, const char *key_id)
{
	const struct key_touch *t = touch_slot(r, key_id);

	return strcmp(t->key_id, key_id) == 0 && kr_time_mono_ms() - t->at < KEY_TOUCH_MS;
}

/* This runner set the key's last_used_at now (another key sharing the slot is forgotten). */
static void
touched_now(struct runner *r, const char *key_id)
{
	struct key_touch *t = touch_slot(r, key_id);

	memcpy(t->key_id, key_id, sizeof(t->key_id));
	t->at = kr_time_mono_ms();
}

/*
 * Tell the key's health, and its status change as an event in the same transaction (run
 * again on deadlock). On a database error neither is written and the job goes on.
 */
static void
record_key(struct runner *r, struct flight *f, const struct kr_llm_result *res)
{
	struct record_tx t = { f, res };

	if (f->cand.key_id[0] == '\0')
		return;
	/* A success on a key that is valid and healthy changes nothing but last_used_at,
	 * which is kept to ten seconds: no write, and no hot row, on the common path. The
	 * candidates read before the first success all say it is stale: only that first
	 * success writes. */
	if (res->cls == KR_LLM_OK && f->cand.clean &&
	    (!f->cand.use_stale || touched_lately(r, f->cand.key_id)))
		return;
	if (kr_db_tx(r->db, record_key_in_tx, &t, 0) == KR_DB_OK && res->cls == KR_LLM_OK)
		touched_now(r, f->cand.key_id);
}

/* 1 s, 2 s, 4 s ... capped, ±25 % jitter, never below the provider's hint. */
static long
backoff_ms(const struct runner *r, unsigned attempt, long hint_ms)
{
	long cap = (long)r->cfg->runner_backoff_max_seconds * 1000, d = 1000;
	unsigned char rnd[2];

	for (unsigned i = 1; i < attempt && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	if (kr_random(rnd, sizeof(rnd)) == KR_CRYPTO_OK)
		d = d * 3 / 4 + (long)(((unsigned)rnd[0] << 8 | rnd[1]) % (unsigned)(d / 2 + 1));
	return hint_ms > d ? hint_ms : d;
}

/*
 * A success goes to the store thread and frees the slot (store.c): the call is over, so
 * it no longer counts against max_in_flight or its workspace's cap. With no memory for
 * that, it is stored here and now.
 */
static void
flight_succeeded(struct runner *r, struct flight *f, struct kr_llm_result *res,
    struct store_list *l)
{
	struct stored *s = store_item(f, res);
	struct kr_attempt a = { f->cand.prov->slug, f->cand.key_id[0] ? f->cand.key_id : NULL,
	    f->cand.model, f->cand.is_fallback, "", res, kr_llm_class_name(res->cls) };
	enum kr_queue_result out;

	if (s != NULL) {
		store_add(l, s);
		flight_end(r, f);
		return;
	}
	snprintf(a.started_at, sizeof(a.started_at), "%s", f->started_at);
	if (kr_queue_succeed(r->db, &f->job, &a, &out) != KR_DB_OK)
		kr_warn("job %s: could not store its answer; it will run again", f->job.id);
	flight_end(r, f);
}

static void
flight_answered(struct runner *r, struct flight *f, struct kr_llm_result *res,
    struct store_list *l)
{
	struct kr_attempt a = { f->cand.prov->slug, f->cand.key_id[0] ? f->cand.key_id : NULL,
	    f->cand.model, f->cand.is_fallback, "", res, kr_llm_class_name(res->cls) };
	enum kr_queue_result out;

	snprintf(a.started_at, sizeof(a.started_at), "%s", f->started_at);
	record_key(r, f, res);
	if (res->cls == KR_LLM_OK) {
		flight_succeeded(r, f, res, l);
		return;
	}
	if (kr_queue_attempt_failed(r->db, &f->job, &a, &out) != KR_DB_OK || out == KR_QUEUE_LOST) {
		flight_end(r, f);	/* cancelled, rescued, or the database is away */
		return;
	}
	f->job.attempts++;
	if (res->cls == KR_LLM_REQUEST)
		flight_fail(r, f, res->message);
	else if (f->job.attempts >= f->job.max_attempts)
		flight_fail(r, f, res->message);
	else if (res->cls == KR_LLM_TRANSIENT)
		flight_later(r, f, backoff_ms(r, f->job.attempts, res->retry_after_ms),
		    res->message);
	else
		flight_next(r, f);	/* auth, quota, rate limit: the next key at once */
}

/*
 * A transfer ended: a success joins l (stored by the store thread), anything else is
 * acted on at once.
 */
static void
transfer_done(struct runner *r, CURL *easy, CURLcode rc, struct store_list *l)
{
	struct kr_llm_result res;
	struct flight *f = NULL;

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&f);
	if (f == NULL || !f->used || f->call == NULL)
		return;
	memset(&res, 0, sizeof(res));
	curl_multi_remove_handle(r->multi, easy);
	if (kr_llm_call_finish(f->call, rc, &res) == 1) {
		curl_multi_add_handle(r->multi, easy);	/* zai's check fallback */
		return;
	}
	kr_llm_call_free(&f->call);
	flight_answered(r, f, &res, l);
	kr_llm_result_release(&res);
}

void
flight_transfers_done(struct runner *r, CURL *const *easy, const CURLcode *rc, size_t n)
{
	struct store_list l = { NULL, NULL, 0 };

	for (size_t i = 0; i < n; i++)
		transfer_done(r, easy[i], rc[i], &l);
	store_put(r, &l);
}

/* The attempts log keeps a call that was aborted (outcome "cancelled"). */
static void
log_aborted(struct runner *r, struct flight *f)
{
	struct kr_llm_result res = { .cls = KR_LLM_TRANSIENT, .retry_after_ms = -1 };
	struct kr_attempt a = { NULL, NULL, NULL, 0, "", &res, "cancelled" };

	if (f->call == NULL)
		return;
	snprintf(res.message, sizeof(res.message), "call aborted: the job was cancelled or "
	    "taken over");
	a.provider = f->cand.prov->slug;
	a.key_id = f->cand.key_id[0] ? f->cand.key_id : NULL;
	a.model = f->cand.model;
	a.is_fallback = f->cand.is_fallback;
	snprintf(a.started_at, sizeof(a.started_at), "%s", f->started_at);
	(void)kr_queue_log_attempt(r->db, &f->job, &a);
}

/* A held check's view: the flights first, then copies of the ready jobs' ids and leases. */
struct held_check {
	const char		**ids, **leases;
	struct flight		**fl;		/* nfl of them */
	char			(*rid)[KR_UUID_MAX], (*rlease)[KR_UUID_MAX];
	int			*held;
	size_t			 nfl, nready;
};

void
flight_check_held(struct runner *r)
{
	size_t max = r->cfg->runner_max_in_flight, cap = max + ahead_capacity(r);
	struct held_check c;

	if (r->nflying == 0 && ahead_ready(r) == 0)
		return;		/* idle */
	c = (struct held_check){ calloc(cap, sizeof(char *)), calloc(cap, sizeof(char *)),
	    calloc(max, sizeof(struct flight *)), calloc(cap, KR_UUID_MAX),
	    calloc(cap, KR_UUID_MAX), calloc(cap, sizeof(int)), 0, 0 };
	if (c.ids == NULL || c.leases == NULL || c.fl == NULL || c.rid == NULL ||
	    c.rlease == NULL || c.held == NULL)
		goto out;
	for (size_t i = 0; i < max; i++)
		if (r->flights[i].used) {
			c.fl[c.nfl] = &r->flights[i];
			c.ids[c.nfl] = r->flights[i].job.id;
			c.leases[c.nfl++] = r->flights[i].job.lease;
		}
	c.nready = ahead_held_ids(r, c.rid, c.rlease, cap - c.nfl);
	for (size_t i = 0; i < c.nready; i++) {
		c.ids[c.nfl + i] = c.rid[i];
		c.leases[c.nfl + i] = c.rlease[i];
	}
	if (c.nfl + c.nready == 0 || kr_queue_held(r->db, r->id, c.ids, c.leases,
	    c.nfl + c.nready, c.held) != KR_DB_OK)
		goto out;		/* the database is away: look again next time */
	for (size_t i = 0; i < c.nfl; i++)
		if (!c.held[i]) {
			kr_info("job %s was cancelled or taken over: call aborted", c.fl[i]->job.id);
			log_aborted(r, c.fl[i]);
			flight_end(r, c.fl[i]);
		}
	/* Only this thread starts ready jobs: those checked are still ready, or dropped. */
	for (size_t i = 0; i < c.nready; i++)
		if (!c.held[c.nfl + i] && ahead_drop(r, c.rid[i], c.rlease[i]))
			kr_info("job %s was cancelled or taken over before its call", c.rid[i]);
out:
	free(c.ids);
	free(c.leases);
	free(c.fl);
	free(c.rid);
	free(c.rlease);
	free(c.held);
}

void
flight_release_all(struct runner *r)
{
	for (size_t i = 0; i < r->cfg->runner_max_in_flight; i++)
		if (r->flights[i].used) {
			(void)kr_queue_release(r->db, &r->flights[i].job);
			flight_end(r, &r->flights[i]);
		}
}
