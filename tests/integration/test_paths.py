#!/usr/bin/env python3
"""Per-ECMP-path results end to end (issue 12, "What must be shown"), on the ECMP lab (lib/ecmp.py).

netprobe in the prober namespace probes the target behind the router's two equal-cost links with TCPsyn (to a
listening port) and UDPunreachable (to a closed port), over IPv4 and IPv6, from one group of 16 source ports,
100 probes per flow and iteration. Before netprobe starts, lab.port_map() finds which ports the router hashes
onto each link, independently of netprobe. Scenarios (argv[1]):

  no_drop     20 iterations: no loss, <type>_paths_with_loss is 0 in every scrape, no per-flow series exists
  black_hole  link B drops everything towards the target: within a few iterations <type>_paths_with_loss
              equals the number of B ports and the per-flow series (<type>_path_loss_ratio,
              <type>_path_sent, label src_port) name exactly the B ports, never an A port, and the loss is
              exactly the B flows' probes (the healthy flows lose none); then B heals and every per-flow
              series disappears, paths_with_loss back to 0
  partial     link B drops 20 %: every B port is flagged within 10 iterations, no A port ever over 20
              iterations, paths_with_loss never exceeds the number of B ports, and the loss is binomial
              around 20 % of the B flows' probes

Every scenario also checks with the links' counters that each of netprobe's flows crossed one link only, the
one port_map() predicted: flow invariance (constant IPv6 flow label, TCP included) seen by the router.
Assertions are on counts and label sets only; every wait is bounded. Needs global.path_series_per_target and
global.path_window (issue 12 part 3).
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import ecmp  # noqa: E402
import harness  # noqa: E402
import netns  # noqa: E402

PORTS = list(range(42000, 42016))   # 16 source ports: 16 flows per target
PER_FLOW = 200                      # probes per flow and iteration
NB_PACKETS = PER_FLOW * len(PORTS)
INTERVAL = 2
PATH_WINDOW = 5
SERIES_PER_TARGET = 32              # more than the ports: every flagged flow has its series
OPEN_PORT, UDP_PORT = 8080, 33434
METRICS_PORT = 9100
GROUP = "ecmp"

# name: (type, metric prefix, proto, family, destination, destination port)
TARGETS = {
    "tcp_v4": ("TCPsyn", "tcpsyn", "tcp", 4, ecmp.TARGET4, OPEN_PORT),
    "tcp_v6": ("TCPsyn", "tcpsyn", "tcp", 6, ecmp.TARGET6, OPEN_PORT),
    "udp_v4": ("UDPunreachable", "udp_unreachable", "udp", 4, ecmp.TARGET4, UDP_PORT),
    "udp_v6": ("UDPunreachable", "udp_unreachable", "udp", 6, ecmp.TARGET6, UDP_PORT),
}
# Labels of a per-flow series: the measurement labels plus src_port (no src: one source address; no dst: no
# subnet target).
FLOW_LABELS = {"address_family", "destination", "group", "probe_name", "state", "src_port"}


def config_text():
    lines = [
        "global:",
        "  probe_name: paths",
        f"  interval: {INTERVAL}",
        "  nb_proc: 1",
        "  logging_level: INFO",
        f"  prometheus_port: {METRICS_PORT}",
        "  prometheus_address: 127.0.0.1",
        "  dns_update_interval: 300",
        f"  path_series_per_target: {SERIES_PER_TARGET}",
        f"  path_window: {PATH_WINDOW}",
        "groups:",
        f"  {GROUP}:",
        f"    src_port_a: {PORTS[0]}",
        f"    src_port_z: {PORTS[-1]}",
        "targets:",
    ]
    for name, (type_, _, _, _, dst, dport) in TARGETS.items():
        lines += [f"  {name}:", f"    type: {type_}", f"    destination: \"{dst}\"", f"    dst_port: {dport}",
                  f"    nb_packets: {NB_PACKETS}", "    timeout: 0.3"]
    return "\n".join(lines) + "\n"


class PathView:
    """The path families of one target in one scrape."""

    def __init__(self, metrics, name):
        prefix = TARGETS[name][1]

        def one(family):
            return harness.value(metrics, f"{prefix}_{family}", destination=name, group=GROUP)

        self.name = name
        sent = one("sent_total")
        self.sent_total = sent or 0
        self.loss_total = one("loss_total") or 0
        self.iteration = int(sent // NB_PACKETS) if sent is not None else 0
        self.paths = one("paths")
        self.with_loss = one("paths_with_loss")
        self.worst = one("worst_path_loss_ratio")
        self.series = {}     # src_port -> loss ratio
        self.sent = {}       # src_port -> sent
        self.bad_labels = []
        for family, out in (("path_loss_ratio", self.series), ("path_sent", self.sent)):
            for labels, v in harness.select(metrics, f"{prefix}_{family}", destination=name):
                if set(labels) != FLOW_LABELS:
                    self.bad_labels.append((family, labels))
                out[int(labels.get("src_port", -1))] = v

    def __repr__(self):
        return (f"{self.name}: iteration {self.iteration} sent={self.sent_total:.0f} lost={self.loss_total:.0f} "
                f"paths={self.paths} with_loss={self.with_loss} worst={self.worst} series={sorted(self.series)}")


class Run:
    """netprobe in the prober namespace, scraped from inside it."""

    def __init__(self, lab):
        self.lab = lab
        work = harness.tmpdir()
        path = os.path.join(work, "paths.yaml")
        with open(path, "w") as fh:
            fh.write(config_text())
        self.log = open(os.path.join(work, "netprobe.log"), "w+")
        self.proc = lab.lab.popen(lab.prober, [harness.netprobe_bin(), "run", path], stdout=self.log,
                                  stderr=self.log)

    def output(self):
        self.log.seek(0)
        return self.log.read()[-4000:]

    def views(self):
        assert self.proc.poll() is None, f"netprobe exited with {self.proc.returncode}:\n{self.output()}"
        text = netns.sh("curl", "-sf", f"http://127.0.0.1:{METRICS_PORT}/metrics", ns=self.lab.prober,
                        capture=True, check=False)
        metrics = harness.parse_metrics(text or "")
        return {name: PathView(metrics, name) for name in TARGETS}

    def iterations(self, count, on_scrape, what, stop=None):
        """Scrapes every 0.25 s until every target completed `count` iterations after the first one seen
        (or until stop(views) is true); on_scrape(views) runs on each scrape. Returns the last views;
        self.start holds each target's first iteration seen. Bounded in time."""
        timeout_s = 30 + count * INTERVAL * 2
        deadline = time.monotonic() + timeout_s
        start = None
        while True:
            views = self.views()
            if start is None and all(v.iteration > 0 for v in views.values()):
                start = self.start = {n: v.iteration for n, v in views.items()}
            if start is not None:
                on_scrape(views)
                done = {n: v.iteration - start[n] for n, v in views.items()}
                if stop is not None and stop(views):
                    return views
                if min(done.values()) >= count:
                    return views
            if time.monotonic() >= deadline:
                raise harness.WaitTimeout(f"{what}: not done after {timeout_s}s; last scrape:\n"
                                          + "\n".join(map(repr, views.values())) + f"\n{self.output()}")
            time.sleep(0.25)


    def settled(self, timeout_s=30):
        """Views from two consecutive scrapes that agree on every target's sent and lost counters: whole
        iterations only (a scrape may see one half applied). Bounded."""
        deadline = time.monotonic() + timeout_s
        last = None
        while True:
            views = self.views()
            key = {n: (v.sent_total, v.loss_total) for n, v in views.items()}
            if key == last:
                return views
            last = key
            if time.monotonic() >= deadline:
                raise harness.WaitTimeout(f"no two scrapes agreed within {timeout_s}s")
            time.sleep(0.25)


def flow_invariance(lab, before, maps):
    """Each of netprobe's flows crossed one link only, the one of port_map()."""
    after = lab.snapshot()
    failures = []
    for name, (_, _, proto, fam, dst, dport) in TARGETS.items():
        src = ecmp.PROBER6 if fam == 6 else ecmp.PROBER4
        for sport in PORTS:
            flow = ecmp.Flow(fam, proto, src, dst, sport, dport)
            n = {link: ecmp.delta(after[link], before[link], flow) for link in ecmp.LINKS}
            expected = "B" if sport in maps[name]["B"] else "A"
            other = "A" if expected == "B" else "B"
            if n[expected] == 0 or n[other] != 0:
                failures.append(f"{name} port {sport}: {n} packets per link, expected link {expected} only")
    assert not failures, "netprobe's flows vs the router's links:\n" + "\n".join(failures)
    print("  every netprobe flow crossed only the link port_map() predicted", flush=True)


def run(scenario):
    harness.require_root()
    with ecmp.EcmpLab() as lab:
        lab.listen_tcp(OPEN_PORT)
        maps = {name: lab.port_map(proto, fam, dport, PORTS)
                for name, (_, _, proto, fam, _, dport) in TARGETS.items()}
        for name, m in maps.items():
            print(f"  {name}: B ports {m['B']}", flush=True)
            assert m["A"] and m["B"], f"{name}: every port on one link, the scenario proves nothing: {m}"
        on_b = {name: set(m["B"]) for name, m in maps.items()}
        if scenario == "black_hole":
            lab.drop("B", 100)
        elif scenario == "partial":
            # The probes only: a dropped RST would leave the target half-open and its flow lose more than 20 %
            # (real, but not the known share the loss check below needs).
            lab.drop("B", 20, probes_only=True)
        before = lab.snapshot()
        run_ = Run(lab)
        failures = []

        def common(views):
            for v in views.values():
                if v.bad_labels:
                    failures.append(f"{v.name}: per-flow series with other labels than {sorted(FLOW_LABELS)}: "
                                    f"{v.bad_labels[:2]}")
                if v.paths is not None and v.paths != len(PORTS):
                    failures.append(f"{v.name}: paths={v.paths}, expected {len(PORTS)}")
                if v.with_loss is not None and v.with_loss > len(on_b[v.name]):
                    failures.append(f"{v.name}: {v.with_loss} flows flagged, more than the {len(on_b[v.name])} "
                                    "on link B")
                healthy = sorted(set(v.series) - on_b[v.name])
                if healthy:
                    failures.append(f"{v.name}: healthy (link A) ports with a per-flow series: {healthy}")

        if scenario == "no_drop":
            def check(views):
                common(views)
                for v in views.values():
                    # Not the loss itself: a stalled machine (2 shared cores) once lost ~47 probes of every
                    # target at once; loss on every flow alike is no path's loss.
                    if (v.with_loss or 0) != 0 or v.series:
                        failures.append(f"{v.name}: no drop, yet {v!r}")
            run_.iterations(20, check, "20 iterations without loss")
            views = run_.settled()
            for v in views.values():
                if v.with_loss != 0 or v.paths != len(PORTS):
                    failures.append(f"{v.name}: after 20 iterations {v!r}")
            print("  no drop: " + ", ".join(f"{n} lost {v.loss_total:.0f} of {v.sent_total:.0f}"
                                           for n, v in views.items()) + "; no flow flagged", flush=True)

        elif scenario == "black_hole":
            def exact(views):
                return all(v.with_loss == len(on_b[n]) and set(v.series) == on_b[n] == set(v.sent)
                           for n, v in views.items())
            views = run_.iterations(PATH_WINDOW + 3, common, "every B port flagged, exactly", stop=exact)
            assert exact(views), "B black-holed, not found:\n" + "\n".join(map(repr, views.values()))
            for v in views.values():
                assert v.worst is not None and v.worst > 0, f"{v!r}: worst path loss ratio should be > 0"
                assert all(r > 0 for r in v.series.values()), f"{v.name}: per-flow loss ratios {v.series}"
            print("  B black-holed: exactly the B ports flagged, with their series", flush=True)

            counters = {n: [] for n in TARGETS}

            def still_exact(views):
                common(views)
                if not exact(views):
                    failures.append("B still black-holed, another answer:\n" + "\n".join(map(repr, views.values())))
                for n, v in views.items():
                    if not counters[n] or counters[n][-1] != (v.sent_total, v.loss_total):
                        counters[n].append((v.sent_total, v.loss_total))
            run_.iterations(5, still_exact, "5 more iterations black-holed")
            # The healthy flows lose nothing: between two scrapes, the loss grows by exactly the B flows'
            # probes. Asked of one pair of scrapes at least, not all: one may see an iteration half applied,
            # and a stalled machine loses probes of every flow.
            for n, seq in counters.items():
                steps = [(s2 - s1, l2 - l1) for (s1, l1), (s2, l2) in zip(seq, seq[1:]) if s2 > s1]
                if not any(dl * len(PORTS) == ds * len(on_b[n]) for ds, dl in steps):
                    failures.append(f"{n}: in no iteration was the loss exactly the {len(on_b[n])} B flows' "
                                    f"probes: (sent, lost) steps {steps}")
            print("  B black-holed: the loss is the B flows' probes exactly", flush=True)

            lab.drop("B", 0)

            def recovered(views):
                return all(v.with_loss == 0 and not v.series and not v.sent for v in views.values())
            views = run_.iterations(PATH_WINDOW + 4, common, "recovery", stop=recovered)
            assert recovered(views), "B healed, flows still flagged:\n" + "\n".join(map(repr, views.values()))
            print("  B healed: every per-flow series gone, no flow flagged", flush=True)

        elif scenario == "partial":
            found = {name: set() for name in TARGETS}
            found_at = {}

            def check(views):
                common(views)
                for n, v in views.items():
                    found[n] |= set(v.series) & on_b[n]
                    if found[n] == on_b[n] and n not in found_at:
                        found_at[n] = v.iteration
            run_.iterations(20, check, "20 iterations with 20 % on B")
            first = run_.start
            views = run_.settled()
            # Only the B flows lose: the loss is binomial around 20 % of their probes.
            for n, v in views.items():
                b_probes = v.sent_total * len(on_b[n]) / len(PORTS)
                sd = (0.2 * 0.8 * b_probes) ** 0.5
                if abs(v.loss_total - 0.2 * b_probes) > 4.5 * sd:
                    failures.append(f"{v!r}: loss not within 4.5 sd ({sd:.1f}) of 20 % of the B flows' "
                                    f"{b_probes:.0f} probes")
            for n in TARGETS:
                if n not in found_at or found_at[n] - first[n] > 10:
                    failures.append(f"{n}: B ports {sorted(on_b[n])}, flagged within 10 iterations: "
                                    f"{sorted(found[n])} (all found at iteration {found_at.get(n)}, "
                                    f"first {first[n]})")
            print(f"  20 % on B: all B ports found after {({n: found_at.get(n, 0) - first[n] for n in TARGETS})} "
                  "iterations, no A port flagged", flush=True)
        else:
            raise SystemExit(f"unknown scenario {scenario!r}: no_drop, black_hole, partial")

        assert not failures, "\n".join(dict.fromkeys(failures)) + "\n--- netprobe log ---\n" + run_.output()
        flow_invariance(lab, before, maps)
    print(f"paths {scenario}: ok")


if __name__ == "__main__":
    harness.main(lambda: run(sys.argv[1] if len(sys.argv) > 1 else "no_drop"))
