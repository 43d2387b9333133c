"""Network-namespace lab for integration tests (root only).

A Lab creates namespaces joined by veth pairs, with names unique to this test process, and removes every
one of them on exit, also when the test fails or is interrupted (context manager + harness.py cleanup).
Packets only ever travel between namespaces the test created.
"""
import json
import os
import signal
import subprocess
import uuid

import harness


def sh(*args, check=True, ns=None, capture=False, timeout=30):
    """Runs a command (optionally inside namespace `ns`); raises with its stderr on failure."""
    cmd = list(args)
    if ns:
        cmd = ["ip", "netns", "exec", ns] + cmd
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
    return p.stdout if capture else p


_live_labs = []


def _cleanup_all():
    for lab in list(_live_labs):
        lab.close()


# Namespaces are removed by harness.py's one cleanup path: at the end of the test, on exit and on
# SIGTERM/SIGINT (a ctest timeout), after the test's processes are stopped.
harness.register_cleanup(_cleanup_all)


# Every lab records its owner's pid here, so that a lab whose test was SIGKILLed (no cleanup can run then:
# a killed CI job, a killed session) is removed by the next lab that starts, instead of lingering.
OWNERS_DIR = "/run/netprobe-test-labs"


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_orphans():
    """Deletes the namespaces of labs whose owner process is gone (np<tag>*, tag recorded in OWNERS_DIR),
    and the namespaces named like a lab that have no owner record at all (labs from before the records)."""
    try:
        names = sh("ip", "netns", "list", check=False, capture=True) or ""
    except Exception:
        return
    live_tags = set()
    if os.path.isdir(OWNERS_DIR):
        for tag in os.listdir(OWNERS_DIR):
            try:
                with open(os.path.join(OWNERS_DIR, tag)) as f:
                    pid = int(f.read().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and _pid_alive(pid):
                live_tags.add(tag)
            else:
                try:
                    os.unlink(os.path.join(OWNERS_DIR, tag))
                except OSError:
                    pass
    for line in names.splitlines():
        name = line.split()[0] if line.split() else ""
        # np + 6 hex digits + a short name: only what Lab.ns() creates.
        if len(name) < 9 or not name.startswith("np") or not all(c in "0123456789abcdef" for c in name[2:8]):
            continue
        if name[2:8] in live_tags:
            continue
        sh("ip", "netns", "del", name, check=False)


class Lab:
    """A set of namespaces. ns(name) creates one; link(a, b, ...) joins two with a veth pair."""

    def __init__(self):
        sweep_orphans()
        self.tag = uuid.uuid4().hex[:6]
        os.makedirs(OWNERS_DIR, exist_ok=True)
        with open(os.path.join(OWNERS_DIR, self.tag), "w") as f:
            f.write(str(os.getpid()))
        self.namespaces = []
        self.procs = []
        self.links = 0
        _live_labs.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def ns(self, short):
        name = f"np{self.tag}{short}"
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "link", "set", "lo", "up", ns=name)
        # Lab targets must answer every probe: no ICMP rate limiting (docs/testing.md#lab-icmp-rate-limits).
        for key, value in (("net.ipv4.icmp_ratelimit", "0"), ("net.ipv4.icmp_ratemask", "0"),
                           ("net.ipv4.icmp_msgs_per_sec", "10000000"), ("net.ipv4.icmp_msgs_burst", "10000000"),
                           ("net.ipv6.icmp.ratelimit", "0"),
                           # No duplicate address detection: addresses (link-local ones too, which
                           # neighbour discovery needs) are usable at once, not after a second.
                           ("net.ipv6.conf.all.accept_dad", "0"), ("net.ipv6.conf.default.accept_dad", "0")):
            sh("sysctl", "-qw", f"{key}={value}", ns=name, check=False)
        return name

    def link(self, a, b, a_addrs, b_addrs):
        """veth between namespaces a and b; *_addrs are CIDR strings (v4 and/or v6)."""
        # Interface names: 15 characters at most, unique per lab (tag) and per link (counter).
        self.links += 1
        ia, ib = f"v{self.tag}{self.links}a", f"v{self.tag}{self.links}b"
        sh("ip", "link", "add", ia, "netns", a, "type", "veth", "peer", "name", ib, "netns", b)
        for ns, ifname, addrs in ((a, ia, a_addrs), (b, ib, b_addrs)):
            for addr in addrs:
                # nodad: IPv6 addresses are usable at once instead of after duplicate detection.
                extra = ["nodad"] if ":" in addr else []
                sh("ip", "addr", "add", addr, "dev", ifname, *extra, ns=ns)
            sh("ip", "link", "set", ifname, "up", ns=ns)
        # Static neighbour entries both ways: probing starts at once, without waiting for ARP/NDP (whose
        # queue of unresolved packets is short and would turn the first probes into false loss).
        mac = {}
        for ns, ifname in ((a, ia), (b, ib)):
            mac[ns] = json.loads(sh("ip", "-j", "link", "show", "dev", ifname, ns=ns, capture=True))[0]["address"]
        for ns, ifname, peer, peer_addrs in ((a, ia, b, b_addrs), (b, ib, a, a_addrs)):
            for addr in peer_addrs:
                sh("ip", "neigh", "replace", addr.split("/")[0], "lladdr", mac[peer], "dev", ifname,
                   "nud", "permanent", ns=ns)
        return ia, ib

    def popen(self, ns, args, **kw):
        p = subprocess.Popen(["ip", "netns", "exec", ns] + list(args), **kw)
        self.procs.append(p)
        return p

    def close(self):
        for p in self.procs:
            harness.stop_process(p, grace_s=3)
        self.procs = []
        for name in reversed(self.namespaces):
            # Kill anything still running inside, then delete the namespace (removes its veths).
            pids = sh("ip", "netns", "pids", name, check=False, capture=True) or ""
            for pid in pids.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            sh("ip", "netns", "del", name, check=False)
        self.namespaces = []
        try:
            os.unlink(os.path.join(OWNERS_DIR, self.tag))
        except OSError:
            pass
        if self in _live_labs:
            _live_labs.remove(self)
