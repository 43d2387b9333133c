"""The exporter-toolkit web configuration table test (issue 15): every file below goes through
`promtool check web-config` (Debian 12's Prometheus 2.42, exporter-toolkit v0.8: the oracle) and
`netprobe check-web-config`; both must give the same verdict (netprobe: exit 0, or 78 with a message),
except the rows marked as a deliberate difference (docs/http-server.md says why).

Needs only openssl (certificates made here) and promtool; no root, no network.
"""
import json
import os
import subprocess
import sys
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt

PROMTOOL = os.environ.get("PROMTOOL_BIN", "/usr/bin/promtool")
EX_CONFIG = 78


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def bcrypt(prefix, password="pw", cost=4):
    h = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=2 ** cost))  # $2b$
    return prefix + h[4:]


TLS = {"cert_file": "server.crt", "key_file": "server.key"}
CA = {"client_ca_file": "ca.crt"}
OK, BAD = True, False

# (name, file content (dict -> JSON, str -> as is), promtool's verdict, netprobe's verdict[, what both errors
# must name])
CASES = [
    ("empty file", "", OK, OK),
    ("empty mapping", {}, OK, OK),
    ("comment only", "# nothing\n", OK, OK),
    ("users $2y$", {"basic_auth_users": {"alice": bcrypt("$2y$")}}, OK, OK),
    ("users $2a$ and $2b$", {"basic_auth_users": {"a": bcrypt("$2a$"), "b": bcrypt("$2b$", cost=5)}}, OK, OK),
    ("tls cert and key", {"tls_server_config": TLS}, OK, OK),
    ("tls absolute paths", {"tls_server_config": {"cert_file": "@/server.crt", "key_file": "@/server.key"}}, OK, OK),
    ("tls 1.3 only", {"tls_server_config": dict(TLS, min_version="TLS13", max_version="TLS13")}, OK, OK),
    ("tls 1.0 to 1.2", {"tls_server_config": dict(TLS, min_version="TLS10", max_version="TLS12")}, OK, OK),
    ("cipher suites", {"tls_server_config": dict(TLS, cipher_suites=[
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"])}, OK, OK),
    ("curves", {"tls_server_config": dict(TLS, curve_preferences=["X25519", "CurveP256", "CurveP384"])}, OK, OK),
    ("prefer_server_cipher_suites false", {"tls_server_config": dict(TLS, prefer_server_cipher_suites=False)},
     OK, OK),
    ("mutual TLS", {"tls_server_config": dict(TLS, client_auth_type="RequireAndVerifyClientCert", **CA)}, OK, OK),
    ("VerifyClientCertIfGiven", {"tls_server_config": dict(TLS, client_auth_type="VerifyClientCertIfGiven", **CA)},
     OK, OK),
    ("RequireClientCert (old name)", {"tls_server_config": dict(TLS, client_auth_type="RequireClientCert")}, OK, OK),
    ("RequestClientCert", {"tls_server_config": dict(TLS, client_auth_type="RequestClientCert")}, OK, OK),
    ("NoClientCert", {"tls_server_config": dict(TLS, client_auth_type="NoClientCert")}, OK, OK),
    ("all headers", {"http_server_config": {"headers": {
        "Strict-Transport-Security": "max-age=31536000", "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "sameorigin", "X-XSS-Protection": "1; mode=block",
        "Content-Security-Policy": "default-src 'self'"}}}, OK, OK),
    ("http2 false", {"http_server_config": {"http2": False}}, OK, OK),
    ("http2 yes (YAML 1.1)", "http_server_config:\n  http2: yes\n", OK, OK),
    ("empty tls section", {"tls_server_config": {}}, OK, OK),
    ("min_version without TLS (unused)", {"tls_server_config": {"min_version": "TLS10"}}, OK, OK),
    ("everything", {"tls_server_config": dict(TLS, client_auth_type="RequireAndVerifyClientCert", min_version="TLS12",
                                              **CA),
                    "http_server_config": {"headers": {"X-Frame-Options": "deny"}},
                    "basic_auth_users": {"alice": bcrypt("$2y$"), "bob": bcrypt("$2b$")}}, OK, OK),
    # Rejected by both.
    ("unknown top-level key", {"tls_config": TLS}, BAD, BAD),
    ("unknown tls key", {"tls_server_config": dict(TLS, cert="inline")}, BAD, BAD),
    ("unknown http key", {"http_server_config": {"http3": True}}, BAD, BAD),
    ("cert_file only", {"tls_server_config": {"cert_file": "server.crt"}}, BAD, BAD),
    ("key_file only", {"tls_server_config": {"key_file": "server.key"}}, BAD, BAD),
    ("client_auth_type only", {"tls_server_config": {"client_auth_type": "RequireAndVerifyClientCert"}}, BAD, BAD),
    ("missing cert file", {"tls_server_config": dict(TLS, cert_file="nope.crt")}, BAD, BAD),
    ("key of another certificate", {"tls_server_config": dict(TLS, key_file="other.key")}, BAD, BAD),
    ("key file as certificate", {"tls_server_config": dict(TLS, cert_file="server.key")}, BAD, BAD),
    ("unknown cipher", {"tls_server_config": dict(TLS, cipher_suites=["TLS_FAST_AND_LOOSE"])}, BAD, BAD),
    ("insecure cipher", {"tls_server_config": dict(TLS, cipher_suites=["TLS_RSA_WITH_RC4_128_SHA"])}, BAD, BAD),
    ("OpenSSL cipher name", {"tls_server_config": dict(TLS, cipher_suites=["ECDHE-RSA-AES128-GCM-SHA256"])}, BAD, BAD),
    ("unknown curve", {"tls_server_config": dict(TLS, curve_preferences=["P-256"])}, BAD, BAD),
    ("unknown TLS version", {"tls_server_config": dict(TLS, min_version="TLS14")}, BAD, BAD),
    ("unknown TLS version, no TLS", {"tls_server_config": {"max_version": "SSL3"}}, BAD, BAD),
    ("unknown client_auth_type", {"tls_server_config": dict(TLS, client_auth_type="Maybe")}, BAD, BAD),
    ("CA without client auth", {"tls_server_config": dict(TLS, **CA)}, BAD, BAD),
    ("missing CA file", {"tls_server_config": dict(TLS, client_auth_type="RequireAndVerifyClientCert",
                                                   client_ca_file="nope.crt")}, BAD, BAD),
    ("header not settable", {"http_server_config": {"headers": {"X-Powered-By": "netprobe"}}}, BAD, BAD),
    ("header name in lower case", {"http_server_config": {"headers": {"x-frame-options": "deny"}}}, BAD, BAD),
    ("X-Frame-Options value", {"http_server_config": {"headers": {"X-Frame-Options": "allowall"}}}, BAD, BAD),
    ("X-Content-Type-Options value", {"http_server_config": {"headers": {"X-Content-Type-Options": "sniff"}}},
     BAD, BAD),
    ("plain-text password", {"basic_auth_users": {"alice": "secret"}}, BAD, BAD),
    ("sha512-crypt hash", {"basic_auth_users": {"alice": crypt.crypt("pw", crypt.mksalt(crypt.METHOD_SHA512))}},
     BAD, BAD),
    ("bcrypt cost 03", {"basic_auth_users": {"alice": "$2y$03$" + bcrypt("$2y$")[7:]}}, BAD, BAD),
    ("bcrypt cost 32", {"basic_auth_users": {"alice": "$2y$32$" + bcrypt("$2y$")[7:]}}, BAD, BAD),
    ("empty hash", {"basic_auth_users": {"alice": ""}}, BAD, BAD),
    ("users as a list", {"basic_auth_users": ["alice"]}, BAD, BAD),
    ("tls section as a list", {"tls_server_config": ["cert_file"]}, BAD, BAD),
    ("http2 not a boolean", {"http_server_config": {"http2": "maybe"}}, BAD, BAD),
    ("repeated key", "basic_auth_users: {}\nbasic_auth_users: {}\n", BAD, BAD),
    ("YAML syntax error", "tls_server_config: [\n", BAD, BAD),
    ("not a mapping", "just text\n", BAD, BAD),
    # Newer exporter-toolkit keys (rate_limit: v0.11, client_allowed_sans: v0.10, inline cert/key/client_ca:
    # v0.9): promtool 2.42 (v0.8) rejects them, so netprobe does, naming the key (docs/http-server.md).
    ("rate_limit", {"rate_limit": {"interval": "1s", "burst": 10}}, BAD, BAD, "rate_limit"),
    ("rate_limit empty", {"rate_limit": {}}, BAD, BAD, "rate_limit"),
    ("rate_limit in http_server_config", {"http_server_config": {"rate_limit": {"interval": "1s", "burst": 1}}},
     BAD, BAD, "rate_limit"),
    ("client_allowed_sans", {"tls_server_config": dict(TLS, client_auth_type="RequireAndVerifyClientCert",
                                                       client_allowed_sans=["client.example"], **CA)},
     BAD, BAD, "client_allowed_sans"),
    ("client_allowed_sans empty", {"tls_server_config": dict(TLS, client_allowed_sans=[])}, BAD, BAD,
     "client_allowed_sans"),
    ("inline key", {"tls_server_config": {"cert_file": "server.crt", "key": "-----BEGIN PRIVATE KEY-----"}},
     BAD, BAD, "key"),
    ("inline client_ca", {"tls_server_config": dict(TLS, client_auth_type="RequireAndVerifyClientCert",
                                                    client_ca="-----BEGIN CERTIFICATE-----")}, BAD, BAD, "client_ca"),
    # Deliberate difference: Go accepts it and then fails every handshake; netprobe says so at start.
    ("min_version above max_version", {"tls_server_config": dict(TLS, min_version="TLS13", max_version="TLS12")},
     OK, BAD),
]


def make_files(work):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            os.path.join(work, "ca.key"), "-out", os.path.join(work, "ca.crt"), "-days", "2", "-subj", "/CN=ca")
    for name in ("server", "other"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                os.path.join(work, f"{name}.key"), "-out", os.path.join(work, f"{name}.crt"), "-days", "2",
                "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1")


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return p.returncode, (p.stdout + p.stderr).strip()


def test():
    harness.require_executable(PROMTOOL, f"{PROMTOOL} not installed (Debian package `prometheus`)")
    harness.require_executable("/usr/bin/openssl", "openssl is not installed")
    binary = harness.netprobe_bin()
    work = harness.tmpdir("netprobe-webcfg-")
    make_files(work)
    failures = []
    for i, (name, content, promtool_ok, netprobe_ok, *names) in enumerate(CASES):
        text = content if isinstance(content, str) else json.dumps(content)
        text = text.replace("@/", work + "/")
        path = os.path.join(work, f"case{i:02d}.yml")
        with open(path, "w") as f:
            f.write(text)
        p_rc, p_out = run([PROMTOOL, "check", "web-config", path])
        n_rc, n_out = run([binary, "check-web-config", path])
        line = f"{name:38} promtool {'OK ' if p_rc == 0 else 'BAD'}  netprobe {'OK ' if n_rc == 0 else 'BAD'}"
        harness.log(line + ("" if n_rc == 0 else f"  | {n_out.splitlines()[-1] if n_out else ''}"))
        if (p_rc == 0) != promtool_ok:
            failures.append(f"{name}: promtool says {p_rc} (expected {'OK' if promtool_ok else 'rejected'}): {p_out}")
        if (n_rc == 0) != netprobe_ok or (n_rc != 0 and (n_rc != EX_CONFIG or not n_out)):
            failures.append(f"{name}: netprobe exit {n_rc} (expected {'0' if netprobe_ok else EX_CONFIG}): {n_out}")
        for key in names:  # rejected the same way: both name the key
            if f"{key} not found" not in p_out or f"unknown key '{key}'" not in n_out:
                failures.append(f"{name}: both must name {key!r}: promtool {p_out!r}, netprobe {n_out!r}")
    assert not failures, "\n".join(failures)
    same = sum(1 for c in CASES if c[2] == c[3])
    harness.log(f"{len(CASES)} files: {same} with promtool's verdict, {len(CASES) - same} deliberate difference(s)")
    return 0


if __name__ == "__main__":
    harness.main(test)
