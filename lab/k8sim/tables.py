"""meta.k8s.io/v1 Table answers, which kubectl asks for when it prints `get` output."""
import datetime


def age(ts):
    try:
        t = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return "<unknown>"
    s = int((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds())
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def col(name, kind="string", fmt=""):
    return {"name": name, "type": kind, "format": fmt, "description": name, "priority": 0}


def node_row(n):
    ready = "Unknown"
    for c in (n.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            ready = "Ready" if c.get("status") == "True" else "NotReady"
    status = ready + (",SchedulingDisabled" if (n.get("spec") or {}).get("unschedulable") else "")
    roles = ",".join(sorted(k.split("/", 1)[1] for k in (n["metadata"].get("labels") or {})
                            if k.startswith("node-role.kubernetes.io/"))) or "<none>"
    version = ((n.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", "")
    return [n["metadata"]["name"], status, roles, age(n["metadata"].get("creationTimestamp")), version]


def pod_row(p):
    st = p.get("status") or {}
    containers = (p.get("spec") or {}).get("containers") or [{}]
    ready = 1 if any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or []) else 0
    phase = "Terminating" if p["metadata"].get("deletionTimestamp") else st.get("phase", "Pending")
    for cs in st.get("containerStatuses") or []:  # what kubectl shows: the container's reason
        state = cs.get("state") or {}
        if phase != "Terminating" and (state.get("terminated") or state.get("waiting")):
            phase = (state.get("terminated") or state.get("waiting")).get("reason") or phase
    return [p["metadata"]["name"], f"{ready * len(containers)}/{len(containers)}", phase, 0,
            age(p["metadata"].get("creationTimestamp"))]


def table(columns, row_fn):
    def build(items, meta):
        return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": columns,
                "rows": [{"cells": row_fn(o), "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                                           "metadata": o["metadata"]}} for o in items]}
    return build


def pdb_row(p):
    spec, st = p.get("spec") or {}, p.get("status") or {}
    return [p["metadata"]["name"], str(spec.get("minAvailable", "N/A")), str(spec.get("maxUnavailable", "N/A")),
            st.get("disruptionsAllowed", 0), age(p["metadata"].get("creationTimestamp"))]


def job_row(j):
    st = j.get("status") or {}
    conds = {c.get("type") for c in st.get("conditions") or [] if c.get("status") == "True"}
    status = "Complete" if "Complete" in conds else "Failed" if "Failed" in conds else \
        "Suspended" if (j.get("spec") or {}).get("suspend") else "Running"
    duration = "<unknown>"
    if st.get("startTime"):
        end = st.get("completionTime")
        duration = age(st["startTime"]) if not end else age_between(st["startTime"], end)
    return [j["metadata"]["name"], status, f"{st.get('succeeded', 0)}/{(j.get('spec') or {}).get('completions', 1)}",
            duration, age(j["metadata"].get("creationTimestamp"))]


def age_between(a, b):
    f = "%Y-%m-%dT%H:%M:%SZ"
    try:
        s = int((datetime.datetime.strptime(b, f) - datetime.datetime.strptime(a, f)).total_seconds())
    except (TypeError, ValueError):
        return "<unknown>"
    return f"{s}s" if s < 120 else f"{s // 60}m"


TABLES = {
    "jobs": table([col("Name", fmt="name"), col("Status"), col("Completions"), col("Duration"), col("Age")], job_row),
    "poddisruptionbudgets": table([col("Name", fmt="name"), col("Min Available"), col("Max Unavailable"),
                                   col("Allowed Disruptions", "integer"), col("Age")], pdb_row),
    "nodes": table([col("Name", fmt="name"), col("Status"), col("Roles"), col("Age"), col("Version")], node_row),
    "pods": table([col("Name", fmt="name"), col("Ready"), col("Status"), col("Restarts", "integer"), col("Age")], pod_row),
}


def table_for(plural):
    return TABLES.get(plural)
