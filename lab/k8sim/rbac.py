"""RBAC against the ClusterRoles, Roles and their bindings in the store: SubjectAccessReviews, the
user a request impersonates (kubectl auth can-i --as), and the identities the simulator enforces it
for (sim.py's enforce_rbac). Without impersonation the lab's admin is system:masters and everything
is allowed."""


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


def bound(subjects, user, groups, binding_ns):
    """Whether a binding's subjects name the user: a User, a Group it is in, or a ServiceAccount
    (system:serviceaccount:NS:NAME; a RoleBinding's subject without a namespace is in its own)."""
    for s in subjects or []:
        kind = s.get("kind")
        if kind == "User" and s.get("name") == user or kind == "Group" and s.get("name") in groups:
            return True
        if kind == "ServiceAccount" and user == f"system:serviceaccount:{s.get('namespace') or binding_ns}:{s.get('name')}":
            return True
    return False


def allowed(st, user, groups, attrs):
    """ClusterRoleBindings anywhere, and the RoleBindings of the request's namespace (to a Role of
    that namespace or a ClusterRole), as the API server's RBAC authorizer reads them."""
    if user is None or "system:masters" in groups:
        return True, ""
    ns = attrs.get("namespace") or ""
    bindings = [(b, "") for b in st.list("rbac.authorization.k8s.io", "clusterrolebindings", "")]
    if ns:
        bindings += [(b, ns) for b in st.list("rbac.authorization.k8s.io", "rolebindings", ns)]
    for b, bns in bindings:
        if not bound(b.get("subjects"), user, groups, bns):
            continue
        ref = b.get("roleRef") or {}
        if ref.get("kind") == "Role":
            role = st.objects.get(("rbac.authorization.k8s.io", "roles", bns, ref.get("name"))) if bns else None
        else:
            role = st.objects.get(("rbac.authorization.k8s.io", "clusterroles", "", ref.get("name")))
        if role and any(rule_allows(r, attrs) for r in role.get("rules") or []):
            kind = "RoleBinding" if bns else "ClusterRoleBinding"
            return True, f'RBAC: allowed by {kind} "{b["metadata"]["name"]}" of {ref.get("kind", "ClusterRole")} "{ref["name"]}" to User "{user}"'
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
