#!/usr/bin/env python3
"""`netprobe check` and target tags end to end (issue 13): the real build/netprobe in a prober namespace checks a
target namespace over a veth pair. Targets: a listening TCP port (OK), a closed UDP port (OK: the ICMP port
unreachable answers it), a TCP port whose SYNs nftables drops in the target (FAILED, 100 % loss). Scenarios
(argv[1]):

  check     exit codes 0 / 2 / 3 (bad configuration, both tag options, bad --count), 77 without CAP_NET_RAW, tag
            selection through the CLI, the text output (failures first, a summary), the JSON document with RTTs
            masked, -U, the dynamic inventory's targets (and --no-inventory, and a failing plug-in: 3)
  run_tags  `netprobe run --exclude-tags broken`: the excluded configuration and plug-in targets have no
            series, netprobe_target_info carries the others' tags; a reload that tags a target "broken" removes it
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import harness  # noqa: E402
import netns  # noqa: E402

P4, T4 = "198.18.0.1", "198.18.0.2"
OPEN_PORT, DROPPED_PORT, UDP_PORT = 8080, 8082, 33434

LISTENER = """
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("0.0.0.0", %d)); s.listen(64)
time.sleep(600)
""" % OPEN_PORT

RULES = f"""table inet lab {{
  chain in {{ type filter hook input priority 0;
    tcp dport {DROPPED_PORT} drop
  }}
}}
"""


TAGGER = f"""#!/bin/sh
printf '%s\\n---\\n' '{{"targets": [{{"hostname": "keep", "destination": "{T4}", "type": "ICMPping", "groups": ["lab"], "timeout": 0.5, "tags": ["infra"]}}, {{"hostname": "drop", "destination": "{T4}", "type": "ICMPping", "groups": ["lab"], "timeout": 0.5, "tags": ["broken"]}}]}}'
exec sleep 600
"""


def config_text(port=0, inventory_dir=None, web_tags="[web, front]"):
    inventory = f"  inventory_dir: {inventory_dir}\n" if inventory_dir else ""
    return f"""global:
  probe_name: lab
  interval: 2
  nb_proc: 1
  logging_level: INFO
  prometheus_port: {port}
  prometheus_address: 127.0.0.1
  dns_update_interval: 300
{inventory}groups:
  lab:
    src_port_a: 65000
    src_port_z: 65003
targets:
  web:
    type: TCPsyn
    destination: {T4}
    dst_port: {OPEN_PORT}
    nb_packets: 4
    timeout: 0.5
    tags: {web_tags}
  dns_udp:
    type: UDPunreachable
    destination: {T4}
    dst_port: {UDP_PORT}
    nb_packets: 4
    timeout: 0.5
    tags: [infra]
  dropped:
    type: TCPsyn
    destination: {T4}
    dst_port: {DROPPED_PORT}
    nb_packets: 4
    timeout: 0.5
    tags: [web, broken]
"""


def build_lab(lab):
    p, t = lab.ns("p"), lab.ns("t")
    lab.link(p, t, [f"{P4}/24"], [f"{T4}/24"])
    lab.popen(t, ["python3", "-c", LISTENER])
    harness.wait_until(lambda: f":{OPEN_PORT} " in netns.sh("ss", "-ltnH", ns=t, capture=True), 10,
                       "the target's TCP listener")
    with tempfile.NamedTemporaryFile("w", suffix=".nft", delete=False) as fh:
        fh.write(RULES)
    netns.sh("nft", "-f", fh.name, ns=t)
    os.unlink(fh.name)
    return p, t


def check(ns, *args):
    return harness.netprobe_in(ns, "check", *args, timeout_s=60)


def masked(text):
    return re.sub(r"\d+\.\d\d ms", "<RTT> ms", text)


def scenario_check():
    with netns.Lab() as lab, tempfile.TemporaryDirectory() as tmp:
        p, _ = build_lab(lab)
        path = os.path.join(tmp, "lab.yaml")
        with open(path, "w") as fh:
            fh.write(config_text())
        bad = os.path.join(tmp, "bad.yaml")
        with open(bad, "w") as fh:
            fh.write(config_text().replace("type: UDPunreachable", "type: UDP"))
        expect = harness.Checks()

        # Every target: one fails, failures first, then by destination; a summary; Nagios CRITICAL.
        r = check(p, path)
        expect(r.returncode == 2, f"all targets: exit {r.returncode}, expected 2")
        expect(masked(r.stdout) == (
            f"TCPsyn {T4}:{DROPPED_PORT} FAILED 100 % loss [dropped/lab]\n"
            f"UDPunreachable {T4}:{UDP_PORT} OK <RTT> ms [dns_udp/lab]\n"
            f"TCPsyn {T4}:{OPEN_PORT} OK <RTT> ms [web/lab]\n"
            "FAILED: 3 check(s), 2 OK, 1 FAILED (1 iteration(s), tags: all)\n"), "all targets: text output")

        # Tag selection through the CLI (conn-check's semantics).
        for args, code, names in [
            (["--exclude-tags", "broken"], 0, {"web", "dns_udp"}),
            (["--include-tags", "infra"], 0, {"dns_udp"}),
            (["--include-tags", "front,infra"], 0, {"web", "dns_udp"}),
            (["--include-tags", "web"], 2, {"web", "dropped"}),
            (["--include-tags", "broken"], 2, {"dropped"}),
            (["--exclude-tags", "web"], 0, {"dns_udp"}),
        ]:
            r = check(p, path, *args)
            seen = set(re.findall(r"\[(\w+)/lab\]", r.stdout))
            expect(r.returncode == code, f"{args}: exit {r.returncode}, expected {code}")
            expect(seen == names, f"{args}: targets {sorted(seen)}, expected {sorted(names)}")

        # Configuration and usage errors: UNKNOWN (3), nothing probed.
        for args in ([bad], [path, "--include-tags", "a", "--exclude-tags", "b"], [path, "--include-tags", "a b"],
                     [path, "--count", "0"], [path, "--format", "xml"], [path, "--include-tags", "nosuchtag"],
                     [os.path.join(tmp, "missing.yaml")], []):
            r = check(p, *args)
            expect(r.returncode == 3, f"{args}: exit {r.returncode}, expected 3")
            expect("OK" not in r.stdout, f"{args}: printed results")
        r = check(p, path, "--include-tags", "a", "--exclude-tags", "b")
        expect("mutually exclusive" in r.stderr, "both tag options: the message says why")

        # A name that does not resolve (the namespace has no DNS server): FAILED with the reason, the rest probed.
        ghost = os.path.join(tmp, "ghost.yaml")
        with open(ghost, "w") as fh:
            fh.write(config_text().replace(f"destination: {T4}\n    dst_port: {DROPPED_PORT}",
                                           f"destination: ghost.invalid\n    dst_port: {DROPPED_PORT}"))
        r = check(p, ghost)
        expect(r.returncode == 2, f"unresolved: exit {r.returncode}")
        expect(re.match(rf"TCPsyn ghost.invalid:{DROPPED_PORT} FAILED not probed: unresolved\b.*\[dropped/lab\]\n",
                        r.stdout) is not None, f"unresolved: {r.stdout!r}")
        expect(r.stdout.count(" OK ") == 2, "unresolved: the other targets are probed")

        # Without CAP_NET_RAW: 77 and the three ways to grant it, nothing printed on stdout.
        os.chmod(tmp, 0o755)
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                            "--bounding-set=-all", harness.netprobe_bin(), "check", path],
                           capture_output=True, text=True, timeout=60)
        expect(r.returncode == 77 and "CAP_NET_RAW" in r.stderr and not r.stdout,
               f"unprivileged: exit {r.returncode}, stderr {r.stderr!r}")

        # JSON: one document, numbers as numbers; RTTs present for the answered targets only.
        r = check(p, path, "--format", "json", "--count", "2")
        expect(r.returncode == 2, f"json: exit {r.returncode}")
        try:
            doc = json.loads(r.stdout)
            results = {x["target"]: x for x in doc["results"]}
            for x in results.values():
                rtt = x.pop("rtt_ms")
                if x["target"] == "dropped":
                    expect(rtt is None, "json: no RTT without answer")
                else:
                    expect(all(isinstance(rtt[k], float) and 0 < rtt[k] < 1000 for k in ("min", "median", "max")),
                           f"json: RTTs of {x['target']}: {rtt}")
            expect(doc["iterations"] == 2 and doc["exit_code"] == 2 and doc["selection"] == "all",
                   f"json: header {doc}")
            expect(doc["summary"] == {"checks": 3, "ok": 2, "failed": 1}, f"json: summary {doc['summary']}")
            expect([x["target"] for x in doc["results"]] == ["dropped", "dns_udp", "web"], "json: order")
            expect(results["dropped"] == {"target": "dropped", "group": "lab", "type": "TCPsyn", "destination": T4,
                                          "port": DROPPED_PORT, "tags": ["broken", "web"], "status": "FAILED",
                                          "sent": 8, "lost": 8, "loss_ratio": 1.0, "closed": 0, "unexpected": 0},
                   f"json: dropped {results['dropped']}")
            expect(results["web"] == {"target": "web", "group": "lab", "type": "TCPsyn", "destination": T4,
                                      "port": OPEN_PORT, "tags": ["front", "web"], "status": "OK", "sent": 8,
                                      "lost": 0, "loss_ratio": 0.0, "closed": 0, "unexpected": 0},
                   f"json: web {results['web']}")
        except (ValueError, KeyError) as e:
            expect(False, f"json: unreadable ({e!r})")

        # -U: lines as each iteration ends (plan order, numbered), then the summary over both iterations.
        r = check(p, path, "-U", "--count", "2")
        lines = masked(r.stdout).splitlines()
        expect(r.returncode == 2, f"-U: exit {r.returncode}")
        expect(sorted(lines[:3]) == sorted([
            f"#1 TCPsyn {T4}:{DROPPED_PORT} FAILED 100 % loss [dropped/lab]",
            f"#1 UDPunreachable {T4}:{UDP_PORT} OK <RTT> ms [dns_udp/lab]",
            f"#1 TCPsyn {T4}:{OPEN_PORT} OK <RTT> ms [web/lab]"]), f"-U: first iteration {lines[:3]}")
        expect(len(lines) == 7 and all(l.startswith("#2 ") for l in lines[3:6]), f"-U: second iteration {lines}")
        expect(lines[-1:] == [ "FAILED: 3 check(s), 2 OK, 1 FAILED (2 iteration(s), tags: all)"], "-U: summary")

        # The dynamic inventory's targets are checked too (its plug-ins run once, with tags); --no-inventory
        # leaves them out; a plug-in that gives nothing makes the check UNKNOWN rather than silently smaller.
        inv = os.path.join(tmp, "inv")
        os.makedirs(os.path.join(inv, "plugins"))
        inv_path = os.path.join(inv, "lab.yaml")
        with open(inv_path, "w") as fh:
            fh.write(config_text(inventory_dir="plugins"))
        tagger = os.path.join(inv, "plugins", "tagger")
        with open(tagger, "w") as fh:
            fh.write(TAGGER)
        os.chmod(tagger, 0o755)
        r = check(p, inv_path, "--exclude-tags", "broken")
        seen = set(re.findall(r"\[(\w+)/lab\]", r.stdout))
        expect(r.returncode == 0 and seen == {"web", "dns_udp", "tagger_keep"},
               f"inventory: exit {r.returncode}, targets {sorted(seen)}")
        expect(f"ICMPping {T4} OK" in r.stdout, "inventory: the plug-in's ICMP target answered")
        r = check(p, inv_path, "--exclude-tags", "broken", "--no-inventory")
        seen = set(re.findall(r"\[(\w+)/lab\]", r.stdout))
        expect(r.returncode == 0 and seen == {"web", "dns_udp"}, f"--no-inventory: {sorted(seen)}")
        broken = os.path.join(inv, "plugins", "zbroken")
        with open(broken, "w") as fh:
            fh.write("#!/bin/sh\necho 'CMDB unreachable' >&2\nexit 1\n")
        os.chmod(broken, 0o755)
        r = check(p, inv_path, "--exclude-tags", "broken")
        expect(r.returncode == 3 and "inventory zbroken" in r.stderr and "OK" not in r.stdout,
               f"failing plug-in: exit {r.returncode}, stderr {r.stderr[-300:]!r}")

        expect.done("check: ok")


def scenario_run_tags():
    port = 9100
    with netns.Lab() as lab, tempfile.TemporaryDirectory() as tmp:
        p, _ = build_lab(lab)
        os.chmod(tmp, 0o755)  # netprobe reads its configuration and runs its plug-ins as an unprivileged user
        inv = os.path.join(tmp, "inv")
        os.mkdir(inv)
        os.chmod(inv, 0o755)
        with open(os.path.join(inv, "tagger"), "w") as fh:
            fh.write(TAGGER)
        os.chmod(os.path.join(inv, "tagger"), 0o755)
        path = os.path.join(tmp, "lab.yaml")
        with open(path, "w") as fh:
            fh.write(config_text(port, inv))
        log = open(os.path.join(tmp, "netprobe.log"), "w+")
        proc = lab.popen(p, [harness.netprobe_bin(), "run", path, "--exclude-tags", "broken"], stdout=log, stderr=log)

        def scrape():
            text = netns.sh("curl", "-sf", f"http://127.0.0.1:{port}/metrics", ns=p, capture=True, check=False)
            return harness.parse_metrics(text or "")

        def output():
            log.seek(0)
            return log.read()

        deadline = time.time() + 30
        metrics = {}
        while time.time() < deadline and proc.poll() is None:
            metrics = scrape()
            if ((harness.value(metrics, "tcpsyn_sent_total", destination="web") or 0) >= 8 and
                    (harness.value(metrics, "icmp_sent_total", destination="tagger_keep") or 0) >= 2):
                break
            time.sleep(0.5)
        assert proc.poll() is None, f"netprobe exited:\n{output()}"
        info = {d["destination"]: d for d, _ in harness.select(metrics, "netprobe_target_info")}
        # Configuration and inventory targets alike: the "broken" ones are neither probed nor declared.
        assert set(info) == {"web", "dns_udp", "tagger_keep"}, f"target_info: {info}\n{output()}"
        assert info["web"]["tags"] == "front,web" and info["web"]["type"] == "TCPsyn", info["web"]
        assert info["dns_udp"]["tags"] == "infra", info["dns_udp"]
        assert info["tagger_keep"]["tags"] == "infra", info["tagger_keep"]
        assert not harness.select(metrics, "tcpsyn_sent_total", destination="dropped"), "an excluded target probed"
        assert not harness.select(metrics, "icmp_sent_total", destination="tagger_drop"), "an excluded plug-in target"
        assert harness.value(metrics, "tcpsyn_loss_ratio", destination="web", group="lab") == 0.0
        # No tags label anywhere else.
        others = [n for (n, ls) in metrics if n != "netprobe_target_info" and "tags" in dict(ls)]
        assert not others, f"tags label on {others}"

        # A reload that tags web "broken" deselects it: its series go, the others stay.
        with open(path, "w") as fh:
            fh.write(config_text(port, inv, web_tags="[web, broken]"))
        proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 20
        while time.time() < deadline and proc.poll() is None:
            metrics = scrape()
            info = {d["destination"] for d, _ in harness.select(metrics, "netprobe_target_info")}
            if info == {"dns_udp", "tagger_keep"}:
                break
            time.sleep(0.5)
        assert info == {"dns_udp", "tagger_keep"}, f"after reload: {info}\n{output()}"
        assert not harness.select(metrics, "tcpsyn_sent_total", destination="web"), "web still has series"
    print("run_tags: ok")


def run():
    harness.require_root()
    scenario = sys.argv[1] if len(sys.argv) > 1 else "check"
    {"check": scenario_check, "run_tags": scenario_run_tags}[scenario]()


if __name__ == "__main__":
    harness.main(run)
