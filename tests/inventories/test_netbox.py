"""The netbox plug-in against a fake NetBox (http.server on 127.0.0.1) that serves recorded device objects
the way NetBox's API does: token auth, role/site/status filters, limit/offset pagination with absolute
`next` links."""

import json
import os
import tempfile
import threading
import unittest
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from plugin_util import check_document, run_plugin, write_config

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "netbox_devices.json")
TOKEN = "0123456789abcdef0123456789abcdef01234567"


class FakeNetBox(BaseHTTPRequestHandler):
    with open(FIXTURE) as f:
        devices = json.load(f)["devices"]
    requests = []          # (path, query) of every request
    fail_with = None       # an HTTP status to answer everything with

    def log_message(self, *args):
        pass

    def send_json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        FakeNetBox.requests.append((url.path, query))
        if FakeNetBox.fail_with:
            return self.send_json(FakeNetBox.fail_with, {"detail": "Internal error"})
        if self.headers.get("Authorization") != f"Token {TOKEN}":
            return self.send_json(403, {"detail": "Invalid token"})
        if url.path != "/api/dcim/devices/":
            return self.send_json(404, {"detail": "Not found."})
        selected = [d for d in self.devices
                    if d["role"]["slug"] in query.get("role", [d["role"]["slug"]])
                    and d["site"]["slug"] in query.get("site", [d["site"]["slug"]])
                    and d["status"]["value"] in query.get("status", [d["status"]["value"]])]
        limit = int(query.get("limit", ["50"])[0])
        offset = int(query.get("offset", ["0"])[0])
        page = selected[offset:offset + limit]

        def link(new_offset):
            q = {k: v for k, v in query.items() if k != "offset"}
            q["offset"] = [str(new_offset)]
            return f"http://{self.headers['Host']}{url.path}?{urllib.parse.urlencode(q, doseq=True)}"

        self.send_json(200, {
            "count": len(selected),
            "next": link(offset + limit) if offset + limit < len(selected) else None,
            "previous": link(max(0, offset - limit)) if offset > 0 else None,
            "results": page,
        })


class NetBoxPluginTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = ThreadingHTTPServer(("127.0.0.1", 0), FakeNetBox)
        cls.url = f"http://127.0.0.1:{cls.server.server_address[1]}"
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        FakeNetBox.requests = []
        FakeNetBox.fail_with = None

    def tearDown(self):
        self.dir.cleanup()

    def config(self, **overrides):
        config = {"url": self.url, "token": TOKEN, "filters": {"role": "tor", "site": "par1", "status": "active"},
                  "page_size": 2, "target": {"type": "UDPunreachable", "dst_port": 33434, "groups": ["mesh"],
                                             "nb_packets": 5}}
        config.update(overrides)
        return write_config(self.dir.name, "netbox", config)

    def test_devices_over_several_pages(self):
        rc, docs, err = run_plugin("netbox", self.config(), self.dir.name)
        self.assertEqual(rc, 0, err)
        self.assertEqual(len(docs), 1)
        check_document(self, docs[0])
        targets = {t["hostname"]: t for t in docs[0]["targets"]}
        # tor-03 has only an IPv6 primary address; tor-04 is offline; spine and ams1 are filtered out.
        self.assertEqual(sorted(targets), ["device-8", "par1-tor-01", "par1-tor-02", "par1-tor-05", "par1-tor-06"])
        self.assertEqual(targets["par1-tor-01"], {
            "hostname": "par1-tor-01", "destination": "10.1.1.1", "address_family": "ipv4",
            "type": "UDPunreachable", "dst_port": 33434, "groups": ["mesh"], "nb_packets": 5})
        self.assertEqual(targets["par1-tor-05"]["destination"], "10.1.1.5")  # prefix length removed
        self.assertIn("without a primary ipv4 address skipped: par1-tor-03", err)
        # 6 matching devices, 2 per page: 3 requests following `next`, with the filters on every page.
        self.assertEqual(len(FakeNetBox.requests), 3)
        for path, query in FakeNetBox.requests:
            self.assertEqual(path, "/api/dcim/devices/")
            self.assertEqual((query["role"], query["site"], query["status"], query["limit"]),
                             (["tor"], ["par1"], ["active"], ["2"]))
        self.assertEqual([q.get("offset") for _, q in FakeNetBox.requests], [None, ["2"], ["4"]])

    def test_ipv6_and_both_families(self):
        rc, docs, err = run_plugin("netbox", self.config(address_family="ipv6"), self.dir.name)
        self.assertEqual(rc, 0, err)
        self.assertEqual([(t["hostname"], t["destination"]) for t in docs[0]["targets"]],
                         [("par1-tor-01", "2001:db8:1::1"), ("par1-tor-03", "2001:db8:1::3")])
        rc, docs, err = run_plugin("netbox", self.config(address_family="both"), self.dir.name)
        self.assertEqual(rc, 0, err)
        names = [t["hostname"] for t in docs[0]["targets"]]
        self.assertIn("par1-tor-01_ipv4", names)
        self.assertIn("par1-tor-01_ipv6", names)

    def test_list_filters_and_devices_file(self):
        devices_file = os.path.join(self.dir.name, "devices.json")
        rc, docs, err = run_plugin("netbox", self.config(filters={"role": "tor", "site": ["par1", "ams1"]},
                                                         devices_file="devices.json"), self.dir.name)
        self.assertEqual(rc, 0, err)
        names = [t["hostname"] for t in docs[0]["targets"]]
        self.assertIn("ams1-tor-01", names)
        self.assertIn("par1-tor-04", names)  # no status filter
        self.assertEqual(FakeNetBox.requests[0][1]["site"], ["par1", "ams1"])  # repeated parameter, as NetBox wants
        with open(devices_file) as f:
            devices = json.load(f)["devices"]
        tor1 = next(d for d in devices if d["hostname"] == "par1-tor-01")
        self.assertEqual(tor1, {"id": 1, "hostname": "par1-tor-01", "address": "10.1.1.1", "address_family": "ipv4",
                                "site": "par1", "role": "tor", "rack": "R01", "tenant": None, "status": "active"})

    def test_bad_token_exits_non_zero_with_a_message(self):
        rc, docs, err = run_plugin("netbox", self.config(token="wrong"), self.dir.name)
        self.assertEqual(rc, 1)
        self.assertEqual(docs, [])
        self.assertIn("HTTP 403", err)
        self.assertIn("Invalid token", err)

    def test_server_error_and_unreachable(self):
        FakeNetBox.fail_with = 500
        rc, docs, err = run_plugin("netbox", self.config(), self.dir.name)
        self.assertEqual(rc, 1)
        self.assertIn("HTTP 500", err)
        rc, docs, err = run_plugin("netbox", self.config(url="http://127.0.0.1:1", timeout=5), self.dir.name)
        self.assertEqual(rc, 1)
        self.assertIn("GET http://127.0.0.1:1/api/dcim/devices/", err)

    def test_missing_settings(self):
        rc, _, err = run_plugin("netbox", write_config(self.dir.name, "netbox", {"token": TOKEN}), self.dir.name)
        self.assertEqual(rc, 1)
        self.assertIn("missing setting(s): url", err)
        rc, _, err = run_plugin("netbox", self.config(target={"type": "ICMPping", "groups": ["g"], "colour": 1}),
                                self.dir.name)
        self.assertEqual(rc, 1)
        self.assertIn("unknown target key(s) colour", err)

    def test_long_running_writes_again_only_on_change(self):
        # Without --once the plug-in loops; refresh 0.2 s; stop it after ~1.5 s: one document only, since
        # NetBox's answer did not change, and NetBox was read several times.
        import subprocess
        import time
        from plugin_util import INVENTORIES, split_documents
        p = subprocess.Popen([os.path.join(INVENTORIES, "netbox"), self.config(refresh=0.2)], cwd=self.dir.name,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        p.terminate()
        out, _ = p.communicate(timeout=10)
        self.assertEqual(len(split_documents(out)), 1)
        self.assertGreater(len(FakeNetBox.requests), 6)


if __name__ == "__main__":
    unittest.main()
