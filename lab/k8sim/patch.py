"""The four patch types: JSON merge (RFC 7386), strategic merge (merge, with lists of named items
merged by name as Kubernetes does for containers, conditions, volumes...), JSON patch (RFC 6902),
and server-side apply (a merge that creates the object if missing)."""
import copy

MERGE_KEYS = {"containers": "name", "initContainers": "name", "volumes": "name", "env": "name",
              "conditions": "type", "ports": "containerPort", "tolerations": "key", "taints": "key",
              "volumeMounts": "mountPath", "ownerReferences": "uid"}


class PatchError(Exception):
    pass


def merge(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge(out.get(k), v)
    return out


def strategic(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k.startswith("$"):
            continue
        if v is None:
            out.pop(k, None)
        elif isinstance(v, list) and k in MERGE_KEYS and isinstance(out.get(k), list):
            key = MERGE_KEYS[k]
            merged = copy.deepcopy(out[k])
            for item in v:
                if isinstance(item, dict) and item.get("$patch") == "delete":
                    merged = [m for m in merged if m.get(key) != item.get(key)]
                    continue
                for i, m in enumerate(merged):
                    if isinstance(m, dict) and isinstance(item, dict) and m.get(key) == item.get(key):
                        merged[i] = strategic(m, item)
                        break
                else:
                    merged.append(copy.deepcopy(item))
            out[k] = merged
        else:
            out[k] = strategic(out.get(k), v)
    return out


def _walk(doc, pointer):
    if pointer == "":
        return None, None
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.lstrip("/").split("/")]
    cur = doc
    for p in parts[:-1]:
        cur = cur[int(p)] if isinstance(cur, list) else cur[p]
    return cur, parts[-1]


def json_patch(doc, ops):
    doc = copy.deepcopy(doc)
    if not isinstance(ops, list):
        raise PatchError("a JSON patch is a list of operations")
    for op in ops:
        kind, path = op.get("op"), op.get("path", "")
        try:
            parent, last = _walk(doc, path)
            if kind in ("add", "replace"):
                if isinstance(parent, list):
                    if last == "-":
                        parent.append(op["value"])
                    elif kind == "add":
                        parent.insert(int(last), op["value"])
                    else:
                        parent[int(last)] = op["value"]
                else:
                    if kind == "replace" and last not in parent:
                        raise PatchError(f"replace: {path} does not exist")
                    parent[last] = op["value"]
            elif kind == "remove":
                if isinstance(parent, list):
                    parent.pop(int(last))
                else:
                    del parent[last]
            elif kind == "test":
                cur = parent[int(last)] if isinstance(parent, list) else parent.get(last)
                if cur != op.get("value"):
                    raise PatchError(f"test failed at {path}")
            else:
                raise PatchError(f"unsupported op {kind}")
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise PatchError(f"{kind} {path}: {e}")
    return doc


def apply(doc, patch, kind_is_new):
    return merge(doc or {}, patch)
