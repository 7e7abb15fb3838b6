/*
 * Handlers whose real versions are being written: weak definitions answering 501 so the
 * tree builds meanwhile. A strong definition in h_<resource>.c replaces each one; this file
 * goes away when all of them exist.
 */
#include "handlers.h"

#define PENDING(name) \
	__attribute__((weak)) void name(struct kr_req *req, struct kr_resp *resp) \
	{ (void)req; resp_error(resp, 501, NULL, "not implemented yet"); }

PENDING(h_chats_list)
PENDING(h_chats_create)
PENDING(h_messages_list)
PENDING(h_messages_post)
PENDING(h_jobs_list)
PENDING(h_jobs_create)
PENDING(h_jobs_get)
PENDING(h_jobs_cancel)
PENDING(h_jobs_retry)
PENDING(h_schedules_list)
PENDING(h_schedules_create)
PENDING(h_schedules_get)
PENDING(h_schedules_update)
PENDING(h_schedules_delete)
PENDING(h_notifications_list)
PENDING(h_notifications_create)
PENDING(h_notifications_update)
PENDING(h_notifications_delete)
PENDING(h_notifications_test)
PENDING(h_usage)
PENDING(h_events)
