// netprobe's monitoring mixin: Grafana dashboards generated from dashboards/*.libsonnet into dashboards_out/
// (`make -C mixin`, checked by mixin/lint.py). The Prometheus rules stay YAML (rules/netprobe.rules.yaml):
// promtool is their lint and test runner, and Debian 12's jsonnet 0.18 std.parseYaml cannot read their
// multi-line expressions.
{
  grafanaDashboards+:: {
    'netprobe-overview.json': import 'dashboards/overview.libsonnet',
    'netprobe-mesh.json': import 'dashboards/mesh.libsonnet',
    'netprobe-prober.json': import 'dashboards/prober.libsonnet',
  },
}
