"""netprobe's web surface (issue 15; docs/http-server.md): listen addresses, the exporter-toolkit web
configuration (TLS, mutual TLS, bcrypt users), checked with curl against the real binary under its sandbox.

listen: two --web.listen-address at once, IPv4 and IPv6; the configuration's prometheus_port is not used.
tls: HTTPS with a chain made here by openssl (CA -> server certificate): curl with the CA (200), without it
  (refused), plain HTTP (no answer); bcrypt users: right (200), wrong password, unknown user, no credentials,
  another scheme (401); PROM_USER/PROM_PASSWORD set too are ignored; the configured header is sent; the
  certificate replaced on disk is served from the next connection on (no restart).
mtls: client_auth_type RequireAndVerifyClientCert: a client certificate from the CA (200), none (handshake
  refused), one from another CA (refused); VerifyClientCertIfGiven: none (200), the CA's (200), another
  CA's (refused).
reload: --web.config.file rewritten while netprobe runs (mutual TLS): new users, headers, client CA bundle and
  min_version take effect without a restart (the old user 401, the old CA's client certificate refused, the
  new CA's accepted, TLS 1.2 refused once min_version is TLS13); a broken file, one naming a missing client CA
  bundle and one turning TLS off keep the previous configuration in force, say so in the log and set
  netprobe_web_config_last_reload_successful to 0; a good file again sets it back to 1.
prometheus: a real Prometheus (Debian's) scrapes over TLS with basic auth: up == 1; wrong password: up == 0.
formats: content negotiation: the 0.0.4 text passes `promtool check metrics` without a warning; OpenMetrics 1.0
  (Prometheus' Accept header) is accepted by python3-prometheus-client's OpenMetrics parser, ends in # EOF,
  has no _created series, names counters without _total, and has exactly the series of the 0.0.4 page.

Every curl call is bounded (-m); netprobe is stopped on exit (harness.Netprobe).
"""
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # Python's crypt is libxcrypt, as netprobe's bcrypt
    import crypt

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness  # noqa: E402

CURL_TIMEOUT_S = 10
USER, PASSWORD = "prom_it", "s3cr3t-it"
PROMETHEUS = os.environ.get("PROMETHEUS_BIN", "/usr/bin/prometheus")


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_ca(work, name):
    """A self-signed CA: (cert path, key path)."""
    crt, key = os.path.join(work, f"{name}.crt"), os.path.join(work, f"{name}.key")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
            "-out", crt, "-days", "2", "-subj", f"/CN={name}")
    return crt, key


def make_leaf(work, name, ca, usage, san=None):
    """A certificate for `name` signed by `ca` for `usage` (serverAuth, clientAuth): (cert path, key path)."""
    crt, key, csr, ext = (os.path.join(work, f"{name}.{e}") for e in ("crt", "key", "csr", "ext"))
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr,
            "-subj", f"/CN={name}")
    with open(ext, "w") as f:
        f.write(f"extendedKeyUsage={usage}\n" + (f"subjectAltName={san}\n" if san else ""))
    openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial", "-out", crt, "-days", "2",
            "-extfile", ext)
    for path in (crt, key):
        os.chmod(path, 0o644)  # read by netprobe's unprivileged user (a test key: nothing to protect)
    return crt, key


def bcrypt(password, cost=4):
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=2 ** cost))


def write_web_config(work, web, name="web.yml"):
    path = os.path.join(work, name)
    with open(path, "w") as f:
        json.dump(web, f)  # JSON is YAML
    os.chmod(path, 0o644)
    return path


def tls_lab(client_auth=None):
    """CA, server certificate (127.0.0.1 and ::1), a client certificate of the CA and one of another CA, and
    the web configuration: (work dir, files dict, web config path)."""
    work = harness.tmpdir("netprobe-web-")
    ca = make_ca(work, "ca")
    other_ca = make_ca(work, "other-ca")
    files = {
        "ca": ca[0],
        "server": make_leaf(work, "server", ca, "serverAuth", "IP:127.0.0.1,IP:::1,DNS:localhost"),
        "client": make_leaf(work, "client", ca, "clientAuth"),
        "stranger": make_leaf(work, "stranger", other_ca, "clientAuth"),
        "ca_pair": ca,
    }
    tls = {"cert_file": "server.crt", "key_file": "server.key"}  # relative: to the web configuration's directory
    if client_auth:
        tls.update({"client_auth_type": client_auth, "client_ca_file": "ca.crt"})
    web = {"tls_server_config": tls, "basic_auth_users": {USER: bcrypt(PASSWORD), "other": bcrypt("other-pw", 5)},
           "http_server_config": {"headers": {"X-Frame-Options": "deny", "X-Content-Type-Options": "nosniff"}}}
    return work, files, write_web_config(work, web)


def peer_serial(port, cafile):
    """The serial number of the certificate the server presents on a new connection."""
    ctx = ssl.create_default_context(cafile=cafile)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return tls.getpeercert()["serialNumber"]


def config(port):
    targets = {"loopback": {"type": "ICMPping", "destination": "127.0.0.1", "timeout": 0.5}}
    return harness.base_config(port=port, probe_name="it_web", targets=targets)


def curl(url, *args, timeout_s=CURL_TIMEOUT_S):
    """(HTTP status or 0, curl exit code, body, stderr) of one GET; never raises."""
    cmd = ["curl", "-sSg", "-m", str(timeout_s), "-w", "\n%{http_code}", *args, url]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s + 5)
    except subprocess.TimeoutExpired:
        return 0, -1, "", "timeout"
    body, _, code = p.stdout.rpartition("\n")
    return (int(code) if code.isdigit() else 0), p.returncode, body, p.stderr.strip()


def start(port, args, ready_host, ready_port, env=None):
    netprobe = harness.Netprobe(config(port), args=args, env=env)
    netprobe.host, netprobe.port = ready_host, ready_port
    return netprobe


def test_listen():
    harness.require_root("netprobe opens raw sockets to probe 127.0.0.1")
    harness.require_executable("/usr/bin/curl", "curl is not installed")
    if not os.path.exists("/proc/net/if_inet6"):
        harness.skip("no IPv6 on this host")
    unused, p4, p6 = harness.free_port(), harness.free_port(), harness.free_port()
    args = ["--web.listen-address", f"127.0.0.1:{p4}", "--web.listen-address", f"[::1]:{p6}"]
    with start(unused, args, "127.0.0.1", p4) as netprobe:
        harness.wait_for_port("::1", p6, proc=netprobe.proc)
        for url in (f"http://127.0.0.1:{p4}/metrics", f"http://[::1]:{p6}/metrics"):
            status, _, body, err = curl(url)
            assert status == 200 and "netprobe_info" in body, f"GET {url}: {status} {err}"
        # Only what was asked for: not the configuration's port, not the other family on either port.
        for url in (f"http://127.0.0.1:{unused}/metrics", f"http://[::1]:{p4}/metrics",
                    f"http://127.0.0.1:{p6}/metrics"):
            status, rc, _, _ = curl(url, timeout_s=3)
            assert status == 0 and rc != 0, f"{url} answered {status}"
    return 0


def test_tls():
    harness.require_root("netprobe opens raw sockets to probe 127.0.0.1")
    harness.require_executable("/usr/bin/curl", "curl is not installed")
    work, files, web = tls_lab()
    port = harness.free_port()
    env = {"PROM_USER": "env_user", "PROM_PASSWORD": "env_password"}  # the file's users win
    with start(port, ["--web.config.file", web], "127.0.0.1", port, env=env) as netprobe:
        url = f"https://127.0.0.1:{port}/metrics"
        ca = ["--cacert", files["ca"]]
        status, rc, body, err = curl(url, *ca, "-u", f"{USER}:{PASSWORD}", "-D", "/dev/stderr")
        assert status == 200 and "netprobe_info" in body, f"with the CA: {status} rc={rc} {err}"
        assert "x-frame-options: deny" in err.lower() and "x-content-type-options: nosniff" in err.lower(), err
        status, rc, _, err = curl(url, "-u", f"{USER}:{PASSWORD}")
        assert status == 0 and rc == 60, f"without the CA curl must refuse the certificate: {status} rc={rc} {err}"
        status, rc, _, _ = curl(f"http://127.0.0.1:{port}/metrics", "-u", f"{USER}:{PASSWORD}", timeout_s=3)
        assert status != 200, f"plain HTTP on the TLS port answered {status}"
        cases = [
            ("second user", ["-u", "other:other-pw"], 200),
            ("wrong password", ["-u", f"{USER}:wrong"], 401),
            ("unknown user", ["-u", f"nobody-{USER}:{PASSWORD}"], 401),
            ("PROM_USER (ignored)", ["-u", "env_user:env_password"], 401),
            ("no credentials", [], 401),
            ("another scheme", ["-H", "Authorization: Bearer " + PASSWORD], 401),
            ("password as the user", ["-u", f"{PASSWORD}:{USER}"], 401),
        ]
        for what, args, expected in cases:
            status, rc, _, err = curl(url, *ca, *args, "-D", "/dev/stderr")
            assert status == expected, f"{what}: HTTP {status}, expected {expected} (rc={rc} {err})"
            if expected == 401:
                assert "www-authenticate: basic" in err.lower(), f"{what}: no WWW-Authenticate: {err}"
        # Renewed on disk: served from the next connection on (checked at most once a second).
        before = peer_serial(port, files["ca"])
        renewed = make_leaf(work, "renewed", files["ca_pair"], "serverAuth", "IP:127.0.0.1,IP:::1")
        os.replace(renewed[0], os.path.join(work, "server.crt"))
        os.replace(renewed[1], os.path.join(work, "server.key"))
        after = harness.wait_until(lambda: (lambda s: s if s != before else None)(peer_serial(port, files["ca"])),
                                   15, "the renewed certificate served")
        harness.log(f"certificate serial {before} -> {after} without a restart")
        status, _, body, err = curl(url, *ca, "-u", f"{USER}:{PASSWORD}")
        assert status == 200 and "netprobe_info" in body, f"after the renewal: {status} {err}"
        assert netprobe.proc.poll() is None, netprobe.log()
    return 0


def test_mtls():
    harness.require_root("netprobe opens raw sockets to probe 127.0.0.1")
    harness.require_executable("/usr/bin/curl", "curl is not installed")
    if not os.path.exists("/proc/net/if_inet6"):
        harness.skip("no IPv6 on this host")
    work, files, web = tls_lab("RequireAndVerifyClientCert")
    port, port6 = harness.free_port(), harness.free_port()
    args = ["--web.config.file", web, "--web.listen-address", f"127.0.0.1:{port}",
            "--web.listen-address", f"[::1]:{port6}"]
    with start(harness.free_port(), args, "127.0.0.1", port) as netprobe:
        ca = ["--cacert", files["ca"], "-u", f"{USER}:{PASSWORD}"]
        for url in (f"https://127.0.0.1:{port}/metrics", f"https://[::1]:{port6}/metrics"):
            status, rc, body, err = curl(url, *ca, "--cert", files["client"][0], "--key", files["client"][1])
            assert status == 200 and "netprobe_info" in body, f"{url} with a client certificate: {status} {err}"
            status, rc, _, err = curl(url, *ca)
            assert status == 0 and rc != 0, f"{url} without a client certificate: HTTP {status} rc={rc}"
            harness.log(f"without a client certificate: curl rc={rc} ({err})")
            status, rc, _, err = curl(url, *ca, "--cert", files["stranger"][0], "--key", files["stranger"][1])
            assert status == 0 and rc != 0, f"{url} with another CA's certificate: HTTP {status} rc={rc}"
            harness.log(f"with another CA's client certificate: curl rc={rc} ({err})")
        assert netprobe.proc.poll() is None, netprobe.log()
    # VerifyClientCertIfGiven: no certificate is fine, a foreign one is refused in the handshake.
    work, files, web = tls_lab("VerifyClientCertIfGiven")
    port = harness.free_port()
    with start(port, ["--web.config.file", web], "127.0.0.1", port) as netprobe:
        url = f"https://127.0.0.1:{port}/metrics"
        ca = ["--cacert", files["ca"], "-u", f"{USER}:{PASSWORD}"]
        status, rc, _, err = curl(url, *ca)
        assert status == 200, f"VerifyClientCertIfGiven without a certificate: {status} rc={rc} {err}"
        status, rc, _, err = curl(url, *ca, "--cert", files["client"][0], "--key", files["client"][1])
        assert status == 200, f"VerifyClientCertIfGiven with the CA's certificate: {status} rc={rc} {err}"
        status, rc, _, err = curl(url, *ca, "--cert", files["stranger"][0], "--key", files["stranger"][1])
        assert status == 0 and rc != 0, f"VerifyClientCertIfGiven with another CA's certificate: HTTP {status}"
    return 0


def replace_web_config(work, web):
    """Rewrites web.yml the way a deployment tool does: a new file renamed over the old one."""
    tmp = write_web_config(work, web, name="web.yml.new")
    os.replace(tmp, os.path.join(work, "web.yml"))


def test_reload():
    harness.require_root("netprobe opens raw sockets to probe 127.0.0.1")
    harness.require_executable("/usr/bin/curl", "curl is not installed")
    work, files, web = tls_lab("RequireAndVerifyClientCert")
    shutil.copy(os.path.join(work, "other-ca.crt"), os.path.join(work, "new-ca.crt"))
    os.chmod(os.path.join(work, "new-ca.crt"), 0o644)
    port = harness.free_port()
    url = f"https://127.0.0.1:{port}/metrics"
    ca = ["--cacert", files["ca"]]
    client = ["--cert", files["client"][0], "--key", files["client"][1]]
    stranger = ["--cert", files["stranger"][0], "--key", files["stranger"][1]]
    new_user, new_password = "rotated", "n3w-s3cr3t"

    def reload_ok(creds):
        status, _, body, _ = curl(url, *ca, *creds)
        for line in body.splitlines():
            if line.startswith("netprobe_web_config_last_reload_successful{"):
                return float(line.rsplit(" ", 1)[1])
        return None

    with start(port, ["--web.config.file", web], "127.0.0.1", port) as netprobe:
        old = [*client, "-u", f"{USER}:{PASSWORD}"]
        status, rc, _, err = curl(url, *ca, *old, "-D", "/dev/stderr")
        assert status == 200 and "x-frame-options: deny" in err.lower(), f"at start: {status} rc={rc} {err}"
        assert reload_ok(old) == 1
        status, rc, _, _ = curl(url, *ca, *stranger, "-u", f"{USER}:{PASSWORD}")
        assert status == 0, f"another CA's client certificate at start: {status} rc={rc}"

        # A new file: other users, header value, client CA bundle and minimum version.
        tls = {"cert_file": "server.crt", "key_file": "server.key", "client_auth_type": "RequireAndVerifyClientCert",
               "client_ca_file": "new-ca.crt", "min_version": "TLS13"}
        good = {"tls_server_config": tls, "basic_auth_users": {new_user: bcrypt(new_password)},
                "http_server_config": {"headers": {"X-Frame-Options": "sameorigin"}}}
        replace_web_config(work, good)
        new = [*stranger, "-u", f"{new_user}:{new_password}"]
        harness.wait_until(lambda: curl(url, *ca, *new)[0] == 200, 15, "the new user, with the new CA's certificate")
        status, _, _, err = curl(url, *ca, *new, "-D", "/dev/stderr")
        assert status == 200 and "x-frame-options: sameorigin" in err.lower(), f"new header: {err}"
        assert reload_ok(new) == 1
        cases = [
            ("old user, new CA's certificate", [*stranger, "-u", f"{USER}:{PASSWORD}"], 401),
            ("new user, old CA's certificate", [*client, "-u", f"{new_user}:{new_password}"], 0),
            ("new user, no certificate", ["-u", f"{new_user}:{new_password}"], 0),
            ("new user over TLS 1.2 (min_version TLS13)", [*new, "--tls-max", "1.2"], 0),
        ]
        for what, args, expected in cases:
            status, rc, _, err = curl(url, *ca, *args)
            assert status == expected, f"{what}: HTTP {status}, expected {expected} (rc={rc} {err})"
        harness.log("reloaded: users, header, client CA bundle and min_version in force without a restart")

        # Bad files: each keeps the configuration in force, is logged and sets the gauge to 0.
        bad_files = [
            ("an unknown key", dict(good, bogus_key=1), "unknown key 'bogus_key'"),
            ("a missing client CA bundle",
             dict(good, tls_server_config=dict(tls, client_ca_file="missing-ca.crt")), "missing-ca.crt"),
            ("TLS turned off", {"basic_auth_users": {new_user: bcrypt(new_password)}}, "turns TLS off"),
        ]
        for what, content, says in bad_files:
            replace_web_config(work, content)
            harness.wait_until(lambda: reload_ok(new) == 0, 15, f"the gauge at 0 after {what}")
            harness.wait_until(lambda: says in netprobe.log(), 5, f"the log naming {what}")
            assert "the previous web configuration stays in force" in netprobe.log()
            status, rc, _, err = curl(url, *ca, *new)
            assert status == 200, f"after {what} the previous configuration must serve: {status} rc={rc} {err}"
            status, _, _, _ = curl(url, *ca, *stranger, "-u", f"{USER}:{PASSWORD}")
            assert status == 401, f"after {what}: the old user is back ({status})"
            replace_web_config(work, good)
            harness.wait_until(lambda: reload_ok(new) == 1, 15, f"the gauge back at 1 after {what}")
        harness.log("a broken file, a missing CA bundle and TLS turned off each kept the previous configuration")
        assert netprobe.proc.poll() is None, netprobe.log()
    return 0


def prom_query(prom_port, promql):
    url = f"http://127.0.0.1:{prom_port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    status, _, body = harness.http_get(url, timeout_s=5)
    if status != 200:
        raise AssertionError(f"{url} -> {status}: {body[:300]}")
    return [(r["metric"], float(r["value"][1])) for r in json.loads(body)["data"]["result"]]


def test_prometheus():
    harness.require_root("netprobe opens raw sockets to probe 127.0.0.1")
    harness.require_executable(PROMETHEUS, f"{PROMETHEUS} not installed (Debian package `prometheus`)")
    work, files, web = tls_lab()
    port = harness.free_port()
    with start(port, ["--web.config.file", web], "127.0.0.1", port) as netprobe:
        prom_port = harness.free_port()
        job = {"scrape_interval": "1s", "scrape_timeout": "1s", "scheme": "https",
               "tls_config": {"ca_file": files["ca"]}, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
        config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
                  "scrape_configs": [
                      dict(job, job_name="tls", basic_auth={"username": USER, "password": PASSWORD}),
                      dict(job, job_name="tls_wrong", basic_auth={"username": USER, "password": "wrong"})]}
        prom_work = harness.tmpdir("netprobe-prom-")
        prom_config = harness.write_config(config, prom_work, "prometheus.yml")
        prometheus = harness.start_process(
            [PROMETHEUS, f"--config.file={prom_config}", f"--storage.tsdb.path={os.path.join(prom_work, 'tsdb')}",
             f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
            log_path=os.path.join(prom_work, "prometheus.log"), cwd=prom_work)
        try:
            harness.wait_for_port("127.0.0.1", prom_port, 30, proc=prometheus)
            up = harness.wait_until(lambda: [v for _, v in prom_query(prom_port, 'up{job="tls"}') if v == 1], 60,
                                    'up{job="tls"} == 1')
            harness.log(f'up{{job="tls"}} = {up[0]}')
            harness.wait_until(lambda: [v for _, v in prom_query(prom_port, 'up{job="tls_wrong"}') if v == 0], 60,
                               'up{job="tls_wrong"} == 0')
            assert prom_query(prom_port, 'netprobe_info{job="tls"}'), "netprobe_info not ingested over TLS"
            assert not prom_query(prom_port, 'netprobe_info{job="tls_wrong"}'), "a wrong password was accepted"
        except BaseException:
            harness.log("prometheus log:\n" + harness.log_tail(prometheus))
            harness.log("netprobe log:\n" + netprobe.log())
            raise
        harness.stop_process(prometheus)
    return 0


PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
OM_CHECK = """
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
families = list(text_string_to_metric_families(sys.stdin.read()))
print(len(families), sum(len(f.samples) for f in families))
"""


def series(text):
    """The (name, labels) of every sample line."""
    return sorted(line.rsplit(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#"))


def test_formats():
    harness.require_root("netprobe opens raw sockets to probe 127.0.0.1")
    harness.require_executable("/usr/bin/promtool", "promtool is not installed (Debian package `prometheus`)")
    port = harness.free_port()
    with harness.Netprobe(config(port)) as netprobe:
        harness.wait_until(lambda: "icmp_rtt_seconds_bucket" in curl(netprobe.url)[2], 30, "a first iteration")
        status, _, text, err = curl(netprobe.url, "-D", "/dev/stderr")
        assert status == 200 and "content-type: text/plain; version=0.0.4" in err.lower(), err
        status, _, om, err = curl(netprobe.url, "-H", f"Accept: {PROMETHEUS_ACCEPT}", "-D", "/dev/stderr")
        assert status == 200 and "content-type: application/openmetrics-text; version=1.0.0" in err.lower(), err
    lint = subprocess.run(["/usr/bin/promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                          timeout=60)
    assert lint.returncode == 0 and not lint.stdout.strip() and not lint.stderr.strip(), \
        f"promtool check metrics on the 0.0.4 text: rc={lint.returncode} {lint.stdout} {lint.stderr}"
    assert om.endswith("\n# EOF\n") and om.count("# EOF") == 1, om[-200:]
    assert "_created" not in om, "OpenMetrics output has _created series"
    for line in om.splitlines():
        if line.startswith("# TYPE ") and line.endswith(" counter"):
            name = line.split()[2]
            assert not name.endswith("_total"), line
    assert series(om) == series(text), "OpenMetrics and 0.0.4 pages differ in their series"
    if subprocess.run(["/usr/bin/python3", "-c", "import prometheus_client"], capture_output=True).returncode != 0:
        harness.skip("python3-prometheus-client is not installed (packaging/install-deps.sh)")
    parsed = subprocess.run(["/usr/bin/python3", "-c", OM_CHECK], input=om, capture_output=True, text=True, timeout=60)
    assert parsed.returncode == 0, f"prometheus_client's OpenMetrics parser refused the page: {parsed.stderr[-2000:]}"
    harness.log(f"0.0.4: promtool check metrics clean; OpenMetrics: {parsed.stdout.split()[0]} families, "
                f"{parsed.stdout.split()[1]} samples parsed by prometheus_client, the same {len(series(text))} series")
    return 0


if __name__ == "__main__":
    scenario = sys.argv[1] if len(sys.argv) > 1 else "listen"
    harness.main({"listen": test_listen, "tls": test_tls, "mtls": test_mtls,
                  "prometheus": test_prometheus, "formats": test_formats,
                  "reload": test_reload}[scenario])
