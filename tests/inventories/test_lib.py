"""_netprobe_inventory.py: the YAML subset read when PyYAML is not installed, and the framing of emit()."""

import io
import unittest
from contextlib import redirect_stdout

from plugin_util import split_documents  # also puts inventories/ on sys.path

import _netprobe_inventory as lib  # noqa: E402


class MiniYamlTest(unittest.TestCase):
    def parse(self, text):
        return lib._MiniYaml(text).parse()

    def test_configuration_shapes(self):
        text = """
# comment
url: https://netbox.example.com   # trailing comment
token: "abc#def"
filters:
  role: tor
  site: [par1, par2]
page_size: 200
verify_tls: no
ratio: 0.5
target:
  groups:
    - mesh
    - 'b c'
  threshold: {loss: 0.05, latency: 1.5e-3}
group_rules:
  - same: [site, pod]
    groups: [intra-pod]
  - match:
      site: par1
    groups: ["site-{site}"]
empty:
"""
        self.assertEqual(self.parse(text), {
            "url": "https://netbox.example.com", "token": "abc#def",
            "filters": {"role": "tor", "site": ["par1", "par2"]}, "page_size": 200, "verify_tls": False,
            "ratio": 0.5, "target": {"groups": ["mesh", "b c"], "threshold": {"loss": 0.05, "latency": 0.0015}},
            "group_rules": [{"same": ["site", "pod"], "groups": ["intra-pod"]},
                            {"match": {"site": "par1"}, "groups": ["site-{site}"]}],
            "empty": None})

    def test_lists_of_mappings_and_scalars(self):
        self.assertEqual(self.parse("- hostname: a\n  address: 10.0.0.1\n- hostname: b\n  address: 10.0.0.2\n"),
                         [{"hostname": "a", "address": "10.0.0.1"}, {"hostname": "b", "address": "10.0.0.2"}])
        self.assertEqual(self.parse("a: ~\nb: 'it''s'\nc: 007x\nd: -3\ne: on\n"),
                         {"a": None, "b": "it's", "c": "007x", "d": -3, "e": True})

    def test_errors_are_clear(self):
        for text, message in [("a: 1\n  b: 2\n", "line 2: unexpected indentation"),
                              ("a: [1, 2\n", "line 1: unterminated ["),
                              ("a: |\n  text\n", "block scalars")]:
            with self.assertRaises(ValueError) as e:
                self.parse(text)
            self.assertIn(message, str(e.exception))

    def test_emit_framing(self):
        out = io.StringIO()
        with redirect_stdout(out):
            lib.emit([{"hostname": "a"}])
            lib.emit([])
        self.assertTrue(out.getvalue().endswith("\n---\n"))
        self.assertEqual(split_documents(out.getvalue()), [{"targets": [{"hostname": "a"}]}, {"targets": []}])


if __name__ == "__main__":
    unittest.main()
