"""TCPquery and TLS targets run by the daemon (issue 18, docs/service-checks.md#daemon), in a namespace lab:
`netprobe run` in namespace p checks services in namespace t, and the results are scraped from /metrics.

  banner: a small Python server answering `220 ready`: expect ^220 succeeds, expect ^554 fails (reason expect);
  TLS: openssl s_server with a chain made here (a CA and a leaf it signed), trusted through ca_file:
    probe_success 1, probe_ssl_earliest_cert_expiry = the leaf's NotAfter (the earliest of the chain),
    probe_ssl_last_chain_expiry_timestamp_seconds the same, probe_tls_version_info, probe_ssl_verified 1,
    probe_ssl_expiry_window_seconds as configured;
  a wrong server_name: probe_success 0, probe_failed_due_to{reason="tls_verify"}, the expiry still reported;
  an expired leaf (dates in 2020, made with `openssl ca`): tls_verify, its NotAfter reported;
  `netprobe check` on the same configuration: the same verdicts through the same code, exit 2.
"""
import calendar
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness  # noqa: E402
import netns  # noqa: E402

P, T = "10.19.0.1", "10.19.0.2"

BANNER = ("import socket\n"
          "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
          f"s.bind(('{T}', 2525)); s.listen(16)\n"
          "for _ in range(2000):\n"
          "    c, _ = s.accept(); c.sendall(b'220 ready\\r\\n'); c.close()\n")

CA_CNF = """[ca]
default_ca = c
[c]
dir = {d}
database = {d}/index.txt
new_certs_dir = {d}
serial = {d}/serial
default_md = sha256
policy = p
copy_extensions = copy
unique_subject = no
[p]
commonName = supplied
"""


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def not_after(crt):
    end = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", crt], check=True, capture_output=True,
                         text=True).stdout.strip().split("=", 1)[1]
    return calendar.timegm(time.strptime(end, "%b %d %H:%M:%S %Y %Z"))


def make_chain(d):
    """A CA, a leaf for svc.test valid 30 days, an expired leaf (2020); returns their paths."""
    ca, ca_key = f"{d}/ca.crt", f"{d}/ca.key"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca_key,
            "-out", ca, "-days", "365", "-subj", "/CN=lab ca", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign")
    with open(f"{d}/index.txt", "w"):
        pass
    with open(f"{d}/serial", "w") as f:
        f.write("1000\n")
    with open(f"{d}/ca.cnf", "w") as f:
        f.write(CA_CNF.format(d=d))
    out = {}
    for name, dates in (("leaf", ["-days", "30"]),
                        ("expired", ["-startdate", "20200101000000Z", "-enddate", "20200201000000Z"])):
        key, csr, crt = f"{d}/{name}.key", f"{d}/{name}.csr", f"{d}/{name}.crt"
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                "-out", csr, "-subj", "/CN=svc.test", "-addext", "subjectAltName=DNS:svc.test")
        openssl("ca", "-batch", "-config", f"{d}/ca.cnf", "-cert", ca, "-keyfile", ca_key, "-in", csr, "-out", crt,
                *dates)
        out[name] = (crt, key)
    return ca, out


def config(port, ca):
    tcp = {"type": "TCPquery", "destination": T, "dst_port": 2525, "timeout": 2}
    tls = {"type": "TLS", "destination": T, "dst_port": 4433, "timeout": 3, "expiry_window": "7d",
           "alert_level": "paging", "tls_config": {"server_name": "svc.test", "ca_file": ca}}
    return {
        "global": {"probe_name": "lab", "interval": 1, "nb_proc": 1, "logging_level": "INFO",
                   "prometheus_port": port, "prometheus_address": "127.0.0.1", "dns_update_interval": 300},
        "groups": {"g": {"src_ipv4": P}},
        "targets": {
            "banner_ok": dict(tcp, query_response=[{"expect": "^220"}, {"send": "QUIT\r\n"}]),
            "banner_wrong": dict(tcp, query_response=[{"expect": "^554"}]),
            "tls_ok": tls,
            "tls_wrong_name": dict(tls, tls_config={"server_name": "other.test", "ca_file": ca}),
            "tls_expired": dict(tls, dst_port=4434),
        },
    }


def scraper(ns, port):
    def scrape():
        text = netns.sh("curl", "-sf", f"http://127.0.0.1:{port}/metrics", ns=ns, capture=True, check=False)
        return harness.parse_metrics(text or "")
    return scrape


def v(samples, name, dest, **labels):
    return harness.value(samples, name, destination=dest, **labels)


def main():
    harness.require_root()
    harness.require_executable("/usr/bin/openssl")
    with netns.Lab() as lab, tempfile.TemporaryDirectory() as work:
        os.chmod(work, 0o755)  # the daemon reads its configuration and ca_file as an unprivileged user
        ca, certs = make_chain(work)
        for f in os.listdir(work):
            os.chmod(os.path.join(work, f), 0o644)
        leaf_expiry, expired_expiry = not_after(certs["leaf"][0]), not_after(certs["expired"][0])
        p, t = lab.ns("p"), lab.ns("t")
        lab.link(p, t, [f"{P}/24"], [f"{T}/24"])
        for port, (crt, key) in ((4433, certs["leaf"]), (4434, certs["expired"])):
            lab.popen(t, ["openssl", "s_server", "-quiet", "-accept", f"{T}:{port}", "-cert", crt, "-key", key,
                          "-cert_chain", ca], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                      stdin=subprocess.DEVNULL)
        lab.popen(t, [sys.executable, "-c", BANNER])
        for port in (4433, 4434, 2525):
            harness.wait_until(lambda port=port: netns.sh("ss", "-Hltn", f"sport = :{port}", ns=t, capture=True,
                                                          check=False).strip() != "", 30, f"server on {port}")

        port = harness.free_port()
        cfg = config(port, f"{work}/ca.crt")
        path = harness.write_config(cfg, work)
        os.chmod(path, 0o644)
        log = open(os.path.join(work, "netprobe.log"), "w+")
        lab.popen(p, [harness.netprobe_bin(), "run", path], stdout=log, stderr=log)
        scrape = scraper(p, port)
        names = list(cfg["targets"])
        try:
            s = None

            def ready():
                nonlocal s
                s = scrape()
                return all(v(s, "probe_success", n) is not None for n in names)
            harness.wait_until(ready, 60, "a result for every service check")
        except BaseException:
            log.seek(0)
            harness.log(log.read()[-4000:])
            raise

        g = {"group": "g", "probe_name": "lab", "state": "None", "address_family": "ipv4"}
        assert v(s, "probe_success", "banner_ok", type="TCPquery", **g) == 1, s
        assert v(s, "probe_tcp_connect_seconds", "banner_ok") > 0
        assert v(s, "probe_success", "banner_wrong") == 0
        assert v(s, "probe_failed_due_to", "banner_wrong", reason="expect") == 1
        assert v(s, "netprobe_service_check_failures_total", "banner_wrong", reason="expect") >= 1

        assert v(s, "probe_success", "tls_ok", type="TLS", **g) == 1
        assert v(s, "probe_ssl_earliest_cert_expiry", "tls_ok") == leaf_expiry, (leaf_expiry, s)
        assert v(s, "probe_ssl_last_chain_expiry_timestamp_seconds", "tls_ok") == leaf_expiry
        assert v(s, "probe_ssl_verified", "tls_ok") == 1
        assert v(s, "probe_tls_version_info", "tls_ok", version="TLS 1.3") == 1
        assert v(s, "probe_ssl_expiry_window_seconds", "tls_ok", alert_level="paging") == 7 * 86400

        assert v(s, "probe_success", "tls_wrong_name") == 0
        assert v(s, "probe_failed_due_to", "tls_wrong_name", reason="tls_verify") == 1
        assert v(s, "probe_ssl_verified", "tls_wrong_name") == 0
        assert v(s, "probe_ssl_earliest_cert_expiry", "tls_wrong_name") == leaf_expiry
        assert v(s, "probe_ssl_last_chain_expiry_timestamp_seconds", "tls_wrong_name") is None

        assert v(s, "probe_success", "tls_expired") == 0
        assert v(s, "probe_failed_due_to", "tls_expired", reason="tls_verify") == 1
        assert v(s, "probe_ssl_earliest_cert_expiry", "tls_expired") == expired_expiry, (expired_expiry, s)

        # Scheduled: the counters keep going (bounded wait for a second run of each).
        harness.wait_until(lambda: v(scrape(), "netprobe_service_check_runs_total", "tls_ok") >= 2, 30,
                           "a second run of tls_ok")

        # netprobe check: the same code, one shot, exit 2 with the failures named.
        r = subprocess.run(["ip", "netns", "exec", p, harness.netprobe_bin(), "check", path], capture_output=True,
                           text=True, timeout=120)
        harness.log(f"check -> {r.returncode}\n{r.stdout}{r.stderr}")
        assert r.returncode == 2, r
        assert f"TCPquery {T}:2525 OK" in r.stdout and "[banner_ok/g]" in r.stdout, r.stdout
        assert "FAILED expect:" in r.stdout and "[banner_wrong/g]" in r.stdout, r.stdout
        assert "FAILED tls_verify" in r.stdout and "[tls_expired/g]" in r.stdout, r.stdout
        assert "5 check(s), 2 OK, 3 FAILED" in r.stdout, r.stdout
    harness.log("service checks: OK")


if __name__ == "__main__":
    harness.main(main)
