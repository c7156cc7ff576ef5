"""The simulator's kube-scheduler (started with --scheduler, as the lab does): binds each pod without
a node to a schedulable Ready node, but only while system:kube-scheduler's RBAC lets it watch pods
and nodes and create bindings, as the real one is refused (seed 000: with its ClusterRole gone,
every new pod stayed Pending)."""
import threading
import time

from lab.k8sim import pods, rbac

NEEDS = [{"verb": "list", "group": "", "resource": "pods"}, {"verb": "watch", "group": "", "resource": "pods"},
         {"verb": "list", "group": "", "resource": "nodes"},
         {"verb": "create", "group": "", "resource": "pods", "subresource": "binding"}]
USER = "system:kube-scheduler"


def may_schedule(st):
    return all(rbac.allowed(st, USER, {"system:authenticated"}, a)[0] for a in NEEDS)


def pass_once(st):
    """One scheduling pass; st.lock is taken here."""
    with st.lock:
        pending = [p for p in st.list("", "pods", "") if not (p.get("spec") or {}).get("nodeName")
                   and not p["metadata"].get("deletionTimestamp")]
        if not pending or not may_schedule(st):
            return 0
        workers = st.placements(avoid=None)
        done = 0
        for i, p in enumerate(pending):
            if not workers:
                break
            p.setdefault("spec", {})["nodeName"] = workers[i % len(workers)]
            if pods.owns(p):  # the lab's runtime starts it and says when it runs
                p["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}
            else:
                p["status"] = {"phase": "Running", "conditions": [{"type": "PodScheduled", "status": "True"},
                                                                  {"type": "Ready", "status": "True"}]}
            p["metadata"]["resourceVersion"] = st.next_rv()
            st.record("MODIFIED", "", "pods", p)
            st.after_change("", "pods", p)
            done += 1
        return done


def start(st, interval=0.5):
    def loop():
        while True:
            try:
                pass_once(st)
            except Exception as e:  # a pass that fails is tried again, as the scheduler's queue does
                print(f"scheduler: {e}", flush=True)
            time.sleep(interval)
    threading.Thread(target=loop, daemon=True).start()
