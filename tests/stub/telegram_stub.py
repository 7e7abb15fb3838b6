#!/usr/bin/env python3
"""A stub of the Telegram Bot API's sendMessage, for the notification tests. Standard library
only; listens on 127.0.0.1.

    POST /bot<token>/sendMessage {"chat_id", "text"}   answers like Telegram, by chat_id:
        "fail400..."  400 {"ok":false,"error_code":400,"description":"Bad Request: chat not found"}
        "fail500..."  500 {"ok":false,"error_code":500,"description":"Internal Server Error"}
        "flaky<N>..." 500 for the first N messages to that chat, then like any other chat
        "rate..."     429 with "parameters":{"retry_after":1}
        "echo..."     400 whose description repeats the token (to test scrubbing)
        "migrate<N>"  400 "group chat was upgraded to a supergroup chat" with
                      "parameters":{"migrate_to_chat_id":-100<N>} (an integer, as Telegram)
        anything else 200 {"ok":true,"result":{"message_id",...}}
      a token whose secret part (after ':') starts with "bad": 401 Unauthorized
    GET  /_stub/messages   {"messages":[{"token","chat_id","text","status"}]}, in order
    POST /_stub/clear      forget the messages and the flaky counters

Command line: telegram_stub.py [--port N] [--port-file PATH]; SIGTERM stops it (exit 0).
It never logs request paths or bodies: paths carry the bot token.

From tests: `stub = TelegramStub.start(dir)`; stub.url (the base URL for
KEYRELAY_TELEGRAM_BASE_URL), stub.messages(), stub.clear(), stub.stop().
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATH_RE = re.compile(r"^/bot([^/]+)/sendMessage$")
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class _State:
    def __init__(self):
        self.lock = threading.Lock()
        self.messages = []
        self.flaky = {}
        self.next_id = 1


class _Handler(BaseHTTPRequestHandler):
    server_version = "telegram-stub/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # paths hold tokens: log nothing
        pass

    def _send(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def do_GET(self):
        st = self.server.state
        if self.path == "/_stub/messages":
            with st.lock:
                return self._send(200, {"messages": list(st.messages)})
        self._send(404, {"ok": False, "error_code": 404, "description": "Not Found"})

    def do_POST(self):
        st = self.server.state
        raw = self._body()
        if self.path == "/_stub/clear":
            with st.lock:
                st.messages.clear()
                st.flaky.clear()
            return self._send(200, {"ok": True})
        m = PATH_RE.match(self.path)
        if not m:
            return self._send(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        token = m.group(1)
        try:
            doc = json.loads(raw.decode("utf-8"))
            chat, text = str(doc["chat_id"]), doc["text"]
        except (ValueError, KeyError, TypeError):
            return self._send(400, {"ok": False, "error_code": 400,
                                    "description": "Bad Request: message text is empty"})
        status, answer = self._decide(st, token, chat, text)
        with st.lock:
            st.messages.append({"token": token, "chat_id": chat, "text": text,
                                "status": status, "content_type": self.headers.get(
                                    "Content-Type")})
        self._send(status, answer)

    @staticmethod
    def _decide(st, token, chat, text):
        def err(code, desc, **extra):
            d = {"ok": False, "error_code": code, "description": desc}
            d.update(extra)
            return code, d
        if token.partition(":")[2].startswith("bad"):
            return err(401, "Unauthorized")
        if chat.startswith("fail400"):
            return err(400, "Bad Request: chat not found")
        if chat.startswith("fail500"):
            return err(500, "Internal Server Error")
        if chat.startswith("rate"):
            return err(429, "Too Many Requests: retry after 1", parameters={"retry_after": 1})
        if chat.startswith("echo"):
            return err(400, "Bad Request: bot %s cannot write here" % token)
        mm = re.match(r"^migrate(\d{1,9})$", chat)
        if mm:
            return err(400, "Bad Request: group chat was upgraded to a supergroup chat",
                       parameters={"migrate_to_chat_id": int("-100" + mm.group(1))})
        fm = re.match(r"^flaky(\d+)", chat)
        if fm:
            with st.lock:
                seen = st.flaky.get(chat, 0)
                st.flaky[chat] = seen + 1
            if seen < int(fm.group(1)):
                return err(500, "Internal Server Error")
        with st.lock:
            mid = st.next_id
            st.next_id += 1
        return 200, {"ok": True, "result": {"message_id": mid, "chat": {"id": chat},
                                            "text": text}}


def serve(port, port_file):
    srv = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    srv.daemon_threads = True
    srv.state = _State()
    if port_file:
        tmp = port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % srv.server_address[1])
        os.replace(tmp, port_file)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        srv.server_close()
    return 0


class TelegramStub:
    """A stub running in its own process; its port is written to DIR/telegram.port."""

    def __init__(self, proc, port):
        self.proc = proc
        self.port = port
        self.url = "http://127.0.0.1:%d" % port

    @classmethod
    def start(cls, dir, timeout=20):
        os.makedirs(dir, exist_ok=True)
        port_file = os.path.join(dir, "telegram.port")
        try:
            os.unlink(port_file)
        except FileNotFoundError:
            pass
        log = open(os.path.join(dir, "telegram.log"), "ab")
        proc = subprocess.Popen([sys.executable, "-B", os.path.abspath(__file__),
                                 "--port-file", port_file], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, close_fds=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("telegram stub exited with %d" % proc.returncode)
            try:
                with open(port_file) as f:
                    return cls(proc, int(f.read().strip()))
            except (OSError, ValueError):
                time.sleep(0.05)
        proc.kill()
        raise RuntimeError("telegram stub did not start within %d s" % timeout)

    def _call(self, method, path):
        req = urllib.request.Request(self.url + path, method=method,
                                     data=b"{}" if method == "POST" else None,
                                     headers={"Content-Type": "application/json"})
        with _OPENER.open(req, timeout=10) as r:
            return json.loads(r.read().decode())

    def messages(self):
        return self._call("GET", "/_stub/messages")["messages"]

    def clear(self):
        self._call("POST", "/_stub/clear")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def main():
    ap = argparse.ArgumentParser(description="stub of Telegram's Bot API sendMessage")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    args = ap.parse_args()
    return serve(args.port, args.port_file)


if __name__ == "__main__":
    sys.exit(main())
