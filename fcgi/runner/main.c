/*
 * keyrelay-runner: the long-lived job runner.
 *
 * The main thread has one MariaDB connection and one curl multi handle with up to
 * runner.max_in_flight provider calls at once. The loop starts claimed jobs in free slots,
 * drives the transfers, and on timers heartbeats (extending its leases), rescues jobs of
 * runners that died, notices cancelled jobs, fires due schedules and prunes old events.
 * Jobs are claimed ahead by a thread of their own (ahead.c), answers stored by another
 * (store.c), each with its own connection, and notifications sent by a third (kr_notify),
 * so none of them holds back the calls.
 * SIGTERM or SIGINT: stop claiming, finish the calls in hand for up to
 * runner.drain_seconds, hand back what is left, mark the runner stopped, exit 0.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <mysql.h>

#include "kr_accounts.h"
#include "kr_config.h"
#include "kr_db.h"
#include "kr_events.h"
#include "kr_log.h"
#include "kr_notify.h"
#include "kr_schedules.h"
#include "kr_startup.h"
#include "kr_time.h"
#include "kr_vault.h"
#include "runner.h"

#define PROG		"keyrelay-runner"
#define HELD_MS		500
#define RESCUE_MS	2000
#define PRUNE_MS	(10 * 60 * 1000)
#define PRUNE_MAX	10000	/* events deleted per pass, about */
#define SCHEDULE_MS	1000
#define NOTIFY_MS	1000

static const char sql_register[] =
    "INSERT INTO runners (id, name, pid, version) VALUES (?,?,?,?) "
    "ON DUPLICATE KEY UPDATE heartbeat_at = NOW(3), stopped_at = NULL";
static const char sql_heartbeat[] =
    "UPDATE runners SET heartbeat_at = NOW(3), in_flight = ? WHERE id = ?";
static const char sql_stopped[] =
    "UPDATE runners SET stopped_at = NOW(3), heartbeat_at = NOW(3) WHERE id = ?";

/*
 * Extend the leases of the jobs this runner holds (ready, calls in flight, answers not
 * stored yet), by id: a job it no longer tracks keeps its lease, which expires, and is
 * rescued.
 */
static void
extend(struct runner *r)
{
	/* Room for every slot, ready job and answer waiting to be stored. */
	size_t max = r->cfg->runner_max_in_flight + ahead_capacity(r) + store_pending(r, NULL);
	size_t n = 0;
	char (*ids)[KR_UUID_MAX];
	const char **p;

	if (runner_held(r) == 0)
		return;
	ids = calloc(max, sizeof(*ids));
	p = calloc(max, sizeof(*p));
	if (ids != NULL && p != NULL) {
		for (size_t i = 0; i < r->cfg->runner_max_in_flight && n < max; i++)
			if (r->flights[i].used)
				memcpy(ids[n++], r->flights[i].job.id, KR_UUID_MAX);
		n += ahead_held_ids(r, ids + n, NULL, max - n);
		n += store_held_ids(r, ids + n, max - n);
		for (size_t i = 0; i < n; i++)
			p[i] = ids[i];
		if (n > 0)
			(void)kr_queue_extend(r->db, r->id, p, n, r->cfg->runner_lease_seconds);
	}
	free(p);
	free(ids);
}

/* Register (first time, or again after the row went missing), heartbeat, extend leases. */
static void
beat(struct runner *r)
{
	struct kr_dbp p[4] = { KR_P_STR(r->id), KR_P_STR(r->cfg->runner_name),
	    KR_P_INT(getpid()), KR_P_STR(PROJECT_VERSION) };
	struct kr_dbp hb[2] = { KR_P_INT(r->nflying), KR_P_STR(r->id) };
	enum kr_db_err rc = KR_DB_ERROR;
	uint64_t n = 0;

	/* heartbeat_at is NOW(3): it always changes, so 0 rows means the row is gone. */
	if (r->registered && (rc = kr_db_exec(r->db, sql_heartbeat, hb, 2, NULL, &n)) ==
	    KR_DB_OK && n > 0)
		goto leases;
	rc = kr_db_exec(r->db, sql_register, p, 4, NULL, NULL);
	if (rc == KR_DB_OK && !r->registered)
		kr_info("registered as runner %s (%s)", r->id, r->cfg->runner_name);
	r->registered = rc == KR_DB_OK;
leases:
	if (rc == KR_DB_OK)
		extend(r);
}

size_t
runner_held(struct runner *r)
{
	return r->nflying + ahead_ready(r) + store_pending(r, NULL);
}

/* CURLMOPT_SOCKETFUNCTION: watch (or stop watching) a socket for curl. */
static int
on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *arg, void *sockp)
{
	struct runner *r = arg;
	struct epoll_event ev;

	(void)easy;
	memset(&ev, 0, sizeof(ev));
	ev.data.fd = fd;
	if (what == CURL_POLL_REMOVE) {
		(void)epoll_ctl(r->epfd, EPOLL_CTL_DEL, fd, NULL);
		return 0;
	}
	ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	if (sockp == NULL) {	/* new to us: remember that it is watched */
		if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) != 0 && errno == EEXIST)
			(void)epoll_ctl(r->epfd, EPOLL_CTL_MOD, fd, &ev);
		(void)curl_multi_assign(r->multi, fd, r);
	} else if (epoll_ctl(r->epfd, EPOLL_CTL_MOD, fd, &ev) != 0 && errno == ENOENT)
		(void)epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: when curl wants to be called for its timeouts. */
static int
on_curl_timer(CURLM *multi, long timeout_ms, void *arg)
{
	struct runner *r = arg;

	(void)multi;
	r->curl_due = timeout_ms < 0 ? -1 : kr_time_mono_ms() + timeout_ms;
	return 0;
}

/* What epoll saw, as curl_multi_socket_action's bitmask. */
static int
curl_select(uint32_t events)
{
	return (events & (EPOLLIN | EPOLLHUP | EPOLLERR) ? CURL_CSELECT_IN : 0) |
	    (events & (EPOLLOUT | EPOLLHUP | EPOLLERR) ? CURL_CSELECT_OUT : 0) |
	    (events & EPOLLERR ? CURL_CSELECT_ERR : 0);
}

/*
 * Wait up to wait_ms for sockets (less when curl's timer is due sooner), let curl act on
 * those with news and on its timer, then hand over the transfers that ended.
 */
static void
drive_transfers(struct runner *r, int wait_ms)
{
	struct epoll_event ev[256];
	CURL *easy[KR_QUEUE_BATCH_MAX];
	CURLcode codes[KR_QUEUE_BATCH_MAX];
	struct CURLMsg *m;
	int running = 0, left = 0, nev;
	int64_t now = kr_time_mono_ms();
	size_t n;

	if (r->curl_due >= 0 && r->curl_due - now < wait_ms)
		wait_ms = r->curl_due > now ? (int)(r->curl_due - now) : 0;
	nev = epoll_wait(r->epfd, ev, (int)(sizeof(ev) / sizeof(ev[0])), wait_ms);
	for (int i = 0; i < nev; i++) {
		if (ev[i].data.fd == store_wake_fd(r))
			store_woken(r);
		else if (r->ahead != NULL && ev[i].data.fd == ahead_wake_fd(r))
			;	/* ahead_take reads it */
		else
			curl_multi_socket_action(r->multi, ev[i].data.fd,
			    curl_select(ev[i].events), &running);
	}
	if (r->curl_due >= 0 && kr_time_mono_ms() >= r->curl_due) {
		r->curl_due = -1;
		curl_multi_socket_action(r->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
	do {
		n = 0;
		while (n < KR_QUEUE_BATCH_MAX && (m = curl_multi_info_read(r->multi, &left)) !=
		    NULL)
			if (m->msg == CURLMSG_DONE) {
				easy[n] = m->easy_handle;
				codes[n++] = m->data.result;
			}
		if (n > 0)
			flight_transfers_done(r, easy, codes, n);
	} while (n == KR_QUEUE_BATCH_MAX);
}

struct timers {
	int64_t	beat, held, rescue, prune, schedule;
};

/*
 * Notifications go out from a thread of their own with its own connection: a slow or
 * failing Telegram never holds back the jobs (issue 4, G5 of seed 000).
 */
struct notifier {
	const struct kr_config	*cfg;
	pthread_t		 thread;
	pthread_mutex_t		 lock;
	pthread_cond_t		 cond;
	int			 stop;
	int			 started;
};

static void *
notifier_main(void *arg)
{
	struct notifier *n = arg;
	struct kr_db *db;
	unsigned sent = 0;

	mysql_thread_init();
	db = kr_db_new(n->cfg);
	pthread_mutex_lock(&n->lock);
	while (!n->stop) {
		struct timespec until;
		pthread_mutex_unlock(&n->lock);
		if (db != NULL && kr_notify_deliver_due(db, n->cfg, KR_NOTIFY_BATCH_MAX, &sent) ==
		    KR_DB_OK && sent > 0)
			kr_debug("delivered %u notification(s)", sent);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += NOTIFY_MS / 1000;
		pthread_mutex_lock(&n->lock);
		if (!n->stop)
			pthread_cond_timedwait(&n->cond, &n->lock, &until);
	}
	pthread_mutex_unlock(&n->lock);
	kr_db_free(&db);
	mysql_thread_end();
	return NULL;
}

static void
notifier_start(struct notifier *n, const struct kr_config *cfg)
{
	memset(n, 0, sizeof(*n));
	n->cfg = cfg;
	pthread_mutex_init(&n->lock, NULL);
	pthread_cond_init(&n->cond, NULL);
	n->started = pthread_create(&n->thread, NULL, notifier_main, n) == 0;
	if (!n->started)
		kr_error("cannot start the notification thread; notifications wait");
}

static void
notifier_stop(struct notifier *n)
{
	pthread_mutex_lock(&n->lock);
	n->stop = 1;
	pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->lock);
	if (n->started)
		pthread_join(n->thread, NULL);
	pthread_mutex_destroy(&n->lock);
	pthread_cond_destroy(&n->cond);
}

static void
housekeeping(struct runner *r, struct timers *t, int64_t now)
{
	unsigned rescued = 0, fired = 0;
	uint64_t pruned = 0;

	if (now - t->beat >= (int64_t)r->cfg->runner_heartbeat_seconds * 1000) {
		t->beat = now;
		beat(r);
	}
	if (now - t->held >= HELD_MS) {
		t->held = now;
		flight_check_held(r);
	}
	if (now - t->rescue >= RESCUE_MS) {
		t->rescue = now;
		if (kr_queue_rescue(r->db, 100, &rescued) == KR_DB_OK && rescued > 0)
			kr_info("requeued %u job(s) whose runner stopped answering", rescued);
	}
	if (!r->stopping && now - t->schedule >= SCHEDULE_MS) {
		t->schedule = now;
		if (kr_schedules_fire_due(r->db, 50, &fired) == KR_DB_OK && fired > 0)
			kr_info("fired %u schedule(s)", fired);
	}
	if (now - t->prune >= PRUNE_MS) {
		t->prune = now;
		if (kr_events_prune(r->db, r->cfg->events_retention_hours, PRUNE_MAX,
		    &pruned) == KR_DB_OK && pruned > 0) {
			kr_info("pruned %llu old event(s)", (unsigned long long)pruned);
			if (pruned >= PRUNE_MAX)	/* more to do: again in a second */
				t->prune = now - PRUNE_MS + 1000;
		}
		if (kr_accounts_prune(r->db, r->cfg->auth_login_window_seconds, PRUNE_MAX,
		    &pruned) == KR_DB_OK && pruned > 0) {
			kr_info("deleted %llu expired session(s) and login counter(s)",
			    (unsigned long long)pruned);
			if (pruned >= PRUNE_MAX)
				t->prune = now - PRUNE_MS + 1000;
		}
	}
}

/* The main loop; returns when stopped and drained. */
static void
run(struct runner *r, const sigset_t *sigs)
{
	/* The first heartbeat and pruning at once, the rest in their time. */
	struct timers t = { INT64_MIN / 2, 0, 0, INT64_MIN / 2, 0 };
	struct timespec zero = { 0, 0 };
	int64_t drain_until = 0, now;
	int sig;

	for (;;) {
		now = kr_time_mono_ms();
		sig = sigtimedwait(sigs, NULL, &zero);
		if ((sig == SIGTERM || sig == SIGINT) && !r->stopping) {
			kr_info("signal %d: no new jobs; finishing %zu in hand", sig, r->nflying);
			pthread_mutex_lock(&r->lock);
			r->stopping = 1;
			pthread_mutex_unlock(&r->lock);
			ahead_stop(r);
			drain_until = now + (int64_t)r->cfg->runner_drain_seconds * 1000;
		}
		if (r->stopping && (r->nflying == 0 || now >= drain_until))
			break;
		housekeeping(r, &t, now);
		if (r->ahead != NULL)
			ahead_take(r);
		drive_transfers(r, r->nflying == 0 ? 200 : 20);
	}
	if (r->nflying > 0)
		kr_info("handing back %zu job(s)", r->nflying);
	flight_release_all(r);
}

/*
 * Every call in flight holds a socket, besides the database connections and the few files
 * of the process: raise the soft limit on open files to what that needs when the hard limit
 * allows (it is 1024 by default, below 2,000 calls), and say so when it does not.
 */
static void
fd_limit(const struct kr_config *cfg)
{
	rlim_t need = (rlim_t)cfg->runner_max_in_flight + 64;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		(void)getrlimit(RLIMIT_NOFILE, &rl);	/* warn with what is in force */
	if (rl.rlim_cur < need)
		kr_warn("open files limited to %llu, below the %llu that runner.max_in_flight = %zu "
		    "needs; calls beyond it fail (raise LimitNOFILE or ulimit -n)",
		    (unsigned long long)rl.rlim_cur, (unsigned long long)need,
		    (size_t)cfg->runner_max_in_flight);
}

static int
setup(struct runner *r, const struct kr_config *cfg)
{
	memset(r, 0, sizeof(*r));
	r->cfg = cfg;
	fd_limit(cfg);
	kr_uuid_new(r->id);
	r->flights = calloc(cfg->runner_max_in_flight, sizeof(*r->flights));
	r->free_slots = calloc(cfg->runner_max_in_flight, sizeof(*r->free_slots));
	r->ws = calloc(cfg->runner_max_in_flight * 3 / 2 + 1, sizeof(*r->ws));
	pthread_mutex_init(&r->lock, NULL);
	r->curl_due = -1;
	r->epfd = -1;
	if ((r->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 || r->flights == NULL ||
	    r->free_slots == NULL || r->ws == NULL || (r->db = kr_db_new(cfg)) == NULL ||
	    (r->multi = curl_multi_init()) == NULL)
		return -1;
	for (size_t i = 0; i < cfg->runner_max_in_flight; i++)
		r->free_slots[i] = cfg->runner_max_in_flight - 1 - i;	/* slot 0 on top */
	r->nfree = cfg->runner_max_in_flight;
	curl_multi_setopt(r->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(r->multi, CURLMOPT_SOCKETDATA, r);
	curl_multi_setopt(r->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(r->multi, CURLMOPT_TIMERDATA, r);
	curl_multi_setopt(r->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
	    (long)cfg->runner_max_in_flight);
	/* Connections kept for reuse, in use or idle, to every provider together: as many as
	 * there are slots. curl's default is four per call in flight at the moment a call
	 * ends, so a dip in the calls closed connections that the next calls had to open
	 * again (a TLS handshake each, with a real provider). */
	curl_multi_setopt(r->multi, CURLMOPT_MAXCONNECTS, (long)cfg->runner_max_in_flight);
	return 0;
}

static void
teardown(struct runner *r)
{
	if (r->multi != NULL)
		curl_multi_cleanup(r->multi);
	if (r->epfd >= 0)
		close(r->epfd);
	kr_db_free(&r->db);
	free(r->flights);
	free(r->free_slots);
	free(r->ws);
	pthread_mutex_destroy(&r->lock);
}

int
main(int argc, char **argv)
{
	struct kr_config cfg;
	struct notifier notifier;
	struct runner r;
	uint64_t stored = 0, lost = 0;
	char err[512];
	sigset_t sigs;
	int rc = 1;
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
	memset(&r, 0, sizeof(r));
	r.epfd = -1;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    mysql_library_init(0, NULL, NULL) != 0 || setup(&r, &cfg) != 0) {
		kr_error("initialisation failed");
		goto out;
	}
	if (kr_startup_vault(&cfg, PROG) != 0)
		goto out;
	if (store_start(&r) != 0 || epoll_ctl(r.epfd, EPOLL_CTL_ADD, store_wake_fd(&r),
	    &(struct epoll_event){ .events = EPOLLIN, .data.fd = store_wake_fd(&r) }) != 0) {
		kr_error("cannot start the thread that stores answers");
		goto out;
	}
	if (ahead_start(&r) != 0 || epoll_ctl(r.epfd, EPOLL_CTL_ADD, ahead_wake_fd(&r),
	    &(struct epoll_event){ .events = EPOLLIN, .data.fd = ahead_wake_fd(&r) }) != 0) {
		kr_error("cannot start the thread that claims jobs");
		ahead_stop(&r);
		store_stop(&r, &stored, &lost);
		goto out;
	}
	notifier_start(&notifier, &cfg);
	run(&r, &sigs);
	ahead_stop(&r);
	store_stop(&r, &stored, &lost);
	notifier_stop(&notifier);
	if (kr_db_exec(r.db, sql_stopped, (struct kr_dbp[]){ KR_P_STR(r.id) }, 1, NULL, NULL) !=
	    KR_DB_OK)
		kr_warn("could not mark runner %s stopped", r.id);
	kr_info("stopped (%llu answered, %llu failed, %llu answers found cancelled or taken "
	    "over)", (unsigned long long)stored, (unsigned long long)r.done_failed,
	    (unsigned long long)lost);
	rc = 0;
out:
	teardown(&r);
	kr_vault_unload();
	mysql_library_end();
	curl_global_cleanup();
	kr_config_release(&cfg);
	return rc;
}
