"""`netprobe query` (issue 18, docs/service-checks.md) in a namespace lab: openssl s_server with a
self-signed certificate made here, and a TCP banner service, in one namespace; netprobe query, unprivileged
code, from another.

  TLS trusted by --ca-file: exit 0, probe_ssl_earliest_cert_expiry = the certificate's NotAfter;
  TLS with a wrong --server-name: exit 2, tls_verify; the expiry is still reported;
  TLS inside --expiry-window: exit 2, tls_expiry_window;
  banner: expect ^220 OK, expect ^500 exit 2 (expect); a closed port: exit 2 (connect).
  UDP (--udp) against dnsmasq: a DNS query with the token in the ID (0:2) answered with the address;
  a wrong expect: unexpected; a closed port: closed.
"""
import calendar
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness  # noqa: E402
import netns  # noqa: E402

BANNER = ("import socket\n"
          "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
          "s.bind(('10.18.0.2', 2525)); s.listen(8)\n"
          "for _ in range(20):\n"
          "    c, _ = s.accept(); c.sendall(b'220 lab ready\\r\\n'); c.close()\n")


def query(lab, ns, *args):
    r = harness.netprobe_in(ns, "query", *args, timeout_s=60)
    return r.returncode, r.stdout


def metric(text, name):
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return m.group(1) if m else None


def main():
    harness.require_root()
    harness.require_executable("/usr/bin/openssl")
    d = harness.tmpdir()
    crt, key = os.path.join(d, "svc.crt"), os.path.join(d, "svc.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "30", "-subj", "/CN=svc.test",
                    "-addext", "subjectAltName=DNS:svc.test"], check=True, capture_output=True, timeout=60)
    end = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", crt], check=True, capture_output=True,
                         text=True).stdout.strip().split("=", 1)[1]
    not_after = calendar.timegm(time.strptime(end, "%b %d %H:%M:%S %Y %Z"))
    with netns.Lab() as lab:
        cli, srv = lab.ns("c"), lab.ns("s")
        lab.link(cli, srv, ["10.18.0.1/24"], ["10.18.0.2/24"])
        lab.popen(srv, ["openssl", "s_server", "-quiet", "-accept", "10.18.0.2:4433", "-cert", crt, "-key", key],
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        lab.popen(srv, [sys.executable, "-c", BANNER])
        for port in (4433, 2525):
            harness.wait_until(lambda port=port: subprocess.run(
                ["ip", "netns", "exec", srv, "ss", "-Hltn", f"sport = :{port}"], capture_output=True,
                text=True).stdout.strip() != "", 30, f"server on {port}")

        rc, out = query(lab, cli, "10.18.0.2", "4433", "--server-name", "svc.test", "--ca-file", crt,
                        "--format", "metrics")
        assert rc == 0, out
        assert metric(out, "probe_ssl_earliest_cert_expiry") == str(not_after), (out, not_after)
        assert metric(out, "probe_ssl_last_chain_expiry_timestamp_seconds") == str(not_after), out
        assert metric(out, "probe_ssl_verified") == "1", out
        assert 'probe_tls_version_info{version="TLS 1.3"} 1' in out, out

        rc, out = query(lab, cli, "10.18.0.2", "4433", "--server-name", "other.test", "--ca-file", crt,
                        "--format", "metrics")
        assert rc == 2 and 'probe_failed_due_to{reason="tls_verify"} 1' in out, out
        assert metric(out, "probe_ssl_earliest_cert_expiry") == str(not_after), out
        assert metric(out, "probe_ssl_last_chain_expiry_timestamp_seconds") is None, out

        rc, out = query(lab, cli, "10.18.0.2", "4433", "--server-name", "svc.test", "--ca-file", crt,
                        "--expiry-window", str(60 * 86400), "--format", "metrics")
        assert rc == 2 and 'reason="tls_expiry_window"' in out, out

        rc, out = query(lab, cli, "10.18.0.2", "2525", "--step", "expect=^220 ")
        assert rc == 0 and out.startswith("OK"), out
        rc, out = query(lab, cli, "10.18.0.2", "2525", "--step", "expect=^500", "--timeout", "2")
        assert rc == 2 and "expect" in out, out
        rc, out = query(lab, cli, "10.18.0.2", "2526")
        assert rc == 2 and "connect" in out, out
        rc, out = query(lab, cli, "10.18.0.2", "2525", "--step", "expect=(")
        assert rc == 3, out

        # DNS: svc.test A? (ID 0: the token goes there), answered 10.18.0.9 = 0a120009.
        lab.popen(srv, ["dnsmasq", "-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--pid-file=",
                        "--user=root", "--listen-address=10.18.0.2", "--bind-interfaces", "--port=53",
                        "--address=/svc.test/10.18.0.9"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        harness.wait_until(lambda: subprocess.run(["ip", "netns", "exec", srv, "ss", "-Hlun", "sport = :53"],
                                                  capture_output=True, text=True).stdout.strip() != "", 30,
                           "dnsmasq")
        dns = "hex:0000 0100 0001 0000 0000 0000 03737663 0474657374 00 0001 0001"
        rc, out = query(lab, cli, "--udp", "10.18.0.2", "53", "--payload", dns, "--token", "0:2",
                        "--expect", "contains=hex:0a120009", "--format", "metrics")
        assert rc == 0 and 'probe_udp_outcome{outcome="answered"} 1' in out, out
        assert metric(out, "probe_udp_not_ours") == "0", out
        rc, out = query(lab, cli, "--udp", "10.18.0.2", "53", "--payload", dns, "--token", "0:2",
                        "--expect", "contains=hex:0a120008", "--format", "metrics")
        assert rc == 2 and 'outcome="unexpected"' in out, out
        rc, out = query(lab, cli, "--udp", "10.18.0.2", "5353", "--payload", dns, "--token", "0:2")
        assert rc == 2 and "closed" in out, out
    harness.log("query: OK")


if __name__ == "__main__":
    main()
