// jsonnet -m dashboards_out dashboards.jsonnet
local mixin = import 'mixin.libsonnet';
{ [name]: mixin.grafanaDashboards[name] for name in std.objectFields(mixin.grafanaDashboards) }
