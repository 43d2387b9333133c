"""The csv plug-in: columns to target keys, defaults, comments, bad cells, unknown columns, re-read on change."""

import os
import subprocess
import tempfile
import time
import unittest

from plugin_util import INVENTORIES, check_document, run_plugin, split_documents, write_config

CSV = """hostname,destination,type,dst_port,groups,nb_packets,dont_fragment,lifetime,threshold_loss,state
# a comment line
web,192.0.2.10,TCPsyn,443,transit1;transit2,10,no,1d2h,0.05,in production
dns,2001:db8::53,ICMPping,,,,,3600,,
"""


class CsvTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.write(CSV)

    def tearDown(self):
        self.dir.cleanup()

    def write(self, text, name="targets.csv"):
        with open(os.path.join(self.dir.name, name), "w") as f:
            f.write(text)

    def test_columns_and_defaults(self):
        config = write_config(self.dir.name, "csv", "file: targets.csv\ndefaults:\n  groups: [default]\n  nb_packets: 3\n")
        rc, docs, err = run_plugin("csv", config, self.dir.name)
        self.assertEqual(rc, 0, err)
        self.assertEqual(len(docs), 1)
        check_document(self, docs[0])
        web, dns = docs[0]["targets"]
        self.assertEqual(web, {"hostname": "web", "destination": "192.0.2.10", "type": "TCPsyn", "dst_port": 443,
                               "groups": ["transit1", "transit2"], "nb_packets": 10, "dont_fragment": False,
                               "lifetime": "1d2h", "threshold": {"loss": 0.05}, "state": "in production"})
        self.assertEqual(dns, {"hostname": "dns", "destination": "2001:db8::53", "type": "ICMPping",
                               "groups": ["default"], "nb_packets": 3, "lifetime": 3600})

    def test_no_configuration_reads_targets_csv(self):
        rc, docs, err = run_plugin("csv", None, self.dir.name)
        self.assertEqual(rc, 0, err)
        self.assertEqual([t["hostname"] for t in docs[0]["targets"]], ["web", "dns"])

    def test_bad_cell_is_passed_for_netprobe_to_reject(self):
        self.write("hostname,destination,type,dst_port,groups\na,10.0.0.1,TCPsyn,https,g\n")
        rc, docs, err = run_plugin("csv", None, self.dir.name)
        self.assertEqual(rc, 0, err)
        self.assertEqual(docs[0]["targets"][0]["dst_port"], "https")
        self.assertIn("line 2: dst_port: 'https' is not valid", err)

    def test_unknown_column_and_empty_file(self):
        self.write("hostname,destination,colour\n")
        rc, docs, err = run_plugin("csv", None, self.dir.name)
        self.assertEqual((rc, docs), (1, []))
        self.assertIn("unknown column(s) colour", err)
        self.write("")
        rc, docs, err = run_plugin("csv", None, self.dir.name)
        self.assertEqual(rc, 1)
        self.assertIn("empty file", err)

    def test_reread_on_change(self):
        config = write_config(self.dir.name, "csv", {"file": "targets.csv", "refresh": 0.1})
        p = subprocess.Popen([os.path.join(INVENTORIES, "csv"), config], cwd=self.dir.name,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(0.8)
            self.write(CSV + "ntp,192.0.2.123,UDPunreachable,33434,g,,,,,\n")
            time.sleep(0.8)
            os.utime(os.path.join(self.dir.name, "targets.csv"))  # touched, same content: no new document
            time.sleep(0.8)
        finally:
            p.terminate()
            out, _ = p.communicate(timeout=10)
        docs = split_documents(out)
        self.assertEqual([len(d["targets"]) for d in docs], [2, 3])


if __name__ == "__main__":
    unittest.main()
