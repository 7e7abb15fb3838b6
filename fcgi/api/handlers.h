/*
 * handlers: one function per route, one file per resource (h_<resource>.c). A handler runs
 * only after the router has authenticated the caller, checked CSRF and the role the route
 * needs, resolved {ws} to req->p.ws, and parsed a JSON body into req->json.
 */
#ifndef KR_HANDLERS_H
#define KR_HANDLERS_H

#include "http.h"

typedef void (*kr_handler)(struct kr_req *req, struct kr_resp *resp);

/* h_auth.c */
void	h_auth_login(struct kr_req *, struct kr_resp *);
void	h_auth_logout(struct kr_req *, struct kr_resp *);
void	h_auth_me(struct kr_req *, struct kr_resp *);
/* h_users.c */
void	h_users_list(struct kr_req *, struct kr_resp *);
void	h_users_create(struct kr_req *, struct kr_resp *);
void	h_users_delete(struct kr_req *, struct kr_resp *);
/* h_workspaces.c */
void	h_workspaces_list(struct kr_req *, struct kr_resp *);
void	h_workspaces_create(struct kr_req *, struct kr_resp *);
void	h_workspaces_delete(struct kr_req *, struct kr_resp *);
/* h_members.c */
void	h_members_list(struct kr_req *, struct kr_resp *);
void	h_members_add(struct kr_req *, struct kr_resp *);
void	h_members_update(struct kr_req *, struct kr_resp *);
void	h_members_delete(struct kr_req *, struct kr_resp *);
/* h_tokens.c */
void	h_tokens_list(struct kr_req *, struct kr_resp *);
void	h_tokens_create(struct kr_req *, struct kr_resp *);
void	h_tokens_delete(struct kr_req *, struct kr_resp *);
/* h_keys.c */
void	h_keys_list(struct kr_req *, struct kr_resp *);
void	h_keys_create(struct kr_req *, struct kr_resp *);
void	h_keys_get(struct kr_req *, struct kr_resp *);
void	h_keys_test(struct kr_req *, struct kr_resp *);
void	h_keys_update(struct kr_req *, struct kr_resp *);
void	h_keys_rotate(struct kr_req *, struct kr_resp *);
void	h_keys_reorder(struct kr_req *, struct kr_resp *);
void	h_keys_delete(struct kr_req *, struct kr_resp *);
/* h_providers.c */
void	h_providers_get(struct kr_req *, struct kr_resp *);
void	h_providers_put(struct kr_req *, struct kr_resp *);
/* h_chats.c */
void	h_chats_list(struct kr_req *, struct kr_resp *);
void	h_chats_create(struct kr_req *, struct kr_resp *);
void	h_messages_list(struct kr_req *, struct kr_resp *);
void	h_messages_post(struct kr_req *, struct kr_resp *);
/* h_jobs.c */
void	h_jobs_list(struct kr_req *, struct kr_resp *);
void	h_jobs_create(struct kr_req *, struct kr_resp *);
void	h_jobs_get(struct kr_req *, struct kr_resp *);
void	h_jobs_cancel(struct kr_req *, struct kr_resp *);
void	h_jobs_retry(struct kr_req *, struct kr_resp *);
/* h_schedules.c */
void	h_schedules_list(struct kr_req *, struct kr_resp *);
void	h_schedules_create(struct kr_req *, struct kr_resp *);
void	h_schedules_get(struct kr_req *, struct kr_resp *);
void	h_schedules_update(struct kr_req *, struct kr_resp *);
void	h_schedules_delete(struct kr_req *, struct kr_resp *);
/* h_notifications.c */
void	h_notifications_list(struct kr_req *, struct kr_resp *);
void	h_notifications_create(struct kr_req *, struct kr_resp *);
void	h_notifications_update(struct kr_req *, struct kr_resp *);
void	h_notifications_delete(struct kr_req *, struct kr_resp *);
void	h_notifications_test(struct kr_req *, struct kr_resp *);
/* h_usage.c */
void	h_usage(struct kr_req *, struct kr_resp *);
/* h_events.c: a server-sent events stream (events pool) */
void	h_events(struct kr_req *, struct kr_resp *);
/* h_audit.c */
void	h_audit_list(struct kr_req *, struct kr_resp *);
/* h_ops.c */
void	h_healthz(struct kr_req *, struct kr_resp *);
void	h_metrics(struct kr_req *, struct kr_resp *);

#endif
