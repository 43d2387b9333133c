"""Shared helpers of netprobe's shipped inventory plug-ins (Python 3 standard library only).

netprobe does not start this file (names starting with `_` are not plug-ins); the plug-ins import it from
their own directory, so copy it along with them. The protocol itself needs none of this: see README.md.
"""

import csv
import io
import json
import os
import re
import socket
import sys
import tempfile
import time

PLUGIN = os.environ.get("NETPROBE_INVENTORY") or os.path.basename(sys.argv[0]).split(".")[0]


def log(message):
    """One line on stderr: netprobe logs it as `inventory=<name> stderr: ...`."""
    print(message, file=sys.stderr, flush=True)


class PluginError(Exception):
    """A problem the plug-in cannot work around: reported on stderr, exit status 1, netprobe restarts it."""


def main(run):
    """Runs `run()` and turns every error into one clear stderr line and exit status 1."""
    try:
        run()
    except PluginError as e:
        log(f"{PLUGIN}: {e}")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


def emit(targets):
    """Writes one document (the FULL target list) followed by the `---` line, and flushes."""
    sys.stdout.write(json.dumps({"targets": targets}, sort_keys=True) + "\n---\n")
    sys.stdout.flush()


def write_atomically(path, text):
    """Replaces `path` with `text` so that readers never see half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def short_hostname():
    return socket.gethostname().split(".")[0]


# --- configuration files -------------------------------------------------------------------------------


def load_config(path, required=()):
    """The plug-in's configuration: JSON, or YAML (PyYAML when installed, else the subset below). An absent
    path (netprobe passes none when <name>.yaml does not exist) is an empty configuration."""
    if not path:
        config = {}
    else:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise PluginError(f"cannot read the configuration {path}: {e.strerror}")
        try:
            config = load_yaml(text)
        except ValueError as e:
            raise PluginError(f"{path}: {e}")
        if config is None:
            config = {}
        if not isinstance(config, dict):
            raise PluginError(f"{path}: expected a mapping of settings")
    missing = [k for k in required if config.get(k) in (None, "")]
    if missing:
        raise PluginError(f"{path or 'no configuration file'}: missing setting(s): {', '.join(missing)}")
    return config


def load_yaml(text):
    """JSON or YAML text -> Python value. Uses PyYAML when it is installed; otherwise reads the YAML subset
    configuration files use: block mappings and sequences, flow [lists] and {maps}, comments, quoted and
    plain scalars (ints, floats, true/false/yes/no/on/off, null/~)."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        import yaml  # noqa: optional

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"not valid YAML: {e}")
    except ImportError:
        return _MiniYaml(text).parse()


_INT = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$")
_FLOAT = re.compile(r"^[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+]?[0-9]+)?$|^[-+]?[0-9]+[eE][-+]?[0-9]+$")


def _scalar(text):
    s = text.strip()
    if s == "" or s in ("~", "null", "Null", "NULL"):
        return None
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        body = s[1:-1]
        return body.replace("''", "'") if s[0] == "'" else json.loads(s)
    low = s.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if _INT.match(s):
        return int(s.replace("_", ""))
    if _FLOAT.match(s) and any(c.isdigit() for c in s):
        return float(s.replace("_", ""))
    return s


def _strip_comment(line):
    quote = None
    for i, c in enumerate(line):
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


class _MiniYaml:
    def __init__(self, text):
        self.lines = []
        for number, raw in enumerate(text.splitlines(), 1):
            if raw.strip() in ("---", "...") or raw.lstrip().startswith("%"):
                continue
            line = _strip_comment(raw)
            if line.strip():
                if "\t" in line[: len(line) - len(line.lstrip())]:
                    raise ValueError(f"line {number}: tabs are not allowed for indentation")
                self.lines.append((len(line) - len(line.lstrip(" ")), line.strip(), number))
        self.i = 0

    def parse(self):
        if not self.lines:
            return None
        value = self.block(self.lines[0][0])
        if self.i < len(self.lines):
            raise ValueError(f"line {self.lines[self.i][2]}: unexpected indentation")
        return value

    def block(self, indent):
        _, content, _ = self.lines[self.i]
        if content == "-" or content.startswith("- "):
            return self.sequence(indent)
        return self.mapping(indent)

    def sequence(self, indent):
        out = []
        while self.i < len(self.lines):
            ind, content, number = self.lines[self.i]
            if ind < indent:
                break
            if ind > indent or not (content == "-" or content.startswith("- ")):
                raise ValueError(f"line {number}: expected a `- item` at column {indent + 1}")
            rest = content[1:].strip()
            if not rest:
                self.i += 1
                out.append(self.block(self.lines[self.i][0]) if self.i < len(self.lines) and self.lines[self.i][0] > indent else None)
            elif self._is_key(rest):
                # `- key: value` starts a mapping whose keys sit at the column after "- ".
                self.lines[self.i] = (indent + 2 + (len(content[1:]) - len(content[1:].lstrip())) - 1, rest, number)
                out.append(self.mapping(self.lines[self.i][0]))
            else:
                self.i += 1
                out.append(self.flow_or_scalar(rest, number))
        return out

    def mapping(self, indent):
        out = {}
        while self.i < len(self.lines):
            ind, content, number = self.lines[self.i]
            if ind < indent:
                break
            if ind > indent:
                raise ValueError(f"line {number}: unexpected indentation")
            if not self._is_key(content):
                raise ValueError(f"line {number}: expected `key: value`, got {content!r}")
            key, _, rest = self._split_key(content)
            self.i += 1
            rest = rest.strip()
            if rest:
                out[key] = self.flow_or_scalar(rest, number)
            elif self.i < len(self.lines) and (
                self.lines[self.i][0] > indent
                or (self.lines[self.i][0] == indent and self.lines[self.i][1].startswith("- "))
            ):
                out[key] = self.block(self.lines[self.i][0])
            else:
                out[key] = None
        return out

    @staticmethod
    def _split_key(content):
        if content[0] in "'\"":
            end = content.index(content[0], 1)
            return _scalar(content[: end + 1]), ":", content[end + 2 :]
        m = re.match(r"^([^:]+?):(\s+|$)(.*)$", content)
        return m.group(1).strip(), ":", m.group(3)

    @staticmethod
    def _is_key(content):
        if content[0] in "[{":
            return False
        if content[0] in "'\"":
            end = content.find(content[0], 1)
            return end > 0 and content[end + 1 : end + 2] == ":"
        return re.match(r"^[^:]+?:(\s|$)", content) is not None

    def flow_or_scalar(self, text, number):
        if text[0] in "[{":
            value, pos = self._flow(text, 0, number)
            if text[pos:].strip():
                raise ValueError(f"line {number}: unexpected {text[pos:].strip()!r} after a flow collection")
            return value
        if text[0] in "|>":
            raise ValueError(f"line {number}: block scalars (| and >) are not supported without PyYAML")
        return _scalar(text)

    def _flow(self, s, pos, number):
        closing = "]" if s[pos] == "[" else "}"
        is_map = s[pos] == "{"
        out = {} if is_map else []
        pos += 1
        while True:
            while pos < len(s) and s[pos] in " ,":
                pos += 1
            if pos >= len(s):
                raise ValueError(f"line {number}: unterminated {'{' if is_map else '['}")
            if s[pos] == closing:
                return out, pos + 1
            if s[pos] in "[{":
                item, pos = self._flow(s, pos, number)
            else:
                start, quote = pos, None
                while pos < len(s):
                    c = s[pos]
                    if quote:
                        quote = None if c == quote else quote
                    elif c in "'\"":
                        quote = c
                    elif c in ",]}" or (is_map and c == ":" and (pos + 1 == len(s) or s[pos + 1] in " ,}")):
                        break
                    pos += 1
                item = s[start:pos].strip()
            if is_map:
                if pos >= len(s) or s[pos] != ":":
                    raise ValueError(f"line {number}: expected `key: value` in a flow mapping")
                pos += 1
                while pos < len(s) and s[pos] == " ":
                    pos += 1
                if s[pos] in "[{":
                    value, pos = self._flow(s, pos, number)
                else:
                    start = pos
                    while pos < len(s) and s[pos] not in ",}":
                        pos += 1
                    value = _scalar(s[start:pos])
                out[_scalar(item) if isinstance(item, str) else item] = value
            else:
                out.append(_scalar(item) if isinstance(item, str) else item)


# --- target fields ---------------------------------------------------------------------------------------

# Target keys a plug-in may set (schema/inventory.schema.json), with the conversion of a text value (CSV).
TARGET_KEYS = {
    "hostname": str,
    "destination": str,
    "type": str,
    "dst_port": int,
    "groups": lambda v: [g.strip() for g in v.split(";") if g.strip()],
    "address_family": str,
    "nb_packets": int,
    "timeout": float,
    "ip_payload_size": int,
    "dont_fragment": lambda v: _bool(v),
    "is_subnet": lambda v: _bool(v),
    "state": str,
    "alert_level": str,
    "dns_update_interval": int,
    "lifetime": lambda v: int(v) if v.isdigit() else v,
    "creation_date": str,
}


def _bool(text):
    low = text.strip().lower()
    if low in ("true", "yes", "on", "1"):
        return True
    if low in ("false", "no", "off", "0"):
        return False
    raise ValueError(f"{text!r} is not a boolean")


def target_fields(settings, where):
    """The `target:` settings block (keys added to every target), checked against the protocol's keys."""
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise PluginError(f"{where}: expected a mapping of target keys")
    allowed = set(TARGET_KEYS) | {"threshold"}
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise PluginError(f"{where}: unknown target key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")
    return dict(settings)


def strip_prefix_length(address):
    """NetBox's "10.0.0.1/32" -> "10.0.0.1"."""
    return address.split("/")[0] if address else address


# --- lists of devices (fullmesh) -------------------------------------------------------------------------


def read_records(path):
    """A list of devices as dicts: CSV with a header row, a JSON/YAML list of mappings (or a mapping with a
    list under `devices` or `tors`), or a netprobe inventory document (its `targets`)."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except OSError as e:
        raise PluginError(f"cannot read {path}: {e.strerror}")
    if path.lower().endswith(".csv"):
        rows = list(csv.DictReader(io.StringIO(text)))
        return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in rows
                if not next(iter(row.values()), "").lstrip().startswith("#")]
    try:
        data = load_yaml(text)
    except ValueError as e:
        raise PluginError(f"{path}: {e}")
    if isinstance(data, dict):
        for key in ("targets", "devices", "tors"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise PluginError(f"{path}: expected a list of devices (mappings), or a mapping with a `devices`, `tors` or "
                          "`targets` list")
    return data


class FileWatcher:
    """Tells when a file changed (mtime, size or inode), polling: works on every filesystem."""

    def __init__(self, path):
        self.path = path
        self.last = None

    def changed(self):
        try:
            st = os.stat(self.path)
        except OSError as e:
            raise PluginError(f"cannot read {self.path}: {e.strerror}")
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if key == self.last:
            return False
        self.last = key
        return True


def run_loop(produce, refresh_s, once, watcher=None):
    """Emits produce()'s targets now, then whenever they change (checked every refresh_s seconds, or when the
    watched file changes). With `once`, exits after the first document (netprobe re-runs one-shot plug-ins)."""
    last = None
    while True:
        if watcher is None or watcher.changed():
            targets = produce()
            if targets != last:
                emit(targets)
                last = targets
        if once:
            return
        time.sleep(refresh_s)
