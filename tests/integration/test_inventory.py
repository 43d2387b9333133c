#!/usr/bin/env python3
"""Dynamic inventories end to end (issue 5): the real netprobe runs real plug-in processes from
global.inventory_dir and probes their targets (ICMPping to 127.0.0.x, next to a static target).

  changer    emits the content of changer.json whenever the test rewrites it: a target added at run time
             is probed, a changed one follows its new definition, a removed one loses every series
  crasher    writes a document then exits 1, every run: its target keeps being probed while
             app_inventory_failures_total grows (restarts with backoff)
  garbage    writes a document then garbage (killed), and garbage only on later runs: its last good target
             keeps being probed, the failures are counted
  disabled   listed in global.disable_dynamic_inventories: never started, nothing of it in /metrics
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness  # noqa: E402

TIMEOUT_S = 40

CHANGER = """#!%(python)s
import json, os, sys, time
last = None
while True:
    try:
        st = os.stat("changer.json")
        key = (st.st_mtime_ns, st.st_size)
        if key != last:
            last = key
            with open("changer.json") as f:
                targets = json.load(f)
            print(json.dumps({"targets": targets}), "---", sep="\\n", flush=True)
    except FileNotFoundError:
        pass
    time.sleep(0.1)
"""

CRASHER = """#!/bin/sh
printf '%s\\n---\\n' '{"targets": [{"hostname": "c", "destination": "127.0.0.4", "type": "ICMPping", "groups": ["it_group"], "timeout": 0.3}]}'
echo "crasher: giving up" >&2
exit 1
"""

GARBAGE = """#!/bin/sh
if [ -s garbage.ran ]; then echo 'Traceback (most recent call last):'; echo '---'; exec sleep 600; fi
echo ran > garbage.ran
printf '%s\\n---\\n' '{"targets": [{"hostname": "g", "destination": "127.0.0.5", "type": "ICMPping", "groups": ["it_group"], "timeout": 0.3}]}'
printf 'not { a document\\n---\\n'
exec sleep 600
"""

DISABLED = """#!/bin/sh
printf '%s\\n---\\n' '{"targets": [{"hostname": "x", "destination": "127.0.0.6", "type": "ICMPping", "groups": ["it_group"]}]}'
exec sleep 600
"""


def target(host, dest, **extra):
    t = {"hostname": host, "destination": dest, "type": "ICMPping", "groups": ["it_group"], "timeout": 0.3}
    t.update(extra)
    return t


def sent(samples, name):
    return harness.value(samples, "icmp_sent_total", destination=name, group="it_group")


def has_series(samples, **labels):
    """Whether any sample (of any family) carries all these labels."""
    return any(all(dict(ls).get(k) == v for k, v in labels.items()) for (_, ls) in samples)


def test():
    harness.require_root("netprobe opens raw sockets to probe 127.0.0.x")
    inv = harness.tmpdir("netprobe-inv-")
    # Plug-ins run as netprobe's unprivileged user: an interpreter it can execute (not one under /root),
    # and a pre-created state file it can write (the directory is root's).
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    for name, text in [("changer", CHANGER % {"python": python}), ("crasher", CRASHER),
                       ("garbage", GARBAGE), ("disabled", DISABLED)]:
        path = os.path.join(inv, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)
    state = os.path.join(inv, "garbage.ran")
    open(state, "w").close()
    os.chmod(state, 0o666)

    def write_changer(targets):
        tmp = os.path.join(inv, ".changer.tmp")
        with open(tmp, "w") as f:
            json.dump(targets, f)
        os.replace(tmp, os.path.join(inv, "changer.json"))

    write_changer([target("a", "127.0.0.2", state="in production", threshold={"loss": 0.1}, alert_level="paging")])
    config = harness.base_config(
        port=harness.free_port(), probe_name="it_inv",
        targets={"loopback": {"type": "ICMPping", "destination": "127.0.0.1", "timeout": 0.3}},
        inventory_dir=inv, disable_dynamic_inventories=["disabled"])

    with harness.Netprobe(config) as np:
        # Every enabled plug-in's target is probed next to the static one.
        s = np.wait_for_metrics(lambda s: all((sent(s, n) or 0) > 0 for n in
                                              ("loopback", "changer_a", "crasher_c", "garbage_g")),
                                TIMEOUT_S, "static and dynamic targets probed")
        assert harness.value(s, "app_inventory_targets", inventory="changer") == 1
        assert harness.value(s, "threshold", destination="changer_a", type="loss") == 0.1
        assert harness.select(s, "icmp_sent_total", destination="changer_a", state="in production")

        # Added and changed at run time, without a restart.
        write_changer([target("a", "127.0.0.2", state="validation"), target("b", "127.0.0.3")])
        s = np.wait_for_metrics(lambda s: (sent(s, "changer_b") or 0) > 0 and
                                harness.select(s, "icmp_sent_total", destination="changer_a", state="validation"),
                                TIMEOUT_S, "changer_b added, changer_a relabelled")
        assert not harness.select(s, "icmp_sent_total", destination="changer_a", state="in production"), \
            "the old state's series of a changed target must go"
        assert harness.value(s, "app_inventory_targets", inventory="changer") == 2

        # Removed: every series of the target goes (measurements and threshold alike).
        write_changer([target("b", "127.0.0.3")])
        s = np.wait_for_metrics(lambda s: not has_series(s, destination="changer_a"), TIMEOUT_S,
                                "every series of changer_a removed")
        assert harness.value(s, "app_inventory_targets", inventory="changer") == 1

        # The crashing and the garbage-printing plug-ins: failures counted, last good targets still probed.
        before = {n: sent(s, n) for n in ("crasher_c", "garbage_g", "changer_b", "loopback")}
        s = np.wait_for_metrics(
            lambda s: (harness.value(s, "app_inventory_failures_total", inventory="crasher") or 0) >= 3 and
            (harness.value(s, "app_inventory_failures_total", inventory="garbage") or 0) >= 2 and
            all(sent(s, n) > before[n] for n in before),
            TIMEOUT_S, "crasher and garbage failing repeatedly while their targets keep being probed")
        assert harness.value(s, "app_inventory_targets", inventory="crasher") == 1
        assert harness.value(s, "app_inventory_targets", inventory="garbage") == 1
        assert harness.value(s, "app_inventory_failures_total", inventory="changer") == 0

        # Disabled: never started.
        assert not has_series(s, inventory="disabled")
        assert not has_series(s, destination="disabled_x")
        log = np.log()
        assert "inventory=disabled disabled by global.disable_dynamic_inventories" in log, log[-3000:]
        assert "crasher: giving up" in log, "a plug-in's stderr is logged"
        assert "wrote an unreadable document" in log


if __name__ == "__main__":
    harness.main(test)
