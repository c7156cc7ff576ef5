"""YAML for the lab, in Python's standard library (design.md: the lab needs nothing else).

Reads what the lab's files are written with: the block style of kubeadm, kubectl, yaml-cpp (the
engine's http.yaml_encode) and this module's dump; mappings, sequences (also at their key's
indentation, and compact `- key: value` items), flow `[...]`/`{...}`, plain, single- and
double-quoted scalars (over several lines too), literal `|` and folded `>` blocks, comments and
several documents. Plain scalars get YAML 1.1's types as PyYAML gives them (yes/on are booleans,
0755 is octal, 1e5 is a string) except timestamps, which stay strings. Anchors, aliases, tags
and `?` keys are refused with the line: no file the lab reads uses them. An error is YAMLError
with the line number. dump writes block style, keys in the dict's order, and quotes every string
that would read back as something else."""
import json
import math
import re


class YAMLError(ValueError):
    pass


_NULL = {"", "~", "null", "Null", "NULL"}
_BOOL = {"yes": True, "Yes": True, "YES": True, "no": False, "No": False, "NO": False,
         "true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False,
         "on": True, "On": True, "ON": True, "off": False, "Off": False, "OFF": False}
# PyYAML's resolver (resolver.py), YAML 1.1: a float needs its dot; 0-prefixed integers are octal.
_INT = re.compile(r"""^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+
                      |[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$""", re.X)
_FLOAT = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?
                        |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""", re.X)
_TIMESTAMP = re.compile(r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}")
_OTHER_TYPES = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|0o[0-7]+|[yYnN]")
_ESCAPES = {"0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v", "f": "\f", "r": "\r",
            "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\", "N": "\x85", "_": "\xa0", "L": "\u2028",
            "P": "\u2029"}
_HEX = {"x": 2, "u": 4, "U": 8}


def _sexagesimal(s, conv):
    sign, s = (-1, s[1:]) if s[0] == "-" else (1, s.lstrip("+"))
    value = 0
    for part in s.split(":"):
        value = value * 60 + conv(part)
    return sign * value


def resolve(s):
    """A plain scalar's value, typed as PyYAML types it (timestamps stay strings)."""
    if s in _NULL:
        return None
    if s in _BOOL:
        return _BOOL[s]
    if _INT.match(s):
        t = s.replace("_", "")
        if ":" in t:
            return _sexagesimal(t, int)
        sign, body = (-1, t[1:]) if t[0] == "-" else (1, t.lstrip("+"))
        if body.startswith("0b"):
            return sign * int(body[2:], 2)
        if body.startswith("0x"):
            return sign * int(body[2:], 16)
        if len(body) > 1 and body[0] == "0":
            return sign * int(body, 8)
        return sign * int(body)
    if _FLOAT.match(s):
        t = s.replace("_", "").lower()
        if t.endswith(".inf"):
            return -math.inf if t[0] == "-" else math.inf
        if t.endswith(".nan"):
            return math.nan
        return _sexagesimal(t, float) if ":" in t else float(t)
    return s


class _Incomplete(Exception):
    """A flow collection or quoted scalar goes on past the text read so far."""


class _Line:
    __slots__ = ("indent", "text", "no")

    def __init__(self, indent, text, no):
        self.indent, self.text, self.no = indent, text, no


def _strip_comment(text):
    """text without its comment: a # at its start or after white space, outside quotes."""
    quote, i = None, 0
    while i < len(text):
        c = text[i]
        if quote == '"':
            if c == "\\":
                i += 1
            elif c == '"':
                quote = None
        elif quote == "'":
            if c == "'" and text[i + 1:i + 2] == "'":
                i += 1  # '' is a quote inside the scalar
            elif c == "'":
                quote = None
        elif c in "\"'" and (i == 0 or text[i - 1] in " \t[{,:-"):
            quote = c
        elif c == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
        i += 1
    return text.rstrip()


def _split_key(text):
    """(key, rest) when text is a block mapping entry `key: rest` (or `key:`), else None."""
    if not text or text[0] in "[{" or text.startswith("- ") or text == "-":
        return None
    if text[0] in "\"'":
        try:
            key, end = _quoted(text, 0)
        except _Incomplete:
            return None
        rest = text[end:].lstrip(" ")
        if rest == ":" or rest.startswith(": "):
            return key, rest[1:].strip()
        return None
    for m in re.finditer(r":(?: |$)", text):
        key = text[:m.start()].rstrip()
        if key:
            return _Plain(key), text[m.end():].strip()
    return None


class _Plain(str):
    """A key or value written plain: resolved to its type where it is used."""


def _quoted(text, i):
    """The quoted scalar starting at text[i]: (value, index after its closing quote)."""
    q = text[i]
    out, i = [], i + 1
    while i < len(text):
        c = text[i]
        if q == "'":
            if c == "'":
                if text[i + 1:i + 2] == "'":
                    out.append("'")
                    i += 2
                    continue
                return "".join(out), i + 1
            out.append(c)
        elif c == '"':
            return "".join(out), i + 1
        elif c == "\\":
            e = text[i + 1:i + 2]
            if e == "":
                raise _Incomplete()
            if e in _HEX:
                digits = text[i + 2:i + 2 + _HEX[e]]
                if len(digits) != _HEX[e] or not re.fullmatch(r"[0-9a-fA-F]+", digits):
                    raise YAMLError(f"bad escape \\{e}{digits} in a double-quoted scalar")
                out.append(chr(int(digits, 16)))
                i += 2 + _HEX[e]
                continue
            if e not in _ESCAPES:
                raise YAMLError(f"unknown escape \\{e} in a double-quoted scalar")
            out.append(_ESCAPES[e])
            i += 2
            continue
        else:
            out.append(c)
        i += 1
    raise _Incomplete()


def _fold_quoted(lines):
    """A quoted scalar's lines joined as YAML folds them: a line break is a space, an empty line a
    newline, a double-quoted line ending in a backslash joins the next without one."""
    out = lines[0].rstrip(" \t")
    blank = 0
    for ln in lines[1:]:
        s = ln.strip(" \t")
        if not s:
            blank += 1
            continue
        if out.endswith("\\") and not out.endswith("\\\\"):
            out = out[:-1] + s
        else:
            out += ("\n" * blank if blank else " ") + s
        blank = 0
    return out + ("\n" * blank if blank else "")


class _Flow:
    """A flow collection, `[a, b]` or `{k: v}`, over one string."""

    def __init__(self, text):
        self.t, self.i = text, 0

    def ws(self):
        while self.i < len(self.t) and self.t[self.i] in " \t\n":
            self.i += 1
        if self.i >= len(self.t):
            raise _Incomplete()

    def node(self):
        self.ws()
        c = self.t[self.i]
        if c == "[":
            self.i += 1
            out = []
            while True:
                self.ws()
                if self.t[self.i] == "]":
                    self.i += 1
                    return out
                out.append(self.node())
                if self.sep("]"):
                    return out
        if c == "{":
            self.i += 1
            out = {}
            while True:
                self.ws()
                if self.t[self.i] == "}":
                    self.i += 1
                    return out
                key = self.node()
                self.ws()
                value = None
                if self.t[self.i] == ":":
                    self.i += 1
                    self.ws()
                    value = None if self.t[self.i] in ",}" else self.node()
                out[key] = value
                if self.sep("}"):
                    return out
        if c in "\"'":
            value, self.i = _quoted(self.t, self.i)
            return value
        if c in "&*!|>%@`":
            raise YAMLError(f"unsupported {c!r} in a flow collection")
        m = re.compile(r"(?:[^,\[\]{}:\s]|:(?=[^\s,\[\]{}])|[ \t]+(?=[^\s,\[\]{}:]))*").match(self.t, self.i)
        self.i = m.end()
        return resolve(m.group(0))

    def sep(self, close):
        self.ws()
        c = self.t[self.i]
        self.i += 1
        if c == close:
            return True
        if c != ",":
            raise YAMLError(f"expected ',' or '{close}' in a flow collection, found {c!r}")
        return False


class _Parser:
    def __init__(self, text):
        self.raw = text.split("\n")
        self.i = 0
        self.rewritten = {}  # line index -> _Line: the mapping or sequence after a compact "- "

    def line(self, consume=False):
        """The next line with content (blank and comment lines skipped), or None at the document's end."""
        while self.i < len(self.raw):
            if self.i in self.rewritten:
                return self.rewritten[self.i]
            raw = self.raw[self.i].rstrip("\r")
            if raw.startswith("---") and raw[3:4] in ("", " ", "\t") or raw.startswith("...") and raw[3:4] in ("", " "):
                return None
            text = raw.lstrip(" ")
            if text.startswith("\t"):
                raise YAMLError(f"line {self.i + 1}: a tab in the indentation")
            stripped = _strip_comment(text)
            if stripped:
                return _Line(len(raw) - len(text), stripped, self.i + 1)
            self.i += 1
        return None

    def advance(self):
        self.rewritten.pop(self.i, None)
        self.i += 1

    def fail(self, ln, why):
        raise YAMLError(f"line {ln.no}: {why}")

    def block(self, ln):
        if ln.text == "-" or ln.text.startswith("- "):
            return self.sequence(ln.indent)
        if _split_key(ln.text) is not None:
            return self.mapping(ln.indent)
        self.advance()
        return self.inline(ln.text, ln.indent - 1, ln.no)

    def child(self, parent_indent, key_of_mapping):
        ln = self.line()
        if ln is None or ln.indent < parent_indent:
            return None
        if ln.indent > parent_indent:
            return self.block(ln)
        if key_of_mapping and (ln.text == "-" or ln.text.startswith("- ")):
            return self.sequence(ln.indent)  # kubectl's and PyYAML's style: the items at the key's indentation
        return None

    def entry(self, indent, what):
        """The next line of the block whose entries start at indent, or None where the block ends."""
        ln = self.line()
        if ln is None or ln.indent < indent:
            return None
        if ln.indent > indent:
            self.fail(ln, f"indented more than the {what} above it ({indent} spaces)")
        return ln

    def mapping(self, indent):
        out = {}
        while True:
            ln = self.entry(indent, "mapping's keys")
            if ln is None:
                return out
            kv = _split_key(ln.text)
            if kv is None:
                self.fail(ln, "expected 'key: value' in a mapping" + (" (a sequence item here?)" if ln.text.startswith("-") else ""))
            key, rest = kv
            if isinstance(key, _Plain):
                if key[:1] in "&*!?|>%@`":
                    self.fail(ln, f"unsupported key {key!r} (anchors, aliases, tags and complex keys are not read)")
                key = resolve(str(key))
            self.advance()
            out[key] = self.value(rest, indent, ln.no, True)

    def sequence(self, indent):
        out = []
        while True:
            ln = self.entry(indent, "sequence's items")
            if ln is None or not (ln.text == "-" or ln.text.startswith("- ")):
                return out  # (not an item: the next key of the mapping this sequence is the value of)  # the next key of the mapping this sequence is the value of
            after = ln.text[1:]
            rest = after.lstrip(" ")
            if rest and (rest == "-" or rest.startswith("- ") or _split_key(rest) is not None):
                # "- key: value": a mapping (or "- - x" a sequence) whose first line starts after the dash
                self.rewritten[self.i] = _Line(indent + 1 + len(after) - len(rest), rest, ln.no)
                out.append(self.block(self.rewritten[self.i]))
                continue
            self.advance()
            out.append(self.value(rest, indent, ln.no, False))

    def value(self, rest, indent, no, key_of_mapping):
        if rest == "":
            return self.child(indent, key_of_mapping)
        if rest[0] in "&*!":
            raise YAMLError(f"line {no}: unsupported {rest.split()[0]!r} (anchors, aliases and tags are not read)")
        if rest[0] in "|>":
            return self.block_scalar(rest, indent, no)
        return self.inline(rest, indent, no)

    def more(self, indent):
        """The next raw line's text, when it goes on a value begun above (indented more than indent)."""
        ln = self.line()
        if ln is None or ln.indent <= indent:
            return None
        self.advance()
        return ln

    def inline(self, text, indent, no):
        if text[0] in "[{":
            while True:
                try:
                    f = _Flow(text)
                    value = f.node()
                except _Incomplete:
                    ln = self.more(indent)
                    if ln is None:
                        raise YAMLError(f"line {no}: the flow collection is not closed")
                    text += " " + ln.text
                    continue
                except YAMLError as e:
                    raise YAMLError(f"line {no}: {e}")
                if text[f.i:].strip():
                    raise YAMLError(f"line {no}: unexpected {text[f.i:].strip()!r} after the flow collection")
                return value
        if text[0] in "\"'":
            lines = [text]
            while True:
                try:
                    value, end = _quoted(_fold_quoted(lines), 0)
                    break
                except _Incomplete:
                    # read raw: a # inside the quotes is not a comment
                    if self.i >= len(self.raw):
                        raise YAMLError(f"line {no}: the quoted scalar is not closed")
                    lines.append(self.raw[self.i].rstrip("\r"))
                    self.advance()
                except YAMLError as e:
                    raise YAMLError(f"line {no}: {e}")
            tail = _fold_quoted(lines)[end:].strip()
            if tail and not tail.startswith("#"):
                raise YAMLError(f"line {no}: unexpected {tail!r} after the quoted scalar")
            return value
        parts = [text]
        while True:  # a plain scalar over several lines, folded with spaces
            ln = self.more(indent)
            if ln is None:
                break
            if _split_key(ln.text) is not None:
                self.fail(ln, "a mapping entry where a scalar goes on (is its indentation right?)")
            parts.append(ln.text)
        return resolve(" ".join(parts))

    def block_scalar(self, header, indent, no):
        m = re.fullmatch(r"([|>])([-+]?)([1-9]?)([-+]?)\s*(#.*)?", header)
        if not m or (m.group(2) and m.group(4)):
            raise YAMLError(f"line {no}: bad block scalar header {header!r}")
        style, chomp = m.group(1), m.group(2) or m.group(4)
        lines = []
        while self.i < len(self.raw):
            raw = self.raw[self.i].rstrip("\r")
            if raw.startswith("---") or raw.startswith("..."):
                break
            if raw.strip() and len(raw) - len(raw.lstrip(" ")) <= indent:
                break
            lines.append(raw)
            self.advance()
        content = [x for x in lines if x.strip()]
        ind = indent + int(m.group(3)) if m.group(3) else (min(len(x) - len(x.lstrip(" ")) for x in content) if content else 0)
        body = [x[ind:] if x.strip() else "" for x in lines]
        while body and body[-1] == "" and chomp != "+":
            body.pop()
        trailing = len(lines) - len(body) if chomp == "+" else 0
        if style == "|":
            text = "\n".join(body)
        else:
            text = ""
            for k, x in enumerate(body):
                if k == 0:
                    text = x
                elif x == "":
                    text += "\n"  # an empty line is a line break; the break before it folds away
                elif body[k - 1] == "":
                    text += x
                elif x[:1] in " \t" or body[k - 1][:1] in " \t":
                    text += "\n" + x
                else:
                    text += " " + x
        if not body:
            return "" if chomp != "+" else "\n" * len(lines)
        if chomp == "-":
            return text
        return text + "\n" + ("\n" * trailing if chomp == "+" else "")

    def documents(self):
        docs = []
        while True:
            while self.i < len(self.raw):  # between documents: blank lines, comments, directives
                raw = self.raw[self.i].rstrip("\r")
                if raw.strip() and not raw.lstrip().startswith("#") and not raw.startswith("%"):
                    break
                self.i += 1
            if self.i >= len(self.raw):
                return docs
            explicit = self.raw[self.i].startswith("---")
            if explicit:
                rest = _strip_comment(self.raw[self.i][3:].strip())
                if rest:
                    self.raw[self.i] = " " + rest  # "--- value": the document starts on the marker's line
                else:
                    self.i += 1
            ln = self.line()
            docs.append(None if ln is None else self.block(ln))
            ln = self.line()
            if ln is not None:
                self.fail(ln, "unexpected content after the document (is its indentation right?)")
            if self.i < len(self.raw) and self.raw[self.i].startswith("..."):
                self.i += 1


def load_all(text):
    """Every document of text, in order (an empty document is None)."""
    if hasattr(text, "read"):
        text = text.read()
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if text.startswith("\ufeff"):
        text = text[1:]
    return _Parser(text).documents()


def load(text):
    """The one document of text (None when there is none); several are an error, as in PyYAML."""
    docs = load_all(text)
    if len(docs) > 1:
        raise YAMLError(f"expected a single document, found {len(docs)}")
    return docs[0] if docs else None


def _plain_ok(s):
    if not s or s != s.strip() or not s.isprintable() or s[0] in "?:,[]{}#&*!|>'\"%@`":
        return False
    if s[0] == "-" and (len(s) == 1 or s[1] == " " or s.startswith("---")):
        return False
    if ": " in s or " #" in s or s.endswith(":") or s.startswith("..."):
        return False
    # and what YAML 1.2 readers (Go's, yaml-cpp's users) would type otherwise: 1e5, 0o755, y
    return isinstance(resolve(s), str) and not _TIMESTAMP.match(s) and not _OTHER_TYPES.fullmatch(s)


def scalar(v):
    """v as a YAML scalar that reads back as v."""
    if v is None:
        return "null"
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return ".nan"
        if math.isinf(v):
            return ".inf" if v > 0 else "-.inf"
        r = repr(v)
        return r.replace("e", ".0e", 1) if "." not in r and "e" in r else r
    if not isinstance(v, str):
        raise YAMLError(f"cannot write a {type(v).__name__} as YAML")
    if _plain_ok(v):
        return v
    if v.isprintable():
        return "'" + v.replace("'", "''") + "'"
    return json.dumps(v, ensure_ascii=False)


def _block(v, indent):
    pad = " " * indent
    if isinstance(v, dict):
        if not v:
            return [pad + "{}"]
        out = []
        for k, x in v.items():
            key = scalar(k)
            if isinstance(x, dict) and x:
                out += [f"{pad}{key}:"] + _block(x, indent + 2)
            elif isinstance(x, (list, tuple)) and x:
                out += [f"{pad}{key}:"] + _block(x, indent)
            else:
                out.append(f"{pad}{key}: {_flat(x)}")
        return out
    if isinstance(v, (list, tuple)):
        if not v:
            return [pad + "[]"]
        out = []
        for x in v:
            if isinstance(x, (dict, list, tuple)) and x:
                inner = _block(x, indent + 2)
                out += [pad + "- " + inner[0][indent + 2:]] + inner[1:]
            else:
                out.append(f"{pad}- {_flat(x)}")
        return out
    return [pad + scalar(v)]


def _flat(v):
    if isinstance(v, dict):
        return "{}"
    if isinstance(v, (list, tuple)):
        return "[]"
    return scalar(v)


def dump(data, stream=None):
    """data (dicts, lists, strings, numbers, booleans, None) as one block-style document."""
    text = "\n".join(_block(data, 0)) + "\n"
    if stream is None:
        return text
    stream.write(text)
    return None
