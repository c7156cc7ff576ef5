"""SelfSubjectAccessReview against the ClusterRoles and ClusterRoleBindings in the store, for the
user a request impersonates (kubectl auth can-i --as). Without impersonation the caller is the
admin (system:masters) and everything is allowed."""


def matches(values, want):
    return "*" in (values or []) or want in (values or [])


def rule_allows(rule, attrs):
    res = attrs.get("resource", "")
    if attrs.get("subresource"):
        res += "/" + attrs["subresource"]
    if "nonResourceURLs" in rule:
        return False
    return matches(rule.get("verbs"), attrs.get("verb", "")) and \
        matches(rule.get("apiGroups"), attrs.get("group", "")) and matches(rule.get("resources"), res) and \
        (not rule.get("resourceNames") or attrs.get("name") in rule["resourceNames"])


def allowed(st, user, groups, attrs):
    if user is None or "system:masters" in groups:
        return True, ""
    for b in st.list("rbac.authorization.k8s.io", "clusterrolebindings", ""):
        if not any((s.get("kind") == "User" and s.get("name") == user) or
                   (s.get("kind") == "Group" and s.get("name") in groups) for s in b.get("subjects") or []):
            continue
        ref = b.get("roleRef") or {}
        role = st.objects.get(("rbac.authorization.k8s.io", "clusterroles", "", ref.get("name")))
        if role and any(rule_allows(r, attrs) for r in role.get("rules") or []):
            return True, f'RBAC: allowed by ClusterRoleBinding "{b["metadata"]["name"]}" of ClusterRole "{ref["name"]}" to User "{user}"'
    return False, ""


def _fields(buf):
    """The length-delimited and varint fields of one protobuf message: {number: [value, ...]}."""
    out, i = {}, 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wire == 5:
            v, i = buf[i:i + 4], i + 4
        elif wire == 1:
            v, i = buf[i:i + 8], i + 8
        else:
            raise ValueError("unsupported protobuf wire type")
        out.setdefault(num, []).append(v)
    return out


def _varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def review_from_protobuf(raw):
    """kubectl sends SelfSubjectAccessReviews as protobuf (k8s\\0 + runtime.Unknown): the
    resourceAttributes as a dict, as the JSON form has them."""
    if not raw.startswith(b"k8s\x00"):
        raise ValueError("not a Kubernetes protobuf envelope")
    unknown = _fields(raw[4:])
    review = _fields(unknown[2][0])
    spec = _fields(review.get(2, [b""])[0])
    attrs = _fields(spec.get(1, [b""])[0])
    names = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource", 6: "subresource", 7: "name"}
    return {names[k]: v[0].decode() for k, v in attrs.items() if k in names}
