/* GET /healthz and GET /metrics (nginx serves /metrics to loopback only). */
#include "handlers.h"
#include "kr_json.h"
#include "metrics.h"

static const char sql_ping[] = "SELECT 1";

void
h_healthz(struct kr_req *req, struct kr_resp *resp)
{
	json_object *o = json_object_new_object();
	struct kr_db_res res;
	enum kr_db_err rc;

	rc = kr_db_exec(req->db, sql_ping, NULL, 0, &res, NULL);
	kr_db_res_free(&res);
	kr_json_add_str(o, "status", rc == KR_DB_OK ? "ok" : "unavailable");
	kr_json_add_str(o, "db", rc == KR_DB_OK ? "ok" : "unavailable");
	if (rc != KR_DB_OK) {
		/* Also the error shape, so clients that only know that one understand it. */
		json_object *e = json_object_new_object();
		kr_json_add_str(e, "code", "unavailable");
		kr_json_add_str(e, "message", "the database is unavailable");
		json_object_object_add(o, "error", e);
	}
	resp_json(resp, rc == KR_DB_OK ? 200 : 503, o);
}

void
h_metrics(struct kr_req *req, struct kr_resp *resp)
{
	resp->status = 200;
	resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
	kr_buf_reset(&resp->body);
	kr_metrics_render(&resp->body);
	kr_metrics_render_jobs(req->db, &resp->body);
}
