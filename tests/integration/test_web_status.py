"""The status page at / and /status.json (issue 15, part 5), rendered by headless Chromium (Debian package
`chromium`).

A namespace lab: the prober (p) probes four targets of group `lab` in t: `clean` and `clean2` (ICMP,
answered), `lossy` (TCP SYN to a closed port from source ports 65000-65009; nftables in t drops every SYN
from ports 65003 and 65004: two dead ECMP-like flows, 20 % loss) and `hole` (an address nobody has: 100 %
loss). Once two iterations are done and the dead flows are flagged, in p: /status.json must show the four
with their loss (hole exactly 1, lossy between 0 and 1, clean 0), the history of each (one point per
iteration: loss, p50/p95 RTT), the two dead flows first among the worst paths, the mesh matrix of group lab
(four destinations) and the process health; Chromium (--headless, in p, so it can reach nothing but the lab)
loads / with the credentials, dumps the DOM and takes a screenshot: the text must show the targets, the
hole's 100.00 %, the worst one first, the lossy target's loss in its history cells and in its matrix cell,
and the dead flows' source ports; the page must not refer to any other origin. The PNG is kept in
$NETPROBE_SCREENSHOT (if set) for docs/images/status-page.png.

Bounded: every wait has a deadline, Chromium gets 60 s per run; the lab is removed on exit.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness  # noqa: E402
import netns  # noqa: E402

P4, T4, HOLE4 = "198.18.0.1", "198.18.0.2", "198.18.0.99"
PORT, CLOSED_PORT = 9100, 8081
DEAD_PORTS = (65003, 65004)  # lossy's flows that nftables drops
NAMES = ("clean", "lossy", "hole", "clean2")
USER, PASSWORD = "prom_it", "s3cr3t-it"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def config_text():
    return "\n".join([
        "global:", "  probe_name: status_lab", "  interval: 2", "  nb_proc: 1", "  logging_level: INFO",
        f"  prometheus_port: {PORT}", "  prometheus_address: 127.0.0.1", "  dns_update_interval: 300",
        "groups:", "  lab:", "    src_port_a: 65000", "    src_port_z: 65009",
        "targets:",
        "  clean:", "    type: ICMPping", f"    destination: \"{T4}\"", "    nb_packets: 40", "    timeout: 0.5",
        "  lossy:", "    type: TCPsyn", f"    destination: \"{T4}\"", f"    dst_port: {CLOSED_PORT}",
        "    nb_packets: 40", "    timeout: 0.5",
        "  hole:", "    type: ICMPping", f"    destination: \"{HOLE4}\"", "    nb_packets: 40", "    timeout: 0.5",
        "  clean2:", "    type: ICMPping", f"    destination: \"{T4}\"", "    nb_packets: 20", "    timeout: 0.5",
    ]) + "\n"


def chromium(ns, lab, args, out_path, timeout_s=60):
    """Runs headless Chromium in namespace `ns`; returns its stdout."""
    profile = tempfile.mkdtemp(prefix="netprobe-chromium-")
    cmd = ["ip", "netns", "exec", ns, CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
           "--no-first-run", "--disable-extensions", "--disable-background-networking", "--disable-sync",
           f"--user-data-dir={profile}", "--window-size=1200,1000", *args]
    try:
        with open(out_path, "w") as out:
            subprocess.run(cmd, stdout=out, stderr=subprocess.DEVNULL, timeout=timeout_s, check=False)
        with open(out_path) as f:
            return f.read()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def test():
    harness.require_root()
    harness.require_executable(CHROMIUM, "chromium is not installed (Debian package `chromium`)")
    with netns.Lab() as lab:
        p, t = lab.ns("p"), lab.ns("t")
        lab.link(p, t, [f"{P4}/24"], [f"{T4}/24"])
        rules = "\n".join(["table inet lab {", "  chain in { type filter hook input priority 0;",
                           f"    tcp dport {CLOSED_PORT} tcp sport {{ {DEAD_PORTS[0]}, {DEAD_PORTS[1]} }} drop",
                           "  }", "}"])
        with tempfile.NamedTemporaryFile("w", suffix=".nft", delete=False) as fh:
            fh.write(rules + "\n")
        netns.sh("nft", "-f", fh.name, ns=t)
        os.unlink(fh.name)
        with tempfile.TemporaryDirectory() as tmp:
            os.chmod(tmp, 0o755)
            path = os.path.join(tmp, "lab.yaml")
            with open(path, "w") as fh:
                fh.write(config_text())
            log = open(os.path.join(tmp, "netprobe.log"), "w+")
            env = dict(os.environ, PROM_USER=USER, PROM_PASSWORD=PASSWORD)
            proc = lab.popen(p, [harness.netprobe_bin(), "run", path], stdout=log, stderr=log, env=env)
            auth = ["-u", f"{USER}:{PASSWORD}"]

            def status():
                text = netns.sh("curl", "-sf", "-m", "5", *auth, f"http://127.0.0.1:{PORT}/status.json", ns=p,
                                capture=True, check=False)
                try:
                    return json.loads(text or "")
                except ValueError:
                    return None

            def ready():
                s = status()
                rows = {r["destination"]: r for r in (s or {}).get("targets", [])}
                done = all(len(rows.get(n, {}).get("history", [])) >= 2 for n in NAMES)
                flagged = {w["src_port"] for w in (s or {}).get("worst_paths", []) if w["destination"] == "lossy"}
                return s if done and flagged >= {str(port) for port in DEAD_PORTS} else None

            try:
                data = harness.wait_until(ready, 60, "two iterations of every target and the dead flows flagged "
                                                     "in /status.json")
            except BaseException:
                log.seek(0)
                harness.log("netprobe log:\n" + log.read()[-3000:])
                raise
            rows = {r["destination"]: r for r in data["targets"]}
            harness.log("status.json: " + ", ".join(
                f"{n} {rows[n]['lost']:g}/{rows[n]['sent']:g}" for n in ("clean", "lossy", "hole")))
            assert rows["hole"]["loss_ratio_since_start"] == 1, rows["hole"]
            assert 0 < rows["lossy"]["loss_ratio_since_start"] < 1, rows["lossy"]
            assert rows["clean"]["lost"] == 0 and rows["clean"]["rtt_seconds_last_iteration"], rows["clean"]
            assert data["targets"][0]["destination"] == "hole", "worst first"
            assert data["process"]["worker_restarts"] == 0 and data["process"]["last_reload_failed"] is False
            # The history: a point per iteration, oldest first, each with its loss and round-trip percentiles.
            for name in NAMES:
                history = rows[name]["history"]
                assert 2 <= len(history) <= data["history_iterations"], (name, history)
                assert [p["time"] for p in history] == sorted(p["time"] for p in history), history
            assert all(q["loss_ratio"] == 1 and q["rtt_p50_seconds"] is None for q in rows["hole"]["history"])
            assert all(0 < q["loss_ratio"] < 1 for q in rows["lossy"]["history"]), rows["lossy"]["history"]
            for point in rows["clean"]["history"]:
                assert point["loss_ratio"] == 0 and 0 < point["rtt_p50_seconds"] <= point["rtt_p95_seconds"] < 0.5, point
            harness.log("lossy history: " + ", ".join(f"{q['loss_ratio']:.2f}" for q in rows["lossy"]["history"]))
            # Worst paths: the two dead flows first, at 100 %.
            worst = data["worst_paths"]
            assert {w["src_port"] for w in worst[:2]} == {str(p) for p in DEAD_PORTS}, worst
            assert all(w["destination"] == "lossy" and w["loss_ratio"] == 1 for w in worst[:2]), worst
            # The mesh matrix of group lab: its four destinations by name, coloured by their last loss.
            mesh = {m["group"]: m for m in data["mesh"]}
            assert mesh["lab"]["destinations"] == 4, mesh
            cells = {c["destination"]: c["loss_ratio_last_iteration"] for c in mesh["lab"]["cells"]}
            assert list(cells) == sorted(NAMES) and cells["hole"] == 1 and cells["clean"] == 0, cells
            assert 0 < cells["lossy"] < 1, cells
            # The same authentication as /metrics.
            code = netns.sh("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{PORT}/",
                            ns=p, capture=True, check=False)
            assert code.strip() == "401", f"/ without credentials: {code}"

            # Chromium: the credentials in the URL (it answers the 401 challenge with them).
            url = f"http://{USER}:{PASSWORD}@127.0.0.1:{PORT}/"
            dom = chromium(p, lab, ["--dump-dom", url], os.path.join(tmp, "dom.html"))
            shot = os.path.join(tmp, "status.png")
            chromium(p, lab, [f"--screenshot={shot}", url], os.path.join(tmp, "shot.log"))
            text = re.sub(r"<[^>]+>", " ", dom)
            for needle in ("status_lab", "clean", "lossy", "hole", "100.00 %", "worker restarts", "last reload",
                           "Worst paths", "Mesh: group", *(str(p) for p in DEAD_PORTS)):
                assert needle in text, f"{needle!r} not in the page Chromium rendered:\n{text[:2000]}"
            assert text.index("hole") < text.index("clean"), "worst first"
            # The lossy target's loss in its history cells (one per iteration) and in its matrix cell, as shown.
            row = re.search(r"<tr><td class=\"l\">lossy</td>.*?</tr>", dom, re.S)
            assert row, "no row for lossy"
            shown = re.findall(r"<i [^>]*>([^<]*)</i>", row.group(0))
            assert len(shown) >= 2 and all(v not in ("0", "-") for v in shown), f"lossy history cells: {shown}"
            cell = re.search(r"<b>lossy</b>([^<]*)</div>", dom)
            assert cell and cell.group(1) not in ("0", "-"), "lossy's matrix cell"
            assert 0 < float(cell.group(1)) < 100, cell.group(1)
            hole_row = re.search(r"<tr><td class=\"l\">hole</td>.*?</tr>", dom, re.S)
            assert all(v == "100" for v in re.findall(r"<i [^>]*>([^<]*)</i>", hole_row.group(0))), "hole history"
            harness.log(f"page: lossy history cells {shown}, matrix cell {cell.group(1)} %")
            assert not re.search(r"(src|href)=\"(https?:)?//", dom), "the page refers to another origin"
            with open(shot, "rb") as f:
                png = f.read()
            assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000, f"screenshot: {len(png)} bytes"
            harness.log(f"Chromium rendered the page ({len(dom)} bytes of DOM), screenshot {len(png)} bytes")
            if os.environ.get("NETPROBE_SCREENSHOT"):
                shutil.copy(shot, os.environ["NETPROBE_SCREENSHOT"])
            assert proc.poll() is None, "netprobe exited"
    return 0


if __name__ == "__main__":
    harness.main(test)
