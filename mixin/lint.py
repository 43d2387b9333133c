#!/usr/bin/env python3
"""Lint of netprobe's mixin (ctest mixin.dashboards_lint): the checked-in dashboards_out/*.json are exactly
what `jsonnet -m dashboards_out dashboards.jsonnet` generates; every dashboard has a Prometheus datasource
variable that every panel and query uses; every panel sets a unit; every query (panels, and the series of
the label_values() variables) is valid PromQL (each one,
with the dashboard variables replaced, becomes a recording rule that `promtool check rules` must accept).
Exit 0, or 1 with every problem found."""
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "dashboards_out")
# Values that make a query concrete for promtool; Grafana substitutes the real ones.
VARIABLES = {"$probe_name": ".*", "$destination": ".*", "$__rate_interval": "5m", "$__interval": "1m"}


def panels_of(dashboard):
    for p in dashboard.get("panels", []):
        yield p
        yield from p.get("panels", [])  # rows


def main():
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["jsonnet", "-J", HERE, "-m", tmp, os.path.join(HERE, "dashboards.jsonnet")], check=True,
                       stdout=subprocess.DEVNULL)
        generated = sorted(os.listdir(tmp))
        checked_in = sorted(f for f in os.listdir(OUT) if f.endswith(".json"))
        if generated != checked_in:
            problems.append(f"dashboards_out has {checked_in}, jsonnet generates {generated}")
        for name in generated:
            with open(os.path.join(tmp, name)) as a:
                fresh = a.read()
            path = os.path.join(OUT, name)
            if not os.path.exists(path) or open(path).read() != fresh:
                problems.append(f"{name}: out of date, run `make -C mixin` (jsonnet -m dashboards_out dashboards.jsonnet)")

        rules = []  # (where, PromQL)
        for name in generated:
            d = json.load(open(os.path.join(tmp, name)))
            variables = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
            ds = variables.get("datasource")
            if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
                problems.append(f"{name}: no Prometheus datasource variable named 'datasource'")
            for v in variables.values():
                if v.get("type") != "query":
                    continue
                if v.get("datasource", {}).get("uid") != "${datasource}":
                    problems.append(f"{name}: variable {v['name']} does not use ${{datasource}}")
                # label_values(SERIES, LABEL): SERIES must be a valid selector.
                m = re.fullmatch(r"label_values\((.*), *(\w+)\)", v.get("definition", ""))
                if not m:
                    problems.append(f"{name}: variable {v['name']}: expected label_values(series, label)")
                    continue
                series = m.group(1)
                for k, val in VARIABLES.items():
                    series = series.replace(k, val)
                rules.append((f"{name}: variable {v['name']}", series))
            for p in panels_of(d):
                title = f"{name}: panel {p.get('title')!r}"
                if p.get("type") == "row":
                    continue
                if p.get("datasource", {}).get("uid") != "${datasource}":
                    problems.append(f"{title}: datasource is not ${{datasource}}")
                if not p.get("fieldConfig", {}).get("defaults", {}).get("unit"):
                    problems.append(f"{title}: no unit")
                if not p.get("targets"):
                    problems.append(f"{title}: no query")
                for t in p.get("targets", []):
                    if t.get("datasource", {}).get("uid") != "${datasource}":
                        problems.append(f"{title}: query {t.get('refId')} does not use ${{datasource}}")
                    expr = t.get("expr", "")
                    for k, v in VARIABLES.items():
                        expr = expr.replace(k, v)
                    if "$" in expr.replace("$1", ""):
                        problems.append(f"{title}: unknown variable in {expr!r}")
                    rules.append((title, expr))

        # One group per query, so that promtool names the failing one.
        doc = {"groups": [{"name": f"q{i}", "rules": [{"record": f"dashboard:query_{i}", "expr": e}]}
                          for i, (_, e) in enumerate(rules)]}
        rule_file = os.path.join(tmp, "queries.rules.json")  # JSON is YAML
        with open(rule_file, "w") as f:
            json.dump(doc, f)
        r = subprocess.run(["promtool", "check", "rules", rule_file], capture_output=True, text=True)
        if r.returncode != 0:
            for m in re.finditer(r"group \"q(\d+)\", rule \d+, \"[^\"]*\": (.*)", r.stdout + r.stderr):
                title, expr = rules[int(m.group(1))]
                problems.append(f"{title}: invalid PromQL {expr!r}: {m.group(2)}")
            if not any("invalid PromQL" in p for p in problems):
                problems.append("promtool check rules failed:\n" + r.stdout + r.stderr)
        print(f"{len(generated)} dashboard(s), {len(rules)} queries checked by promtool")

    for p in problems:
        print("error:", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
