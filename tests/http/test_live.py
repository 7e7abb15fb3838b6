#!/usr/bin/env python3
"""Issue 4's end-to-end path: a chat message posted through the API is answered by the
runner through the stub provider, and an open event stream of the workspace carries
message_created (the answer) and job_succeeded, in order, without polling.

Runs against the shared stack ($KEYRELAY_TEST_STACK) in a workspace of its own.
"""
import os
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import krstack  # noqa: E402
from krclient import Client, eq, expect, run, true  # noqa: E402
from test_events import open_ok  # noqa: E402

ANSWER_S = 60   # a sanitized stack under load answers in seconds, not minutes


def body(t):
    s = krstack.Stack.from_env()
    admin = Client(s.base_url)
    admin.login(s.admin_email, s.admin_password)
    slug = "live-" + uuid.uuid4().hex[:8]
    text = "Live answer " + uuid.uuid4().hex[:6]
    key = "sk-ant-api03-live-" + uuid.uuid4().hex
    with t.setup("setup: a workspace with an Anthropic key the stub answers"):
        expect(201, admin.post("/api/workspaces", json={"slug": slug, "name": "Live"}))
        s.stub.set_key(key, "ok", text=text, delay_ms=300)
        expect(201, admin.post("/api/workspaces/%s/keys" % slug,
                               json={"provider": "anthropic", "keys": key}))
        chat = admin.post("/api/workspaces/%s/chats" % slug, json={"title": "live"})
        expect(201, chat)
        chat_id = chat.json["id"]
    stream = open_ok("stream", s.base_url, slug, cookies=admin.cookies)
    try:
        with t("a chat message is answered live: message_created then job_succeeded"):
            r = admin.post("/api/workspaces/%s/chats/%s/messages" % (slug, chat_id),
                           json={"content": "What is new?"})
            expect(202, r)
            job_id = r.json["job"]["id"]

            def done(st):
                return any(e.get("event") == "job_succeeded" and
                           e["data"].get("jobId") == job_id for e in st.events)
            true(stream.wait_for(done, ANSWER_S), "no job_succeeded on the stream: %r"
                 % [e.get("event") for e in stream.events])
            kinds = [(e.get("event"), e["data"].get("jobId")) for e in stream.events]
            mine = [k for k, j in kinds if j == job_id]
            for want in ("job_queued", "job_started", "message_created", "job_succeeded"):
                true(want in mine, "%s missing from %r" % (want, mine))
            true(mine.index("message_created") < mine.index("job_succeeded"),
                 "order %r" % mine)
            out = [e["data"]["message"] for e in stream.events
                   if e.get("event") == "message_created"
                   and e["data"]["message"]["direction"] == "out"]
            eq(len(out), 1, "answer messages on the stream")
            eq(out[0]["content"], text, "the answer's text")
            eq(out[0]["jobId"], job_id, "the answer's job")
            ids = stream.ids()
            eq(ids, sorted(ids), "event ids in order")
            eq(len(ids), len(set(ids)), "no event twice")

        with t("the chat has the question and exactly one answer"):
            msgs = admin.get("/api/workspaces/%s/chats/%s/messages" % (slug, chat_id)).json
            eq([m["direction"] for m in msgs["messages"]], ["in", "out"], "directions")
            eq(msgs["messages"][1]["content"], text, "answer")
    finally:
        stream.close()


if __name__ == "__main__":
    run("live", body)
