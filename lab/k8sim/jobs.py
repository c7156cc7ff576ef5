"""The simulator's Job controller (batch/v1), for the engine run as a Job (issue 22).

What the upgrade Job leans on, as kube-controller-manager's job controller does it: one pod at a
time (completions 1, parallelism 1: the only shape the lab runs; others are refused in the Job's
status), its pods labelled and owned by the Job; a pod that fails is judged by the Job's
podFailurePolicy (Ignore, FailJob, Count on exit codes or pod conditions, first match wins: an
evicted pod carries DisruptionTarget) and otherwise counts against backoffLimit; the next pod is
created when none is active, and, under podReplacementPolicy Failed (the default with a
podFailurePolicy), only once the last one has fully terminated; Complete when a pod succeeds, Failed
past backoffLimit or on a FailJob rule. Each pod created is an Event (SuccessfulCreate). Not
simulated: the exponential delay between failed pods, activeDeadlineSeconds, ttlSecondsAfterFinished,
indexed and parallel Jobs."""
import copy

from lab.k8sim.store import now


class Jobs:
    def __init__(self, store):
        self.store = store
        self.outcome = {}  # job uid → {pod uid: ("succeeded" | "failed" | "ignored" | "failjob", message)}

    # --- called by the store, its lock held ------------------------------------------------
    def on_change(self, plural, obj, deleted):
        if plural == "jobs" and not deleted:
            self.reconcile(obj)
        elif plural == "pods":
            for ref in obj["metadata"].get("ownerReferences") or []:
                if ref.get("kind") == "Job" and ref.get("controller"):
                    job = self.store.objects.get(("batch", "jobs", obj["metadata"]["namespace"], ref["name"]))
                    if job and job["metadata"]["uid"] == ref.get("uid"):
                        if deleted:  # a pod gone before it ended (deleted by force): judged as it last was
                            self.judge(job, obj)
                        self.reconcile(job)

    def judge(self, job, pod):
        seen = self.outcome.setdefault(job["metadata"]["uid"], {})
        uid = pod["metadata"]["uid"]
        if uid in seen:
            return
        st = pod.get("status") or {}
        if st.get("phase") == "Succeeded":
            seen[uid] = ("succeeded", "")
            return
        code = None
        for cs in st.get("containerStatuses") or []:
            term = (cs.get("state") or {}).get("terminated")
            if term:
                code = term.get("exitCode")
        conds = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
        for i, rule in enumerate(((job.get("spec") or {}).get("podFailurePolicy") or {}).get("rules") or []):
            match = False
            oec = rule.get("onExitCodes")
            if oec and code is not None:
                inside = code in (oec.get("values") or [])
                match = inside if oec.get("operator", "In") == "In" else (not inside and code != 0)
            for pc in rule.get("onPodConditions") or []:
                if conds.get(pc.get("type")) == pc.get("status", "True"):
                    match = True
            if match:
                action = rule.get("action")
                msg = (f"Pod {pod['metadata']['namespace']}/{pod['metadata']['name']} "
                       f"{'exited with code %s' % code if code is not None else 'has a matching condition'}, "
                       f"matching the {action} rule at index {i}")
                seen[uid] = ({"Ignore": "ignored", "FailJob": "failjob"}.get(action, "failed"), msg)
                return
        seen[uid] = ("failed", "")

    def reconcile(self, job):
        spec = job.get("spec") or {}
        status = job.get("status") or {}
        if any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in status.get("conditions") or []):
            return
        meta = job["metadata"]
        uid, ns = meta["uid"], meta["namespace"]
        pods = [p for p in self.store.list("", "pods", ns)
                if any(r.get("uid") == uid and r.get("controller") for r in p["metadata"].get("ownerReferences") or [])]
        for p in pods:
            if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                self.judge(job, p)
        seen = self.outcome.get(uid, {})
        count = {k: sum(1 for o, _ in seen.values() if o == k) for k in ("succeeded", "failed", "ignored")}
        done = set(seen)
        active = [p for p in pods if p["metadata"]["uid"] not in done and not p["metadata"].get("deletionTimestamp")]
        terminating = [p for p in pods if p["metadata"]["uid"] not in done and p["metadata"].get("deletionTimestamp")]
        new = {"startTime": status.get("startTime") or now(), "active": len(active), "succeeded": count["succeeded"],
               "failed": count["failed"], "terminating": len(terminating), "ready": len(active),
               "conditions": list(status.get("conditions") or [])}
        failjob = [m for o, m in seen.values() if o == "failjob"]
        backoff = spec.get("backoffLimit", 6)
        if spec.get("completions", 1) != 1 or spec.get("parallelism", 1) != 1:
            new["conditions"].append(self.condition("Failed", "Unsupported", "the lab runs Jobs of one pod at a time"))
        elif failjob:
            new["conditions"].append(self.condition("Failed", "PodFailurePolicy", failjob[0]))
        elif count["succeeded"] >= 1:
            new["conditions"] += [self.condition("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"),
                                  self.condition("Complete", "CompletionsReached", "Reached expected number of succeeded pods")]
            new["completionTime"] = now()
        elif count["failed"] > backoff:
            new["conditions"].append(self.condition("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"))
        elif not spec.get("suspend") and not active:
            policy = spec.get("podReplacementPolicy") or ("Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed")
            if not terminating or policy == "TerminatingOrFailed":
                self.create_pod(job)
                new["active"] += 1
                new["ready"] += 1
        if any(c["type"] == "Failed" for c in new["conditions"]):
            for p in active:
                self.store.delete("", "pods", ns, p["metadata"]["name"])
            new["active"] = 0
        if {k: v for k, v in new.items() if k != "ready"} != {k: status.get(k, 0 if k != "conditions" else [])
                                                              for k in new if k != "ready"}:
            job["status"] = new
            meta["resourceVersion"] = self.store.next_rv()
            self.store.record("MODIFIED", "batch", "jobs", job)

    @staticmethod
    def condition(kind, reason, message):
        t = now()
        return {"type": kind, "status": "True", "reason": reason, "message": message,
                "lastProbeTime": t, "lastTransitionTime": t}

    def create_pod(self, job):
        meta = job["metadata"]
        tmpl = copy.deepcopy((job.get("spec") or {}).get("template") or {})
        labels = dict((tmpl.get("metadata") or {}).get("labels") or {})
        labels.update({"batch.kubernetes.io/job-name": meta["name"], "job-name": meta["name"],
                       "batch.kubernetes.io/controller-uid": meta["uid"], "controller-uid": meta["uid"]})
        pod = {"metadata": {"generateName": meta["name"] + "-", "labels": labels,
                            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
                                                 "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}]},
               "spec": tmpl.get("spec") or {}, "status": {"phase": "Pending"}}
        made = self.store.create("", "pods", meta["namespace"], pod, "Pod")
        self.store.create("", "events", meta["namespace"], {
            "metadata": {"generateName": meta["name"] + "."}, "type": "Normal", "reason": "SuccessfulCreate",
            "message": f"Created pod: {made['metadata']['name']}", "source": {"component": "job-controller"},
            "involvedObject": {"apiVersion": "batch/v1", "kind": "Job", "namespace": meta["namespace"],
                               "name": meta["name"], "uid": meta["uid"]},
            "firstTimestamp": now(), "lastTimestamp": now(), "count": 1}, "Event")
