"""The simulator's object store: resourceVersions, selectors, pagination, a watch log, PDB
accounting, pods that take their grace period to go, and a ReplicaSet controller that replaces
an evicted pod on another schedulable node and makes it Ready after a delay."""
import base64
import binascii
import copy
import datetime
import random
import string
import threading
import uuid

from lab.k8sim.resources import KIND_OF, api_version


# The annotation of a Deployment whose status the simulator keeps from its pods.
MANAGED = "k8sim.engine.dev/status-from-pods"


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self):
        s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": self.message,
             "reason": self.reason, "code": self.code}
        if self.details:
            s["details"] = self.details
        return s


def match_labels(selector, labels):
    """A label selector string: a=b, a!=b, a in (x,y), a notin (x), a, !a."""
    labels = labels or {}
    if not selector:
        return True
    for term in split_terms(selector):
        term = term.strip()
        if " notin " in term:
            k, vs = term.split(" notin ", 1)
            if labels.get(k.strip()) in [v.strip() for v in vs.strip("() ").split(",")]:
                return False
        elif " in " in term:
            k, vs = term.split(" in ", 1)
            if labels.get(k.strip()) not in [v.strip() for v in vs.strip("() ").split(",")]:
                return False
        elif "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.split("==", 1) if "==" in term else term.split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def split_terms(selector):
    out, depth, cur = [], 0, ""
    for c in selector:
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        if c == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += c
    if cur:
        out.append(cur)
    return out


def field_value(obj, path):
    cur = obj
    for p in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(p)
    return cur


def match_fields(selector, obj):
    if not selector:
        return True
    for term in selector.split(","):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if str(field_value(obj, k) or "") == v:
                return False
        elif "=" in term:
            k, v = term.split("==", 1) if "==" in term else term.split("=", 1)
            if str(field_value(obj, k) or "") != v:
                return False
    return True


def selector_matches(sel, labels):
    """A LabelSelector object (matchLabels, matchExpressions)."""
    if sel is None:
        return False
    for k, v in (sel.get("matchLabels") or {}).items():
        if (labels or {}).get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        val = (labels or {}).get(e["key"])
        op = e["operator"]
        if op == "In" and val not in e.get("values", []):
            return False
        if op == "NotIn" and val in e.get("values", []):
            return False
        if op == "Exists" and val is None:
            return False
        if op == "DoesNotExist" and val is not None:
            return False
    return True


def pod_ready(pod):
    if pod["metadata"].get("deletionTimestamp"):
        return False
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


# The API server's own limit on what a ConfigMap or Secret holds (core.MaxSecretSize): its keys and
# values together, the values of binaryData and of a Secret's data counted decoded.
MAX_DATA_BYTES = 1024 * 1024


def check_data_size(plural, obj):
    if plural not in ("configmaps", "secrets"):
        return
    total = 0
    for field, encoded in (("data", plural == "secrets"), ("binaryData", True), ("stringData", False)):
        for k, v in ((obj.get(field) or {}).items()):
            total += len(k.encode())
            if encoded:
                try:
                    total += len(base64.b64decode(v or "", validate=True))
                except (binascii.Error, ValueError):
                    total += len(str(v))
            else:
                total += len(str(v).encode())
    if total > MAX_DATA_BYTES:
        kind = "ConfigMap" if plural == "configmaps" else "Secret"
        name = (obj.get("metadata") or {}).get("name", "")
        why = f"Too long: must have at most {MAX_DATA_BYTES} bytes"
        raise ApiError(422, "Invalid", f'{kind} "{name}" is invalid: []: {why}',
                       {"name": name, "kind": kind, "causes": [{"reason": "FieldValueTooLong", "message": why, "field": "[]"}]})


class Store:
    def __init__(self, ready_delay=0.5, grace_scale=1.0):
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.objects = {}  # (group, plural, namespace, name) -> obj
        self.rv = 100
        self.log = []  # (rv, type, group, plural, obj)
        self.ready_delay = ready_delay
        self.grace_scale = grace_scale
        self.server_version = "v1.33.1"
        self.timers = []
        self.runtime = None  # lab/k8sim/pods.py: the engine's own pods run as processes
        self.jobs = None  # lab/k8sim/jobs.py: the Job controller

    # --- basics ----------------------------------------------------------------------------
    def next_rv(self):
        self.rv += 1
        return str(self.rv)

    def record(self, kind, group, plural, obj):
        self.log.append((int(obj["metadata"]["resourceVersion"]), kind, group, plural, copy.deepcopy(obj)))
        if len(self.log) > 5000:
            self.log = self.log[-4000:]
        self.changed.notify_all()

    def oldest_rv(self):
        return self.log[0][0] if self.log else self.rv

    def get(self, group, plural, ns, name):
        obj = self.objects.get((group, plural, ns or "", name))
        if obj is None:
            kind = KIND_OF.get((group, plural), plural)
            raise ApiError(404, "NotFound", f'{plural}{"." + group if group else ""} "{name}" not found',
                           {"name": name, "group": group, "kind": plural})
        return obj

    def list(self, group, plural, ns, label_selector="", field_selector=""):
        out = []
        for (g, p, n, _), obj in sorted(self.objects.items(), key=lambda kv: (kv[0][2], kv[0][3])):
            if g != group or p != plural or (ns and n != ns):
                continue
            if match_labels(label_selector, obj["metadata"].get("labels")) and match_fields(field_selector, obj):
                out.append(obj)
        return out

    def create(self, group, plural, ns, obj, kind=None, version="v1"):
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
        name = meta.get("name")
        if not name:
            raise ApiError(422, "Invalid", "metadata.name: Required value")
        key = (group, plural, ns or "", name)
        check_data_size(plural, obj)
        if key in self.objects:
            raise ApiError(409, "AlreadyExists", f'{plural} "{name}" already exists',
                           {"name": name, "group": group, "kind": plural})
        if ns:
            meta["namespace"] = ns
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = meta.get("creationTimestamp") or now()
        meta["resourceVersion"] = self.next_rv()
        meta.setdefault("generation", 1)
        obj["kind"] = kind or KIND_OF.get((group, plural), obj.get("kind"))
        obj["apiVersion"] = api_version(group, version)
        self.objects[key] = obj
        self.record("ADDED", group, plural, obj)
        self.after_change(group, plural, obj)
        return obj

    def update(self, group, plural, ns, name, obj, check_rv=True):
        cur = self.get(group, plural, ns, name)
        want = (obj.get("metadata") or {}).get("resourceVersion")
        if check_rv and want and want != cur["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {plural} "{name}": the object has been '
                           "modified; please apply your changes to the latest version and try again",
                           {"name": name, "group": group, "kind": plural})
        check_data_size(plural, obj)
        meta = obj.setdefault("metadata", {})
        for k in ("uid", "creationTimestamp", "namespace", "name", "deletionTimestamp"):
            if k in cur["metadata"]:
                meta[k] = cur["metadata"][k]
        meta["resourceVersion"] = self.next_rv()
        obj["kind"], obj["apiVersion"] = cur["kind"], cur["apiVersion"]
        self.objects[(group, plural, ns or "", name)] = obj
        self.record("MODIFIED", group, plural, obj)
        self.after_change(group, plural, obj)
        return obj

    def delete(self, group, plural, ns, name, grace=None):
        obj = self.get(group, plural, ns, name)
        if plural == "pods":
            if grace is None:
                grace = (obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
            if grace and grace > 0:
                if not obj["metadata"].get("deletionTimestamp"):
                    obj["metadata"]["deletionTimestamp"] = now()
                    obj["metadata"]["deletionGracePeriodSeconds"] = grace
                    obj["metadata"]["resourceVersion"] = self.next_rv()
                    self.record("MODIFIED", group, plural, obj)
                    self.after_change(group, plural, obj)
                    # A pod the runtime runs goes when its process has (SIGTERM, SIGKILL after the
                    # grace period); any other after its grace period.
                    if not (self.runtime and self.runtime.handles_delete(obj)):
                        uid = obj["metadata"]["uid"]
                        self.later(grace * self.grace_scale, lambda: self.finish_delete(group, plural, ns, name, uid))
                return obj
        return self.remove(group, plural, ns, name)

    def finish_delete(self, group, plural, ns, name, uid):
        obj = self.objects.get((group, plural, ns or "", name))
        if obj and obj["metadata"]["uid"] == uid:
            self.remove(group, plural, ns, name)

    def remove(self, group, plural, ns, name):
        obj = self.objects.pop((group, plural, ns or "", name))
        obj["metadata"]["resourceVersion"] = self.next_rv()
        self.record("DELETED", group, plural, obj)
        self.after_change(group, plural, obj, deleted=True)
        return obj

    def later(self, delay, fn):
        def run():
            with self.lock:
                fn()
        t = threading.Timer(max(0.0, delay), run)
        t.daemon = True
        t.start()
        self.timers.append(t)

    # --- controllers -----------------------------------------------------------------------
    def after_change(self, group, plural, obj, deleted=False):
        if plural == "pods" and self.runtime:
            self.runtime.on_pod(obj, deleted)
        if plural in ("pods", "jobs") and self.jobs:
            self.jobs.on_change(plural, obj, deleted)
        if plural == "pods":
            self.update_pdbs(obj["metadata"].get("namespace", ""))
            self.update_deployments(obj["metadata"].get("namespace", ""))
            if obj["metadata"].get("deletionTimestamp") or deleted:
                self.replace_pod(obj)
        elif plural == "poddisruptionbudgets" and not deleted:
            self.update_pdbs(obj["metadata"].get("namespace", ""))
        elif plural == "deployments" and not deleted:
            self.update_deployments(obj["metadata"].get("namespace", ""))
        elif plural == "persistentvolumeclaims" and not deleted:
            self.bind_claim(obj)

    def bind_claim(self, pvc):
        """A claim is Bound at once, to what it asked for, as a dynamic provisioner would bind it;
        the pod runtime keeps its files (lab/k8sim/pods.py) for as long as the lab runs."""
        spec = pvc.get("spec") or {}
        status = {"phase": "Bound", "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                  "capacity": {"storage": ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")}}
        if pvc.get("status") != status:
            pvc["status"] = status
            pvc["metadata"]["resourceVersion"] = self.next_rv()
            self.record("MODIFIED", "", "persistentvolumeclaims", pvc)

    def update_deployments(self, ns):
        """The status a Deployment controller would write, from the pods its selector matches, for
        the Deployments marked MANAGED (the lab's; a test that sets a status by hand keeps it). One
        revision only: every pod counts as updated."""
        for d in self.list("apps", "deployments", ns):
            if (d["metadata"].get("annotations") or {}).get(MANAGED) != "true":
                continue
            sel = (d.get("spec") or {}).get("selector")
            pods = [p for p in self.list("", "pods", ns) if selector_matches(sel, p["metadata"].get("labels"))
                    and not p["metadata"].get("deletionTimestamp")]
            ready = len([p for p in pods if pod_ready(p)])
            status = {"observedGeneration": d["metadata"].get("generation", 1), "replicas": len(pods),
                      "updatedReplicas": len(pods), "readyReplicas": ready, "availableReplicas": ready}
            if d.get("status") != status:
                d["status"] = status
                d["metadata"]["resourceVersion"] = self.next_rv()
                self.record("MODIFIED", "apps", "deployments", d)

    def pdbs_for(self, pod):
        ns = pod["metadata"].get("namespace", "")
        return [p for p in self.list("policy", "poddisruptionbudgets", ns)
                if selector_matches((p.get("spec") or {}).get("selector"), pod["metadata"].get("labels"))]

    def update_pdbs(self, ns):
        for pdb in self.list("policy", "poddisruptionbudgets", ns):
            spec = pdb.get("spec") or {}
            pods = [p for p in self.list("", "pods", ns) if selector_matches(spec.get("selector"), p["metadata"].get("labels"))]
            expected = len([p for p in pods if not p["metadata"].get("deletionTimestamp")])
            healthy = len([p for p in pods if pod_ready(p)])
            if "minAvailable" in spec:
                want = self.amount(spec["minAvailable"], expected, up=True)
            elif "maxUnavailable" in spec:
                want = expected - self.amount(spec["maxUnavailable"], expected, up=False)
            else:
                want = expected
            status = {"currentHealthy": healthy, "desiredHealthy": want, "expectedPods": expected,
                      "disruptionsAllowed": max(0, healthy - want), "observedGeneration": 1}
            if pdb.get("status") != status:
                pdb["status"] = status
                pdb["metadata"]["resourceVersion"] = self.next_rv()
                self.record("MODIFIED", "policy", "poddisruptionbudgets", pdb)

    @staticmethod
    def amount(v, total, up):
        if isinstance(v, str) and v.endswith("%"):
            x = total * int(v[:-1]) / 100
            return int(x) if not up or x == int(x) else int(x) + 1
        return int(v)

    def placements(self, avoid):
        """Where a pod may be put: the schedulable Ready nodes but `avoid`; the workers among them
        (a control-plane node's NoSchedule taint, which the lab's pods do not tolerate), else all;
        of those, the ones without a PreferNoSchedule taint when there are any (the scheduler's
        taint score: such a node is chosen only when nothing else fits)."""
        names = self.schedulable_nodes(avoid)
        names = [n for n in names if "node-role.kubernetes.io/control-plane" not in
                 (self.get("", "nodes", "", n)["metadata"].get("labels") or {})] or names
        clean = [n for n in names if not any(t.get("effect") == "PreferNoSchedule"
                                             for t in (self.get("", "nodes", "", n).get("spec") or {}).get("taints") or [])]
        return clean or names

    def schedulable_nodes(self, avoid):
        out = []
        for n in self.list("", "nodes", ""):
            if (n.get("spec") or {}).get("unschedulable") or n["metadata"]["name"] == avoid:
                continue
            ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in (n.get("status") or {}).get("conditions") or [])
            if ready:
                out.append(n["metadata"]["name"])
        return out

    def replace_pod(self, pod):
        """A ReplicaSet's pod is going: a replacement starts on another schedulable node."""
        owners = [o for o in pod["metadata"].get("ownerReferences") or [] if o.get("kind") == "ReplicaSet"]
        if not owners or pod["metadata"].get("annotations", {}).get("sim/replaced"):
            return
        pod["metadata"].setdefault("annotations", {})["sim/replaced"] = "true"
        ns = pod["metadata"]["namespace"]
        nodes = self.placements(avoid=(pod.get("spec") or {}).get("nodeName"))
        if not nodes:
            return
        new = {"metadata": {"generateName": owners[0]["name"] + "-", "labels": copy.deepcopy(pod["metadata"].get("labels")),
                            "ownerReferences": copy.deepcopy(pod["metadata"]["ownerReferences"])},
               "spec": dict(copy.deepcopy(pod.get("spec") or {}), nodeName=random.choice(nodes)),
               "status": {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}]}}
        created = self.create("", "pods", ns, new, "Pod")
        name = created["metadata"]["name"]

        def make_ready():
            p = self.objects.get(("", "pods", ns, name))
            if p:
                p["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
                p["metadata"]["resourceVersion"] = self.next_rv()
                self.record("MODIFIED", "", "pods", p)
                self.after_change("", "pods", p)
        self.later(self.ready_delay, make_ready)

    def evict(self, ns, name, grace):
        pod = self.get("", "pods", ns, name)
        if pod["metadata"].get("deletionTimestamp"):
            return pod
        pdbs = self.pdbs_for(pod)
        if len(pdbs) > 1:
            raise ApiError(500, "InternalError", "This pod has more than one PodDisruptionBudget, which the eviction "
                           "subresource does not support.")
        if pdbs:
            st = pdbs[0].get("status") or {}
            if st.get("disruptionsAllowed", 0) < 1:
                pdb = pdbs[0]["metadata"]["name"]
                raise ApiError(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget.",
                               {"causes": [{"reason": "DisruptionBudget", "message":
                                            f"The disruption budget {pdb} needs {st.get('desiredHealthy', 0)} healthy "
                                            f"pods and has {st.get('currentHealthy', 0)} currently"}]})
        # As the API server does: the pod says why it goes (a Job's podFailurePolicy reads it).
        conds = pod.setdefault("status", {}).setdefault("conditions", [])
        if not any(c.get("type") == "DisruptionTarget" for c in conds):
            conds.append({"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
                          "message": "Eviction API: evicting", "lastTransitionTime": now()})
        return self.delete("", "pods", ns, name, grace)
