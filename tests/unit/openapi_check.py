#!/usr/bin/env python3
"""Checks static/openapi.json against the HTTP contract, shared/spec/api.md.

- static/openapi.json is valid JSON and an OpenAPI 3.1.x document;
- every "$ref" in it resolves inside the document;
- every path template parameter is declared, and every operationId is unique;
- its set of (method, path) pairs equals the set of endpoints written in api.md.

api.md lives outside the repository: <repo>/../shared/spec/api.md (CI clones the repository
with shared/ beside it). Python 3 standard library only. Prints one line per check and a
final "N passed, N failed"; exits 1 when a check failed.
"""
import json
import os
import re
import sys
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OPENAPI = os.path.join(REPO, "static", "openapi.json")
API_MD = os.path.normpath(os.path.join(REPO, "..", "shared", "spec", "api.md"))

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
WS = "/api/workspaces/{ws}"

# A few lines of api.md name an endpoint by shorthand: "…" stands for the path the
# surrounding bullet (or section) is about, and one omits the path altogether. Keyed by
# (section heading, the path as written; "" when there is none) -> the full path, by hand.
# A shorthand that is not listed here fails the extraction check, so a new one in api.md is
# noticed and added.
SHORTHAND = {
    # "A single resource is answered as the bare object (`POST …/keys/{id}/rotate` → ...)"
    ("Conventions", "…/keys/{id}/rotate"): WS + "/keys/{id}/rotate",
    # Tokens bullet: "`GET /api/workspaces/{ws}/tokens` → ...; `POST {"name","role"}` → 201"
    ("Workspaces, members, tokens", ""): WS + "/tokens",
    # Notifications bullet after "`POST /api/workspaces/{ws}/notifications` (admin)":
    # "`PATCH …/{id} {...}`, `DELETE …/{id}` → 204, `POST …/{id}/test` → 200"
    ("Notification targets", "…/{id}"): WS + "/notifications/{id}",
    ("Notification targets", "…/{id}/test"): WS + "/notifications/{id}/test",
}

SPAN_RE = re.compile(r"`([^`]+)`")
ENDPOINT_RE = re.compile(r"^((?:%s)(?:\|(?:%s))*)(?:\s+(.*))?$" % ("|".join(METHODS), "|".join(METHODS)),
                         re.S)
HEADING_RE = re.compile(r"^##\s+(.*?)\s*$", re.M)
FENCE_RE = re.compile(r"^[ \t]*```.*?^[ \t]*```[^\n]*$", re.M | re.S)  # may be indented

results = []


def check(ok, name, detail=""):
    results.append(bool(ok))
    line = ("ok   " if ok else "FAIL ") + name
    if detail:
        line += ": " + detail
    print(line, flush=True)
    return ok


def extract_endpoints(text):
    """(method, path) pairs written in api.md, and a list of shorthands it could not expand."""
    # Fenced blocks hold JSON examples, not endpoints; blank them keeping offsets.
    text = FENCE_RE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    headings = [(m.start(), m.group(1)) for m in HEADING_RE.finditer(text)]
    found, unknown = set(), []
    for m in SPAN_RE.finditer(text):
        span = " ".join(m.group(1).split())
        e = ENDPOINT_RE.match(span)
        if e is None:
            continue
        methods = e.group(1).split("|")
        rest = (e.group(2) or "").strip()
        token = rest.split()[0] if rest and not rest.startswith("{") else ""
        if token.startswith("/"):
            # Drop an optional query ("[?provider=]") and a query ("?from=&to=...").
            path = re.split(r"[\[?]", token, maxsplit=1)[0]
        else:
            section = ""
            for pos, title in headings:
                if pos < m.start():
                    section = title
            token = token.replace("...", "…")
            path = SHORTHAND.get((section, token))
            if path is None:
                unknown.append("%r in section %r" % (span, section))
                continue
        if len(path) > 1:
            path = path.rstrip("/")
        for method in methods:
            found.add((method, path))
    return found, unknown


def resolve_pointer(doc, ref):
    """The value a local "#/..." reference points at; raises KeyError/IndexError/ValueError."""
    if not ref.startswith("#"):
        raise ValueError("not a local reference")
    frag = urllib.parse.unquote(ref[1:])
    node = doc
    if frag == "":
        return node
    if not frag.startswith("/"):
        raise ValueError("not a JSON pointer")
    for part in frag[1:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node[part]
        else:
            raise KeyError(part)
    return node


def all_refs(node, where="#"):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield where, v
            else:
                yield from all_refs(v, where + "/" + k.replace("~", "~0").replace("/", "~1"))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from all_refs(v, "%s/%d" % (where, i))


def deref(doc, node):
    seen = 0
    while isinstance(node, dict) and "$ref" in node and seen < 20:
        node = resolve_pointer(doc, node["$ref"])
        seen += 1
    return node


def openapi_endpoints(doc):
    eps = set()
    for path, item in (doc.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        for method in item:
            if method.upper() in METHODS:
                eps.add((method.upper(), path))
    return eps


def check_path_params(doc):
    problems = []
    for path, item in (doc.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        wanted = set(re.findall(r"\{([^}]+)\}", path))
        for method, op in item.items():
            if method.upper() not in METHODS or not isinstance(op, dict):
                continue
            declared = set()
            for p in list(item.get("parameters") or []) + list(op.get("parameters") or []):
                try:
                    p = deref(doc, p)
                except (KeyError, IndexError, ValueError):
                    continue  # reported by the $ref check
                if isinstance(p, dict) and p.get("in") == "path":
                    declared.add(p.get("name"))
            if declared != wanted:
                problems.append("%s %s declares %s, template has %s" % (
                    method.upper(), path, sorted(declared), sorted(wanted)))
    return problems


def fmt(pairs):
    return ", ".join("%s %s" % p for p in sorted(pairs, key=lambda p: (p[1], p[0])))


def main():
    doc = None
    try:
        with open(OPENAPI, encoding="utf-8") as f:
            doc = json.load(f)
        check(isinstance(doc, dict), "static/openapi.json is a JSON object")
    except OSError as e:
        check(False, "static/openapi.json is readable", str(e))
    except ValueError as e:
        check(False, "static/openapi.json is valid JSON", str(e))
    if not isinstance(doc, dict):
        doc = None

    if doc is not None:
        version = doc.get("openapi")
        check(isinstance(version, str) and re.fullmatch(r"3\.1\.\d+", version) is not None,
              'openapi is "3.1.x"', "found %r" % (version,))

        bad = []
        count = 0
        for where, ref in all_refs(doc):
            count += 1
            try:
                resolve_pointer(doc, ref)
            except (KeyError, IndexError, ValueError) as e:
                bad.append("%s -> %s (%s)" % (where, ref, type(e).__name__))
        check(not bad, "every $ref resolves (%d refs)" % count, "; ".join(bad))

        problems = check_path_params(doc)
        check(not problems, "every path template parameter is declared", "; ".join(problems))

        ids, dups = set(), set()
        for item in (doc.get("paths") or {}).values():
            for method, op in (item.items() if isinstance(item, dict) else []):
                if method.upper() in METHODS and isinstance(op, dict) and "operationId" in op:
                    (dups if op["operationId"] in ids else ids).add(op["operationId"])
        check(not dups, "operationIds are unique", ", ".join(sorted(dups)))

    if not os.path.isfile(API_MD):
        check(False, "api.md found",
              "%s does not exist: the contract lives beside the repository, at "
              "<repo>/../shared/spec/api.md (clone the repository with shared/ next to it)" % API_MD)
    else:
        with open(API_MD, encoding="utf-8") as f:
            spec_eps, unknown = extract_endpoints(f.read())
        check(len(spec_eps) > 0 and not unknown,
              "endpoints extracted from api.md (%d)" % len(spec_eps),
              ("shorthand not in SHORTHAND: " + "; ".join(unknown)) if unknown else "")
        if doc is not None:
            doc_eps = openapi_endpoints(doc)
            check(not (spec_eps - doc_eps), "every api.md endpoint is in openapi.json",
                  "missing: " + fmt(spec_eps - doc_eps) if spec_eps - doc_eps else "")
            # Operations the implementation adds beyond the contract are marked
            # "x-keyrelay-extension": true; every other one must be in api.md.
            extra = {ep for ep in doc_eps - spec_eps
                     if not doc["paths"][ep[1]][ep[0].lower()].get("x-keyrelay-extension")}
            check(not extra, "every openapi.json endpoint is in api.md (or marked an extension)",
                  "not in api.md: " + fmt(extra) if extra else "")

    passed = sum(results)
    failed = len(results) - passed
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
