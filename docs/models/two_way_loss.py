#!/usr/bin/env python3
"""Model of TCPsyn loss under two-way loss (docs/architecture.md#two-way-loss). Not a test: a Monte Carlo
simulation of one Linux target's half-open connections (tcp_check_req()) probed round robin on `ports`
4-tuples, one SYN every `gap` seconds, to estimate what netprobe reads.

  p: loss of every packet towards the target (probes and RSTs); q: loss of its answers.
  variant 0: a pure ACK is a loss (netprobe before the fix)
          1: a pure ACK of an earlier probe answers the new one; the kernel's RST only
          2: as 1, plus N RSTs from netprobe per pure ACK (what netprobe does, N = 3)
          3: as 2, plus a RST before each SYN on a 4-tuple that produced a pure ACK (not implemented)
Linux rules modelled: a SYN on a clean 4-tuple opens a connection and gets a SYN-ACK; a SYN with another
seq on an open one gets a pure ACK of the first, at most once per `L` (tcp_invalid_ratelimit, 500 ms), and
nothing otherwise; an arriving RST closes it; SYN-ACK retransmissions at 1, 3, 7, 15, 31 s each draw a RST.
"""
import random


def simulate(p, q, ports, gap, variant, N=3, n_iter=40, nb=600, idle=2.0, seed=1, L=0.5):
    rnd = random.Random(seed)
    half_open, suspect = {}, {}
    lost = sent = 0
    t = 0.0

    def some_rst_arrives(k):
        return any(rnd.random() >= p for _ in range(k))

    for _ in range(n_iter):
        for i in range(nb):
            port = i % ports
            c = half_open.get(port)
            while c and c["next_rtx"] <= t:  # SYN-ACK retransmissions by timer
                if c["rtx"] >= 5:
                    half_open.pop(port)
                    c = None
                    break
                c["rtx"] += 1
                c["next_rtx"] += 2 ** c["rtx"]
                if rnd.random() >= q and some_rst_arrives(1):
                    half_open.pop(port)
                    c = None
            if variant >= 3 and suspect.get(port) and c and some_rst_arrives(1):
                half_open.pop(port)
                c = None
            sent += 1
            if rnd.random() < p:
                lost += 1
            elif c is None:
                half_open[port] = {"next_rtx": t + 1, "rtx": 0, "oow": None}
                if rnd.random() < q:
                    lost += 1
                else:
                    suspect[port] = False
                    if some_rst_arrives(1):
                        half_open.pop(port)
            elif c["oow"] is not None and t - c["oow"] < L:
                lost += 1  # rate limited: no answer at all
            else:
                c["oow"] = t
                if rnd.random() < q:
                    lost += 1
                else:
                    if variant == 0:
                        lost += 1
                    suspect[port] = True
                    if some_rst_arrives(1 + (N if variant >= 2 else 0)):
                        half_open.pop(port)
            t += gap
        t += idle
    return lost / sent


if __name__ == "__main__":
    print("p    q    ports gap    expected  v0     v1     v2     v3")
    for p, q, ports, gap in [(0.1, 0, 16, 0.0047), (0.3, 0, 16, 0.0047), (0.1, 0, 256, 0.0047),
                             (0.3, 0, 256, 0.0047), (0.3, 0, 1, 0.004), (0.1, 0.1, 16, 0.0047)]:
        row = [simulate(p, q, ports, gap, v) for v in range(4)]
        print(f"{p:.2f} {q:.2f} {ports:5d} {gap:.4f} {1 - (1 - p) * (1 - q):.3f}    " +
              " ".join(f"{x:.4f}" for x in row))
