#!/usr/bin/env python3
"""A Kubernetes API simulator for the tests and the lab (Python standard library only).

It speaks the wire protocol well enough for the real kubectl to get, cordon and drain against it:
discovery, get/list/create/update/patch(4 types)/delete/watch with resourceVersions, 409 on
conflicts, selectors and pagination, evictions with PDB accounting (429, 500 for two PDBs), pods
that take their grace period to go, a ReplicaSet controller, TLS with client certificates and
bearer tokens, and faults the tests control (POST /_sim/faults: a list of {path (a substring),
method, count, and latency (seconds), drop (the connection closed, nothing done), drop_after (done,
then the connection closed: a reply lost on the way) or status (answered with it, nothing done)}).

Usage: sim.py --port P --cert C --key K --ca CA [--tokens t1,t2=USER] [--state objects.json]
              [--ready-delay S] [--grace-scale F] [--version v1.33.1]
"""
import argparse
import copy
import json
import re
import os
import ssl
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler

from lab.k8sim import endpoints, kubelet_report, rbac
from lab.k8sim.etcd_alarm import NospaceWatch, QuorumWatch
from lab.k8sim import patch as patches
from lab.k8sim.resources import BY_PATH, groups, resource_list, api_version
from lab.k8sim.store import ApiError, Store
from lab.k8sim.tables import table_for


# What a kubeadm cluster lets anyone read (the system:public-info-viewer ClusterRole).
PUBLIC = {"/healthz", "/readyz", "/livez", "/version"}


class Faults:
    """What the tests ask the server to get wrong, for the next `count` matching requests."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []

    def set(self, rules):
        with self.lock:
            self.rules = rules

    def take(self, method, path):
        with self.lock:
            for r in self.rules:
                if r.get("count", 1) <= 0:
                    continue
                if r.get("path") and r["path"] not in path:
                    continue
                if r.get("method") and r["method"] != method:
                    continue
                r["count"] = r.get("count", 1) - 1
                return dict(r)
        return None


class Sim:
    def __init__(self, args):
        self.store = Store(ready_delay=args.ready_delay, grace_scale=args.grace_scale)
        self.store.server_version = args.version
        self.version_node = args.version_node
        self.apf = not args.no_apf
        # "TOKEN" (a user named by the token) or "TOKEN=USER" (a service account's token, say)
        self.tokens = {t.split("=", 1)[0]: (t.split("=", 1)[1] if "=" in t else None) for t in (args.tokens or "").split(",") if t}
        self.faults = Faults()
        self.nospace = NospaceWatch()  # the etcd-nospace fault: writes refused while etcd's alarm stands
        self.quorum = QuorumWatch([])  # the control-plane nodes' etcd members: no quorum, no API
        self.endpoints = None
        self.lb = None
        self.stats = {}
        self.stats_lock = threading.Lock()

    def count(self, method, path):
        key = f"{method} {path.split('?')[0]}"
        with self.stats_lock:
            self.stats[key] = self.stats.get(key, 0) + 1
            self.stats["total"] = self.stats.get("total", 0) + 1


def parse_path(path):
    """→ (group, version, namespace, plural, name, sub) or None for discovery paths. Each segment is
    percent-decoded after the split, as the API server does ("system%3Akube-scheduler")."""
    parts = [urllib.parse.unquote(p) for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif parts and parts[0] == "apis" and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    ns = None
    if len(rest) >= 3 and rest[0] == "namespaces":  # /namespaces/NS/PLURAL[/NAME[/SUB]]
        ns, rest = rest[1], rest[2:]
    if not rest:
        return None
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    return group, version, ns, plural, name, sub


# The UIDs of the flow schema and priority level a kubeadm cluster's requests from its admin fall
# in (exempt, for system:masters); fixed here, as nothing reads them but to see they are there.
APF_FLOW_SCHEMA = "8e0d7d3f-5a1b-4b0e-9a55-3f1c2a9d6e01"
APF_PRIORITY_LEVEL = "0c9a5b1e-7d2f-4e3a-8b6c-5d4e3f2a1b00"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sim = None

    def log_message(self, *a):
        pass

    def end_headers(self):
        # kube-apiserver's API Priority and Fairness (on by default since 1.20) names the flow
        # schema and priority level that classified each request; clients take the headers to mean
        # the server does its own flow control (client-go's, the engine's rate limits lift).
        if self.sim.apf:
            self.send_header("X-Kubernetes-PF-FlowSchema-UID", APF_FLOW_SCHEMA)
            self.send_header("X-Kubernetes-PF-PriorityLevel-UID", APF_PRIORITY_LEVEL)
        super().end_headers()

    # --- plumbing --------------------------------------------------------------------------
    def send_json(self, code, obj, headers=None):
        if getattr(self, "lost_reply", False):
            self.close_connection = True
            self.connection.close()
            return
        self.raw_body()  # an error answered before the body was read: it is read now
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def raw_body(self):
        """The request's body, read once (a reply sent without reading it would leave it in a kept-alive
        connection, where it would be read as the next request)."""
        if getattr(self, "_raw", None) is None:
            n = int(self.headers.get("Content-Length") or 0)
            self._raw = self.rfile.read(n) if n else b""
        return self._raw

    def body(self):
        raw = self.raw_body()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError(400, "BadRequest", "the body is not JSON")

    def user(self):
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and auth[7:] in self.sim.tokens:
            return self.sim.tokens[auth[7:]] or "token:" + auth[7:8] + "..."
        cert = self.connection.getpeercert() if hasattr(self.connection, "getpeercert") else None
        if cert:
            for rdn in cert.get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        return v
        return None

    def groups_of_user(self):
        """The O= of the client certificate: the user's groups."""
        cert = self.connection.getpeercert() if hasattr(self.connection, "getpeercert") else None
        return {v for rdn in (cert or {}).get("subject", ()) for k, v in rdn if k == "organizationName"}

    def enforce_rbac(self, method, path, q):
        """RBAC, for kubeadm's admin.conf identity (group kubeadm:cluster-admins) and service accounts
        (system:serviceaccount:NS:NAME, deploy/'s least-privilege role) only: the lab's own admin is
        system:masters and its kubelets report through /_sim, so nothing else changes. With the
        kubeadm:cluster-admins binding lost, admin.conf can do nothing (kubeadm#3308)."""
        groups = self.groups_of_user()
        enforced = "kubeadm:cluster-admins" in groups or (self.user() or "").startswith("system:serviceaccount:")
        if not enforced or "system:masters" in groups:
            return
        target = parse_path(path)
        if not target:
            return
        group, _, ns, plural, name, sub = target
        verb = {"GET": "get" if name else ("watch" if q.get("watch") in ("1", "true") else "list"), "POST": "create",
                "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
        attrs = {"verb": verb, "group": group, "resource": plural, "subresource": sub or "", "name": name or "",
                 "namespace": ns or ""}
        with self.sim.store.lock:
            ok, _ = rbac.allowed(self.sim.store, self.user(), groups | {"system:authenticated"}, attrs)
        if not ok:
            res = plural + (f"/{sub}" if sub else "")
            where = f'in the namespace "{ns}"' if ns else "at the cluster scope"
            raise ApiError(403, "Forbidden", f'{res}{"." + group if group else ""} {"" if not name else repr(name) + " "}is '
                           f'forbidden: User "{self.user()}" cannot {verb} resource "{res}" in API group "{group}" {where}')

    def handle_any(self, method):
        self._raw = None  # one handler serves every request of a kept-alive connection
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        if getattr(self.server, "cut", False):  # the load balancer was cut while this connection was open
            self.close_connection = True
            self.connection.close()
            return
        backend = getattr(self.server, "backend", None)
        if backend is not None and not u.path.startswith("/_sim/") and not backend():
            # No kube-apiserver behind this address now (its pod stopped): nothing answers.
            self.close_connection = True
            self.connection.close()
            return
        try:
            if u.path.startswith("/_sim/"):
                return self.control(method, u.path)
            self.sim.count(method, self.path)
            fault = self.sim.faults.take(method, self.path)
            self.lost_reply = bool(fault and fault.get("drop_after"))  # done, but the reply never arrives
            if fault:
                if fault.get("latency"):
                    time.sleep(fault["latency"])
                if fault.get("drop"):
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault.get("status"):
                    hdr = {"Retry-After": str(fault["retry_after"])} if "retry_after" in fault else {}
                    return self.send_json(fault["status"], ApiError(fault["status"], "Injected", "injected fault").status(), hdr)
            if not self.user() and u.path not in PUBLIC:
                return self.send_json(401, ApiError(401, "Unauthorized", "Unauthorized").status())
            if not u.path.endswith(("selfsubjectaccessreviews", "subjectaccessreviews")):
                self.enforce_rbac(method, u.path, q)
                # A write goes to etcd, which refuses it under NOSPACE (a delete frees space: etcd takes it).
                if method in ("POST", "PUT", "PATCH") and self.sim.nospace.raised_now():
                    raise ApiError(500, "InternalError", "etcdserver: mvcc: database space exceeded")
                # Objects come from etcd (discovery and /version do not): kube-apiserver's answer
                # without a quorum, which kubectl prints as "Error from server: etcdserver: ...".
                if parse_path(u.path) is not None and self.sim.quorum.lost():
                    raise ApiError(500, "", "etcdserver: request timed out")
            self.route(method, u.path, q)
        except ApiError as e:
            self.send_json(e.code, e.status())
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_GET = lambda self: self.handle_any("GET")  # noqa: E731
    do_POST = lambda self: self.handle_any("POST")  # noqa: E731
    do_PUT = lambda self: self.handle_any("PUT")  # noqa: E731
    do_PATCH = lambda self: self.handle_any("PATCH")  # noqa: E731
    do_DELETE = lambda self: self.handle_any("DELETE")  # noqa: E731

    def control(self, method, path):
        st = self.sim.store
        if path == "/_sim/faults" and method == "POST":
            self.sim.faults.set(self.body() or [])
            return self.send_json(200, {"ok": True})
        if path == "/_sim/stats":
            with self.sim.stats_lock:
                return self.send_json(200, dict(self.sim.stats))
        if path == "/_sim/stats/reset" and method == "POST":
            with self.sim.stats_lock:
                self.sim.stats.clear()
            return self.send_json(200, {"ok": True})
        if path == "/_sim/objects" and method == "POST":
            with st.lock:
                for obj in self.body() or []:
                    load_object(st, obj)
            return self.send_json(200, {"ok": True})
        if path == "/_sim/version" and method == "POST":
            st.server_version = (self.body() or {}).get("gitVersion", st.server_version)
            return self.send_json(200, {"ok": True})
        if path == "/_sim/kubelet" and method == "POST":
            with st.lock:
                report = self.body() or {}
                kubelet_report.apply(st, report, self.sim.version_node)
            if self.sim.endpoints:  # outside the store's lock: an endpoint may take a moment to close
                self.sim.endpoints.report(report)
            return self.send_json(200, {"ok": True})
        if path == "/_sim/serving" and method == "POST":
            if self.sim.endpoints:
                self.sim.endpoints.reload((self.body() or {}).get("node"))
            return self.send_json(200, {"ok": True})
        if path == "/_sim/lb" and method == "POST":
            if self.sim.lb is None:
                raise ApiError(404, "NotFound", "no load balancer (--lb-port)")
            self.sim.lb.open() if (self.body() or {}).get("open") else self.sim.lb.cut()
            return self.send_json(200, {"ok": True})
        if path == "/_sim/etcd-nospace" and method == "POST":
            self.sim.nospace.arm(self.body() or None)
            return self.send_json(200, {"ok": True})
        if path == "/_sim/compact" and method == "POST":
            with st.lock:
                st.log.clear()
            return self.send_json(200, {"ok": True})
        raise ApiError(404, "NotFound", "no such control endpoint")

    # --- the API ---------------------------------------------------------------------------
    def route(self, method, path, q):
        st = self.sim.store
        if path == "/version":
            v = st.server_version.lstrip("v").split(".")
            return self.send_json(200, {"major": v[0], "minor": v[1], "gitVersion": st.server_version,
                                        "platform": "linux/amd64", "goVersion": "go1.22"})
        if path == "/api":
            return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
        if path == "/apis":
            return self.send_json(200, groups())
        if path in ("/healthz", "/readyz", "/livez"):
            down = path != "/livez" and self.sim.quorum.lost()  # livez: the process is alive
            body = f"[-]etcd failed: reason withheld\n{path[1:]} check failed".encode() if down else b"ok"
            self.send_response(500 if down else 200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return self.wfile.write(body)
        parts = [p for p in path.split("/") if p]
        if parts == ["api", "v1"]:
            return self.send_json(200, resource_list("", "v1"))
        if len(parts) == 3 and parts[0] == "apis":
            return self.send_json(200, resource_list(parts[1], parts[2]))
        if len(parts) == 2 and parts[0] == "apis":
            g = [x for x in groups()["groups"] if x["name"] == parts[1]]
            if g:
                return self.send_json(200, dict(g[0], kind="APIGroup", apiVersion="v1"))
        target = parse_path(path)
        if not target or (target[0], target[1], target[3]) not in BY_PATH:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")
        group, version, ns, plural, name, sub = target
        with st.lock:
            if method == "GET" and plural == "pods" and sub == "log":
                st.get(group, plural, ns, name)
                text = self.sim.store.runtime.log_of(ns, name) if self.sim.store.runtime else None
                if text is None:
                    raise ApiError(400, "BadRequest", f'container "{q.get("container", "")}" in pod "{name}" has no log here')
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                return self.wfile.write(text)
            if method == "GET" and name is None:
                if q.get("watch") in ("1", "true"):
                    return self.watch(group, plural, ns, q)
                return self.list(group, version, plural, ns, q)
            if method == "GET":
                obj = st.get(group, plural, ns, name)
                if "as=Table" in self.headers.get("Accept", "") and table_for(plural) and not sub:
                    return self.send_json(200, table_for(plural)([obj], {"resourceVersion": obj["metadata"]["resourceVersion"]}))
                return self.send_json(200, obj)
            if method == "POST" and plural == "selfsubjectaccessreviews":
                if "protobuf" in self.headers.get("Content-Type", ""):
                    attrs = rbac.review_from_protobuf(self.raw_body())
                    review = {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                              "metadata": {}, "spec": {"resourceAttributes": attrs}}
                else:
                    review = self.body() or {}
                    attrs = (review.get("spec") or {}).get("resourceAttributes") or {}
                user = self.headers.get("Impersonate-User")
                member_of = set(self.headers.get_all("Impersonate-Group") or []) | {"system:authenticated"}
                if user is None and "kubeadm:cluster-admins" in self.groups_of_user():  # the caller itself
                    user, member_of = self.user(), member_of | self.groups_of_user()
                ok, reason = rbac.allowed(st, user, member_of, attrs)
                review["status"] = {"allowed": ok, **({"reason": reason} if reason else {})}
                return self.send_json(201, review)
            if method == "POST" and plural == "subjectaccessreviews":
                review = self.body() or {}
                spec = review.get("spec") or {}
                ok, reason = rbac.allowed(st, spec.get("user") or "", set(spec.get("groups") or []) | {"system:authenticated"},
                                          spec.get("resourceAttributes") or {})
                review["status"] = {"allowed": ok, **({"reason": reason} if reason else {})}
                return self.send_json(201, review)
            if method == "POST" and sub == "eviction":
                ev = self.body() or {}
                grace = ((ev.get("deleteOptions") or {}).get("gracePeriodSeconds"))
                st.evict(ns, name, grace)
                return self.send_json(201, {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201})
            if method == "POST" and name is None:
                obj = self.body() or {}
                return self.send_json(201, st.create(group, plural, ns, obj, version=version))
            if method == "PUT":
                obj = self.body() or {}
                if sub == "status":
                    cur = copy.deepcopy(st.get(group, plural, ns, name))
                    cur["status"] = obj.get("status")
                    obj = dict(cur, metadata=dict(cur["metadata"], resourceVersion=(obj.get("metadata") or {}).get("resourceVersion")))
                return self.send_json(200, st.update(group, plural, ns, name, obj))
            if method == "PATCH":
                return self.patch(group, version, plural, ns, name, sub, q)
            if method == "DELETE" and name:
                opts = self.body() or {}
                grace = opts.get("gracePeriodSeconds", q.get("gracePeriodSeconds"))
                obj = st.delete(group, plural, ns, name, None if grace is None else int(grace))
                return self.send_json(200, obj)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported here")

    def list(self, group, version, plural, ns, q):
        st = self.sim.store
        items = st.list(group, plural, ns, q.get("labelSelector", ""), q.get("fieldSelector", ""))
        start = int(q.get("continue") or 0)
        limit = int(q.get("limit") or 0)
        page = items[start:start + limit] if limit else items[start:]
        meta = {"resourceVersion": str(st.rv)}
        if limit and start + limit < len(items):
            meta["continue"] = str(start + limit)
            meta["remainingItemCount"] = len(items) - start - limit
        accept = self.headers.get("Accept", "")
        if "as=Table" in accept and table_for(plural):
            return self.send_json(200, table_for(plural)(page, meta))
        kind = BY_PATH[(group, version, plural)][3] + "List"
        return self.send_json(200, {"kind": kind, "apiVersion": api_version(group, version), "metadata": meta,
                                    "items": page})

    def patch(self, group, version, plural, ns, name, sub, q):
        st = self.sim.store
        ctype = (self.headers.get("Content-Type") or "").split(";")[0]
        p = self.body()
        try:
            cur = st.get(group, plural, ns, name)
        except ApiError:
            if ctype == "application/apply-patch+yaml":
                obj = patches.apply(None, p, True)
                return self.send_json(201, st.create(group, plural, ns, obj, version=version))
            raise
        try:
            if ctype == "application/merge-patch+json":
                new = patches.merge(cur, p)
            elif ctype == "application/strategic-merge-patch+json":
                new = patches.strategic(cur, p)
            elif ctype == "application/json-patch+json":
                new = patches.json_patch(cur, p)
            elif ctype == "application/apply-patch+yaml":
                new = patches.apply(cur, p, False)
            else:
                raise ApiError(415, "UnsupportedMediaType", f"the patch type {ctype} is not supported")
        except patches.PatchError as e:
            raise ApiError(422, "Invalid", str(e))
        want_rv = (p.get("metadata") or {}).get("resourceVersion") if isinstance(p, dict) else None
        if want_rv and want_rv != cur["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {plural} "{name}": the object has been modified')
        new.setdefault("metadata", {})["resourceVersion"] = cur["metadata"]["resourceVersion"]
        if plural == "nodes":
            for t in (new.get("spec") or {}).get("taints") or []:  # the API server's validation of a taint
                v = t.get("value") or ""
                if len(v) > 63 or not re.fullmatch(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?", v):
                    raise ApiError(422, "Invalid", f'Node "{name}" is invalid: spec.taints[0].value: Invalid value: '
                                   f'"{v}": must be no more than 63 characters and a valid label value')
        return self.send_json(200, st.update(group, plural, ns, name, new))

    def watch(self, group, plural, ns, q):
        st = self.sim.store
        since = int(q.get("resourceVersion") or st.rv)
        if since < st.oldest_rv() - 1 and since != 0:
            return self.send_json(200, {"type": "ERROR", "object": ApiError(410, "Expired", f"too old resource version: {since}").status()})
        deadline = time.monotonic() + float(q.get("timeoutSeconds") or 300)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(obj):
            data = (json.dumps(obj) + "\n").encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        sent = since
        try:
            while time.monotonic() < deadline:
                if since < st.oldest_rv() - 1 and since != 0:
                    chunk({"type": "ERROR", "object": ApiError(410, "Expired", "too old resource version").status()})
                    break
                for rv, kind, g, p, obj in list(st.log):
                    if rv <= sent or g != group or p != plural:
                        continue
                    if ns and obj["metadata"].get("namespace") != ns:
                        continue
                    if not self.matches_query(obj, q):
                        continue
                    chunk({"type": kind, "object": obj})
                    sent = rv
                sent = max(sent, st.rv)
                st.changed.wait(timeout=1.0)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass
        self.close_connection = True

    @staticmethod
    def matches_query(obj, q):
        from lab.k8sim.store import match_fields, match_labels
        return match_labels(q.get("labelSelector", ""), obj["metadata"].get("labels")) and \
            match_fields(q.get("fieldSelector", ""), obj)


def load_object(st, obj):
    """Adds one object from a state file: its apiVersion and kind say where it goes."""
    av = obj.get("apiVersion", "v1")
    group, version = (av.split("/") + [""])[:2] if "/" in av else ("", av)
    kind = obj["kind"]
    plural = [p for (g, v, p), r in BY_PATH.items() if g == group and r[3] == kind][0]
    ns = obj["metadata"].get("namespace", "default" if BY_PATH[(group, version, plural)][4] else "")
    status = obj.get("status")
    created = st.create(group, plural, ns, copy.deepcopy(obj), kind, version)
    if status is not None:
        created["status"] = status
        st.after_change(group, plural, created)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--lb-port", type=int, help="also serve on --host:PORT, the load balancer a fault can cut")
    ap.add_argument("--fallback-cert", help="served while --cert does not exist")
    ap.add_argument("--fallback-key")
    ap.add_argument("--tokens", default="")
    ap.add_argument("--state")
    ap.add_argument("--ready-delay", type=float, default=0.5)
    ap.add_argument("--grace-scale", type=float, default=1.0)
    ap.add_argument("--version", default="v1.33.1")
    ap.add_argument("--no-apf", action="store_true", help="answer without API Priority and Fairness's headers (a "
                    "server with APF off)")
    ap.add_argument("--version-node", help="the node whose running kube-apiserver gives /version (the lab)")
    ap.add_argument("--node", action="append", default=[], help="NAME=IP=ROOT: a control-plane node whose endpoints are served "
                    "(ROOT: the host path of its /etc/kubernetes); the --version-node is the one at --host:--port")
    ap.add_argument("--scheduler", action="store_true", help="bind pods without a node, while system:kube-scheduler's RBAC allows")
    ap.add_argument("--pods", metavar="DIR", help="run the engine's own pods (image engine:TAG) as processes, their "
                    "files under DIR, and Jobs' pods with the Job controller (lab/k8sim/pods.py, jobs.py)")
    ap.add_argument("--node-ip", action="append", default=[], help="NAME=IP: a node's address, for its pods' hostIP")
    ap.add_argument("--engine-image", help="an OCI archive (scripts/image) the engine's pods run, instead of the build")
    args = ap.parse_args()
    sim = Sim(args)
    if args.pods:
        from lab.k8sim import jobs, pods
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        sim.store.runtime = pods.Runtime(
            sim.store, args.pods, (args.host, args.lb_port or args.port), args.ca, sim.tokens,
            engine=os.environ.get("ENGINE_BIN") or os.path.join(root, "build", "bin", "engine"),
            stdlib=os.environ.get("ENGINE_STDLIB"), runbooks=os.path.join(root, "runbooks"),
            node_ips=dict(x.split("=", 1) for x in args.node_ip), image=args.engine_image)
        sim.store.jobs = jobs.Jobs(sim.store)
    if args.state:
        with open(args.state) as f, sim.store.lock:
            for obj in json.load(f):
                load_object(sim.store, obj)
    Handler.sim = sim
    if args.scheduler:
        from lab.k8sim import scheduler
        scheduler.start(sim.store)
    # Without --node, one fixed certificate (the unit tests' simulator). With them (the lab), the
    # nodes' own endpoints (lab/k8sim/endpoints.py), the first node's apiserver at --host:--port.
    nodes = {}
    for spec in args.node:
        name, ip, root = spec.split("=", 2)
        nodes[name] = (ip, root)
    fallback = (args.fallback_cert, args.fallback_key) if args.fallback_cert else None
    sim.quorum = QuorumWatch(ip for ip, _ in nodes.values())
    if nodes:
        workdir = os.path.join(os.path.dirname(os.path.abspath(args.state or args.cert)), "served")
        sim.endpoints = endpoints.Endpoints(Handler, args.ca, workdir, nodes, (args.version_node, args.cert, args.key, fallback))
        context_of = sim.endpoints.context
    else:
        ctx = endpoints.server_context(args.cert, args.key, args.ca)
        context_of = lambda: ctx  # noqa: E731
    server = endpoints.TLSServer((args.host, args.port), Handler, context_of)
    lb_backend = None
    if nodes:
        # --host:--port is also what the nodes name as the control-plane endpoint (the load
        # balancer as they reach it, and the lab's kubeadm's reads): it serves as the other does.
        server.backend = lb_backend = sim.endpoints.serving
    if args.lb_port:
        sim.lb = endpoints.LoadBalancer((args.host, args.lb_port), Handler, context_of, lb_backend)
    print(f"k8sim listening on https://{args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
