"""Helpers of the plug-in tests: run a shipped plug-in as netprobe does and split its documents."""

import json
import os
import subprocess
import sys

SOURCE_DIR = os.environ.get("NETPROBE_SOURCE_DIR") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
INVENTORIES = os.path.join(SOURCE_DIR, "inventories")
sys.path.insert(0, INVENTORIES)


def split_documents(stdout):
    """The protocol's framing: a document ends at a line that is exactly `---`."""
    docs, current = [], []
    for line in stdout.splitlines():
        if line.rstrip() == "---":
            if "".join(current).strip():
                docs.append(json.loads("\n".join(current)))
            current = []
        else:
            current.append(line)
    if "".join(current).strip():
        docs.append(json.loads("\n".join(current)))
    return docs


def write_config(directory, name, config):
    path = os.path.join(directory, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(config if isinstance(config, str) else json.dumps(config))
    return path


def run_plugin(name, config_path, cwd, extra_args=("--once",), timeout=60, env=None):
    """Runs inventories/<name> with its configuration path, in `cwd` (netprobe uses the inventory
    directory). Returns (exit status, documents, stderr)."""
    args = [os.path.join(INVENTORIES, name)] + ([config_path] if config_path else []) + list(extra_args)
    full_env = dict(os.environ, NETPROBE_INVENTORY=name, **(env or {}))
    p = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)
    return p.returncode, split_documents(p.stdout), p.stderr


def check_document(test, doc):
    """The shape schema/inventory.schema.json requires, checked the simple way: required keys, known keys."""
    with open(os.path.join(SOURCE_DIR, "schema", "inventory.schema.json")) as f:
        schema = json.load(f)
    target = schema["definitions"]["target"]
    test.assertEqual(set(doc), {"targets"})
    for t in doc["targets"]:
        for key in target["required"]:
            test.assertIn(key, t)
        test.assertLessEqual(set(t), set(target["properties"]), t)
        test.assertRegex(t["hostname"], target["properties"]["hostname"]["pattern"])
