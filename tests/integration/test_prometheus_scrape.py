"""A real Prometheus server scrapes the real netprobe over HTTP basic auth.

netprobe runs a loopback-only configuration (ICMPping to 127.0.0.1) with PROM_USER/PROM_PASSWORD set;
/usr/bin/prometheus (Debian package `prometheus`) listens on 127.0.0.1:<free port> with a temporary
TSDB and scrapes it every second through two jobs: `netprobe` with the right credentials, which must
come up (up == 1) and bring netprobe_info in, and `netprobe_wrong_auth`, which must stay down (up == 0).
Both are asserted through Prometheus' HTTP API, each within a bounded time.

The configuration also has BULK_TARGETS more loopback targets in BULK_GROUPS groups, so that the page (~4 MB of
text, ~0.1 MB gzipped) is larger than one 64 KiB piece of the exporter: it is streamed, chunked and gzipped to
Prometheus, which must ingest every series of it (src/metrics/exporter.h).
"""
import json
import os
import sys
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness  # noqa: E402

PROMETHEUS = os.environ.get("PROMETHEUS_BIN", "/usr/bin/prometheus")
USER, PASSWORD = "prom_it", "s3cr3t-it"
DEADLINE_S = 60
BULK_TARGETS, BULK_GROUPS = 60, 20  # 1 probe per target and group per 1 s iteration: 1,220 ICMP echoes/s to 127.0.0.1


def prometheus_config(netprobe_port):
    target = {"targets": [f"127.0.0.1:{netprobe_port}"]}
    job = {"scrape_interval": "1s", "scrape_timeout": "1s", "metrics_path": "/metrics", "static_configs": [target]}
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            dict(job, job_name="netprobe", basic_auth={"username": USER, "password": PASSWORD}),
            dict(job, job_name="netprobe_wrong_auth", basic_auth={"username": USER, "password": "wrong"}),
        ],
    }


def query(prom_port, promql):
    """Instant query -> list of (labels, float value); raises on an API error."""
    url = f"http://127.0.0.1:{prom_port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    status, _, body = harness.http_get(url, timeout_s=5)
    if status != 200:
        raise AssertionError(f"{url} -> {status}: {body[:300]}")
    data = json.loads(body)
    if data.get("status") != "success":
        raise AssertionError(f"{promql}: {data}")
    return [(r["metric"], float(r["value"][1])) for r in data["data"]["result"]]


def single_value(prom_port, promql):
    result = query(prom_port, promql)
    return result[0][1] if len(result) == 1 else None


def test():
    harness.require_root("netprobe opens raw sockets to probe 127.0.0.1")
    harness.require_executable(PROMETHEUS, f"{PROMETHEUS} not installed (Debian package `prometheus`)")

    netprobe_port = harness.free_port()
    targets = {"loopback": {"type": "ICMPping", "destination": "127.0.0.1", "timeout": 0.5}}
    targets.update({f"bulk{i:02d}": {"type": "ICMPping", "destination": "127.0.0.1", "timeout": 0.5}
                    for i in range(BULK_TARGETS)})
    groups = {f"g{g:02d}": {"src_port_a": 65000, "src_port_z": 65001} for g in range(BULK_GROUPS)}
    config = harness.base_config(port=netprobe_port, probe_name="it_scrape", targets=targets, groups=groups)
    series = (BULK_TARGETS + 1) * BULK_GROUPS  # icmp_sent_total series: every target joins every group

    with harness.Netprobe(config, auth=(USER, PASSWORD)) as netprobe:
        # The endpoint itself, before involving Prometheus: auth enforced, versioned Content-Type.
        status, headers, _ = netprobe.scrape(auth=None)
        assert status == 401, f"unauthenticated scrape returned {status}"
        status, headers, body = netprobe.scrape()
        assert status == 200, f"authenticated scrape returned {status}: {body[:200]}"
        assert headers.get("content-type", "").startswith("text/plain; version=0.0.4"), headers
        samples = harness.parse_metrics(body)
        assert harness.select(samples, "netprobe_info"), "netprobe_info missing from /metrics"
        # Larger than one piece: streamed to this HTTP/1.1 client in chunks, every series there.
        assert headers.get("transfer-encoding") == "chunked", headers
        assert len(harness.select(samples, "icmp_sent_total")) == series, len(harness.select(samples, "icmp_sent_total"))

        prom_port = harness.free_port()
        work = harness.tmpdir("netprobe-prom-")
        prom_config = harness.write_config(prometheus_config(netprobe_port), work, "prometheus.yml")
        prometheus = harness.start_process(
            [PROMETHEUS, f"--config.file={prom_config}", f"--storage.tsdb.path={os.path.join(work, 'tsdb')}",
             f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
            log_path=os.path.join(work, "prometheus.log"), cwd=work)
        harness.wait_for_port("127.0.0.1", prom_port, 30, proc=prometheus)
        harness.wait_until(lambda: harness.http_get(f"http://127.0.0.1:{prom_port}/-/ready", timeout_s=2)[0] == 200,
                           30, "Prometheus /-/ready")

        try:
            harness.wait_until(lambda: single_value(prom_port, 'up{job="netprobe"}') == 1, DEADLINE_S,
                               'up{job="netprobe"} == 1')
            info = harness.wait_until(lambda: query(prom_port, 'netprobe_info{job="netprobe"}'), DEADLINE_S,
                                      "netprobe_info in Prometheus")
            assert info[0][1] == 1, info
            # The whole chunked, gzipped page was ingested.
            harness.wait_until(lambda: single_value(prom_port, 'count(icmp_sent_total{job="netprobe"})') == series,
                               DEADLINE_S, f"{series} icmp_sent_total series in Prometheus")
            harness.wait_until(lambda: single_value(prom_port, 'up{job="netprobe_wrong_auth"}') == 0, DEADLINE_S,
                               'up{job="netprobe_wrong_auth"} == 0')
            # The wrong-credentials job must never have ingested a sample of netprobe's own.
            assert not query(prom_port, 'netprobe_info{job="netprobe_wrong_auth"}'), "wrong credentials were accepted"
        except BaseException:
            harness.log("prometheus log:\n" + harness.log_tail(prometheus))
            harness.log("netprobe log:\n" + netprobe.log())
            raise
        harness.stop_process(prometheus)
    return 0


if __name__ == "__main__":
    harness.main(test)
