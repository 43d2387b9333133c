"""The fullmesh plug-in: every other ToR as an UDPunreachable target, the probe's own switch excluded, groups
from rules (match / same / differ), sources in CSV, JSON, YAML, the netbox devices_file and a netprobe
document; the list re-read when the file changes."""

import json
import os
import subprocess
import tempfile
import time
import unittest

from plugin_util import INVENTORIES, check_document, run_plugin, split_documents, write_config

TORS_CSV = """hostname,address,site,pod
par1-tor-01,10.1.1.1,par1,p1
par1-tor-02,10.1.1.2/32,par1,p1
par1-tor-03,10.1.2.1,par1,p2
ams1-tor-01,10.2.1.1,ams1,p1
# decommissioned,10.9.9.9,par1,p9
"""

RULES = {
    "group_rules": [
        {"same": ["site", "pod"], "groups": ["intra-pod"]},
        {"same": ["site"], "differ": ["pod"], "groups": ["inter-pod"]},
        {"differ": ["site"], "groups": ["to-{site}"]},
        {"match": {"pod": ["p2"]}, "groups": ["pod2"]},
    ],
    "default_groups": ["mesh"],
}


class FullmeshTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        with open(os.path.join(self.dir.name, "tors.csv"), "w") as f:
            f.write(TORS_CSV)

    def tearDown(self):
        self.dir.cleanup()

    def run_with(test, **config):
        # `test`, not `self`: `self` is a setting of the plug-in (its own switch).
        rc, docs, err = run_plugin("fullmesh", write_config(test.dir.name, "fullmesh", config), test.dir.name)
        test.assertEqual(rc, 0, err)
        test.assertEqual(len(docs), 1)
        check_document(test, docs[0])
        return {t["hostname"]: t for t in docs[0]["targets"]}, err

    def test_every_other_tor_with_group_rules(self):
        targets, _ = self.run_with(source="tors.csv", self="par1-tor-01", **RULES)
        self.assertEqual(sorted(targets), ["ams1-tor-01", "par1-tor-02", "par1-tor-03"])
        self.assertEqual(targets["par1-tor-02"], {"hostname": "par1-tor-02", "destination": "10.1.1.2",
                                                  "type": "UDPunreachable", "dst_port": 33434,
                                                  "groups": ["intra-pod"]})
        self.assertEqual(targets["par1-tor-03"]["groups"], ["inter-pod", "pod2"])
        self.assertEqual(targets["ams1-tor-01"]["groups"], ["to-ams1"])

    def test_defaults_port_type_and_target_keys(self):
        targets, _ = self.run_with(source="tors.csv", self="ams1-tor-01.example.net", dst_port=33500,
                                   target={"nb_packets": 10, "threshold": {"loss": 0.01}})
        self.assertEqual(sorted(targets), ["par1-tor-01", "par1-tor-02", "par1-tor-03"])  # FQDN self matched
        t = targets["par1-tor-01"]
        self.assertEqual((t["dst_port"], t["groups"], t["nb_packets"], t["threshold"]), (33500, ["mesh"], 10, {"loss": 0.01}))
        targets, _ = self.run_with(source="tors.csv", self="par1-tor-01", type="ICMPping")
        self.assertNotIn("dst_port", targets["par1-tor-02"])

    def test_self_defaults_to_the_machines_hostname(self):
        import socket
        me = socket.gethostname().split(".")[0]
        with open(os.path.join(self.dir.name, "tors.csv"), "a") as f:
            f.write(f"{me},10.3.3.3,par1,p1\n")
        targets, err = self.run_with(source="tors.csv")
        self.assertNotIn(me, targets)
        self.assertEqual(len(targets), 4)
        os.remove(os.path.join(self.dir.name, "tors.csv"))
        with open(os.path.join(self.dir.name, "tors.csv"), "w") as f:
            f.write(TORS_CSV)
        targets, err = self.run_with(source="tors.csv", self="not-a-tor")
        self.assertEqual(len(targets), 4)
        self.assertIn("'not-a-tor' is not in the list", err)

    def test_json_yaml_netbox_devices_file_and_netprobe_document(self):
        devices = {"devices": [
            {"id": 1, "hostname": "par1-tor-01", "address": "10.1.1.1", "site": "par1", "role": "tor"},
            {"id": 2, "hostname": "par1-tor-02", "address": "10.1.1.2", "site": "par1", "role": "tor"},
            {"id": 6, "hostname": "ams1-tor-01", "address": "10.2.1.1", "site": "ams1", "role": "tor"}]}
        with open(os.path.join(self.dir.name, "devices.json"), "w") as f:
            json.dump(devices, f)
        targets, _ = self.run_with(source="devices.json", self="par1-tor-01",
                                   group_rules=[{"differ": ["site"], "groups": ["wan"]}])
        self.assertEqual({k: v["groups"] for k, v in targets.items()}, {"par1-tor-02": ["mesh"], "ams1-tor-01": ["wan"]})

        with open(os.path.join(self.dir.name, "tors.yaml"), "w") as f:
            f.write("- hostname: a\n  address: 10.0.0.1\n- hostname: b\n  address: 10.0.0.2\n")
        targets, _ = self.run_with(source="tors.yaml", self="a")
        self.assertEqual(list(targets), ["b"])

        document = {"targets": [
            {"hostname": "x", "destination": "10.0.0.1", "type": "ICMPping", "groups": ["par1"]},
            {"hostname": "y", "destination": "10.0.0.2", "type": "ICMPping", "groups": ["ams1"]}]}
        with open(os.path.join(self.dir.name, "netbox-output.json"), "w") as f:
            json.dump(document, f)
        targets, _ = self.run_with(source="netbox-output.json", self="z",
                                   group_rules=[{"match": {"groups": "ams1"}, "groups": ["remote"]}])
        self.assertEqual({k: v["groups"] for k, v in targets.items()}, {"x": ["mesh"], "y": ["remote"]})

    def test_bad_source(self):
        rc, docs, err = run_plugin("fullmesh", write_config(self.dir.name, "fullmesh", {"source": "nope.csv"}),
                                   self.dir.name)
        self.assertEqual((rc, docs), (1, []))
        self.assertIn("cannot read nope.csv", err)
        rc, docs, err = run_plugin("fullmesh", write_config(self.dir.name, "fullmesh", {
            "source": "tors.csv", "group_rules": [{"same": ["pod"]}]}), self.dir.name)
        self.assertEqual(rc, 1)
        self.assertIn("group_rules[0]: expected a mapping with `groups`", err)

    def test_file_change_gives_a_new_document(self):
        config = write_config(self.dir.name, "fullmesh", {"source": "tors.csv", "self": "par1-tor-01", "refresh": 0.1})
        p = subprocess.Popen([os.path.join(INVENTORIES, "fullmesh"), config], cwd=self.dir.name,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(1)
            with open(os.path.join(self.dir.name, "tors.csv"), "a") as f:
                f.write("par1-tor-09,10.1.1.9,par1,p1\n")
            time.sleep(1)
        finally:
            p.terminate()
            out, _ = p.communicate(timeout=10)
        docs = split_documents(out)
        self.assertEqual(len(docs), 2)
        self.assertEqual(len(docs[0]["targets"]) + 1, len(docs[1]["targets"]))


if __name__ == "__main__":
    unittest.main()
