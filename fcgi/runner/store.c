/*
 * The answers' own thread: the main loop hands over each answered job and frees its slot
 * at once; this thread stores the answers with its own MariaDB connection, up to
 * KR_QUEUE_BATCH_MAX per transaction (kr_queue_succeed_batch), while the main loop goes on
 * driving calls. Until stored, a job stays `running` under this runner's lease
 * (extended by the heartbeat like any other), so a runner that dies with answers queued
 * here loses nothing that a rescue does not run again; while the database is away the
 * answers are kept and stored once it is back. The call is over, so a job waiting
 * here no longer counts against runner.max_in_flight or its workspace's cap (those limit
 * provider calls); but while as many answers wait behind the batch being stored as there
 * are slots, nothing is claimed (ahead.c): a slow database slows the claims, it does not
 * grow the memory (at most a batch and twice the slots' answers are held here). After each
 * batch the thread hands the stored items back and wakes the main loop (store_wake_fd).
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
#include "runner.h"

struct stored {
	struct kr_claimed	 job;
	struct kr_llm_result	 res;
	const char		*provider;		/* static registry text */
	char			 key_id[KR_UUID_MAX];	/* "" for a system key */
	char			 model[KR_MODEL_MAX + 1];
	int			 is_fallback;
	char			 started_at[KR_TIME_MAX];
	struct stored		*next;
};

struct store {
	struct kr_db	*db;
	pthread_t	 thread;
	pthread_mutex_t	 lock;
	pthread_cond_t	 cond;
	struct stored	*head, **tail;
	size_t		 queued;	/* in the list */
	struct stored	*items[KR_QUEUE_BATCH_MAX];	/* taken by the thread, */
	size_t		 busy;				/* not stored yet */
	struct stored	*done;		/* stored, for the main loop to take back */
	size_t		 ndone;
	int		 stop;
	int		 wake;		/* eventfd, in the main loop's epoll set */
	uint64_t	 ok, lost;
};

struct stored *
store_item(struct flight *f, struct kr_llm_result *res)
{
	struct stored *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->job = f->job;			/* the item owns input, prompt, history now */
	f->job.input = f->job.system_prompt = NULL;
	memset(&f->job.history, 0, sizeof(f->job.history));
	f->job.has_history = 0;
	s->res = *res;				/* and the answer's text */
	res->text = NULL;
	s->provider = f->cand.prov->slug;
	memcpy(s->key_id, f->cand.key_id, sizeof(s->key_id));
	memcpy(s->model, f->cand.model, sizeof(s->model));
	s->is_fallback = f->cand.is_fallback;
	memcpy(s->started_at, f->started_at, sizeof(s->started_at));
	return s;
}

static void
item_free(struct stored *s)
{
	kr_claimed_release(&s->job);
	kr_llm_result_release(&s->res);
	free(s);
}

static void
attempt_of(const struct stored *s, struct kr_attempt *a)
{
	memset(a, 0, sizeof(*a));
	a->provider = s->provider;
	a->key_id = s->key_id[0] != '\0' ? s->key_id : NULL;
	a->model = s->model;
	a->is_fallback = s->is_fallback;
	memcpy(a->started_at, s->started_at, sizeof(a->started_at));
	a->r = &s->res;
	a->outcome = kr_llm_class_name(KR_LLM_OK);
}

/*
 * One transaction for the batch; when it fails as a whole on something else than the
 * connection or a deadlock (bad data in one job), each job is stored alone so that one
 * cannot hold back the others. Returns -1, having stored nothing, while the database is
 * away (the caller tries again later) unless final: then what cannot be stored is left to
 * run again once its lease expires.
 */
static int
store_batch(struct store *st, struct stored *const *items, size_t n, int final)
{
	const struct kr_claimed *jobs[KR_QUEUE_BATCH_MAX] = { NULL };
	const struct kr_attempt *atts[KR_QUEUE_BATCH_MAX] = { NULL };
	struct kr_attempt a[KR_QUEUE_BATCH_MAX];
	enum kr_queue_result out[KR_QUEUE_BATCH_MAX];
	enum kr_db_err rc;

	for (size_t i = 0; i < n; i++) {
		attempt_of(items[i], &a[i]);
		jobs[i] = &items[i]->job;
		atts[i] = &a[i];
	}
	rc = kr_queue_succeed_batch(st->db, jobs, atts, n, out);
	if ((rc == KR_DB_DOWN || rc == KR_DB_RETRY) && !final)
		return -1;
	for (size_t i = 0; i < n; i++) {
		enum kr_db_err one = rc;
		if (rc == KR_DB_ERROR)
			one = kr_queue_succeed(st->db, jobs[i], atts[i], &out[i]);
		if (one != KR_DB_OK)
			kr_warn("job %s: could not store its answer; it will run again",
			    jobs[i]->id);
		else if (out[i] == KR_QUEUE_LOST)
			st->lost++;
		else
			st->ok++;
	}
	return 0;
}

/* Put items[0, n) back at the head of the queue, in their order. */
static void
requeue(struct store *st, struct stored *const *items, size_t n)
{
	for (size_t i = n; i-- > 0;) {
		items[i]->next = st->head;
		if (st->head == NULL)
			st->tail = &items[i]->next;
		st->head = items[i];
	}
	st->queued += n;
}

static void *
store_main(void *arg)
{
	struct store *st = arg;
	struct stored **items = st->items;
	struct timespec until;
	size_t n;
	int final;

	mysql_thread_init();
	pthread_mutex_lock(&st->lock);
	for (;;) {
		while (st->head == NULL && !st->stop)
			pthread_cond_wait(&st->cond, &st->lock);
		if (st->head == NULL)
			break;			/* stopping, and nothing left */
		for (n = 0; n < KR_QUEUE_BATCH_MAX && st->head != NULL; n++) {
			items[n] = st->head;
			if ((st->head = st->head->next) == NULL)
				st->tail = &st->head;
		}
		st->queued -= n;
		st->busy = n;
		final = st->stop;
		pthread_mutex_unlock(&st->lock);
		if (store_batch(st, items, n, final) != 0) {
			/* The database is away: keep the answers, try again in a second. */
			pthread_mutex_lock(&st->lock);
			requeue(st, items, n);
			st->busy = 0;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += 1;
			if (!st->stop)
				pthread_cond_timedwait(&st->cond, &st->lock, &until);
			continue;
		}
		pthread_mutex_lock(&st->lock);
		for (size_t i = 0; i < n; i++) {
			items[i]->next = st->done;
			st->done = items[i];
		}
		st->ndone += n;
		st->busy = 0;
		(void)eventfd_write(st->wake, 1);
	}
	pthread_mutex_unlock(&st->lock);
	kr_db_free(&st->db);
	mysql_thread_end();
	return NULL;
}

int
store_start(struct runner *r)
{
	struct store *st = calloc(1, sizeof(*st));

	if (st == NULL)
		return -1;
	if ((st->db = kr_db_new(r->cfg)) == NULL ||
	    (st->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		kr_db_free(&st->db);
		free(st);
		return -1;
	}
	st->tail = &st->head;
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->cond, NULL);
	if (pthread_create(&st->thread, NULL, store_main, st) != 0) {
		kr_db_free(&st->db);
		close(st->wake);
		pthread_mutex_destroy(&st->lock);
		pthread_cond_destroy(&st->cond);
		free(st);
		return -1;
	}
	r->store = st;
	return 0;
}

void
store_add(struct store_list *l, struct stored *s)
{
	if (l->tail == NULL)
		l->tail = &l->head;
	*l->tail = s;
	l->tail = &s->next;
	l->n++;
}

void
store_put(struct runner *r, struct store_list *l)
{
	struct store *st = r->store;

	if (l->n == 0)
		return;
	pthread_mutex_lock(&st->lock);
	*st->tail = l->head;
	st->tail = l->tail;
	st->queued += l->n;
	pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->lock);
	memset(l, 0, sizeof(*l));
}

size_t
store_held_ids(struct runner *r, char (*ids)[KR_UUID_MAX], size_t max)
{
	struct store *st = r->store;
	size_t n = 0;

	if (st == NULL)
		return 0;
	pthread_mutex_lock(&st->lock);
	for (size_t i = 0; i < st->busy && n < max; i++)
		memcpy(ids[n++], st->items[i]->job.id, KR_UUID_MAX);
	for (struct stored *s = st->head; s != NULL && n < max; s = s->next)
		memcpy(ids[n++], s->job.id, KR_UUID_MAX);
	pthread_mutex_unlock(&st->lock);
	return n;
}

size_t
store_pending(struct runner *r, size_t *waiting)
{
	struct store *st = r->store;
	size_t n = 0;

	if (waiting != NULL)
		*waiting = 0;
	if (st == NULL)
		return 0;
	pthread_mutex_lock(&st->lock);
	n = st->queued + st->busy + st->ndone;
	if (waiting != NULL)
		*waiting = st->queued;
	pthread_mutex_unlock(&st->lock);
	return n;
}

void
store_stop(struct runner *r, uint64_t *ok, uint64_t *lost)
{
	struct store *st = r->store;

	*ok = *lost = 0;
	if (st == NULL)
		return;
	pthread_mutex_lock(&st->lock);
	st->stop = 1;
	pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->lock);
	pthread_join(st->thread, NULL);
	store_woken(r);
	*ok = st->ok;
	*lost = st->lost;
	pthread_mutex_destroy(&st->lock);
	pthread_cond_destroy(&st->cond);
	close(st->wake);
	free(st);
	r->store = NULL;
}

int
store_wake_fd(const struct runner *r)
{
	return r->store->wake;
}

void
store_woken(struct runner *r)
{
	struct store *st = r->store;
	struct stored *done, *next;
	eventfd_t v;

	(void)eventfd_read(st->wake, &v);
	pthread_mutex_lock(&st->lock);
	done = st->done;
	st->done = NULL;
	st->ndone = 0;
	pthread_mutex_unlock(&st->lock);
	for (; done != NULL; done = next) {
		next = done->next;
		item_free(done);
	}
}
