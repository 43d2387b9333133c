// Minimal Grafana JSON builders (plain jsonnet, no grafonnet): every panel queries the ${datasource}
// variable and sets a unit, which mixin/lint.py checks.
{
  datasource:: { type: 'prometheus', uid: '${datasource}' },

  target(expr, legend='', instant=false):: {
    datasource: $.datasource,
    expr: expr,
    legendFormat: legend,
    refId: 'A',
    [if instant then 'instant']: true,
    [if instant then 'range']: false,
  },

  local withTargets(targets) = [
    t { refId: std.char(65 + i) }
    for i in std.range(0, std.length(targets) - 1)
    for t in [targets[i]]
  ],

  panel(type, title, targets, unit, gridPos, description='', extra={}):: {
    type: type,
    title: title,
    description: description,
    datasource: $.datasource,
    targets: withTargets(targets),
    fieldConfig: { defaults: { unit: unit }, overrides: [] },
    gridPos: gridPos,
  } + extra,

  timeseries(title, targets, unit, gridPos, description='', max=null):: $.panel(
    'timeseries', title, targets, unit, gridPos, description,
    { fieldConfig+: { defaults+: { [if max != null then 'max']: max, min: 0 } } },
  ),

  stat(title, targets, unit, gridPos, description='', thresholds=null):: $.panel(
    'stat', title, targets, unit, gridPos, description,
    if thresholds == null then {} else { fieldConfig+: { defaults+: { thresholds: thresholds } } },
  ),

  table(title, targets, unit, gridPos, description='', transformations=[], thresholds=null):: $.panel(
    'table', title, targets, unit, gridPos, description,
    {
      transformations: transformations,
      fieldConfig+: {
        defaults+: { custom: { displayMode: 'color-background' } } +
                   (if thresholds == null then {} else { thresholds: thresholds }),
      },
    },
  ),

  thresholds(steps):: { mode: 'absolute', steps: [{ color: s[0], value: s[1] } for s in steps] },

  dashboard(uid, title, panels, variables=[]):: {
    uid: uid,
    title: title,
    tags: ['netprobe'],
    timezone: 'utc',
    editable: true,
    schemaVersion: 37,
    refresh: '1m',
    time: { from: 'now-6h', to: 'now' },
    templating: {
      list: [
        {
          name: 'datasource',
          label: 'Data source',
          type: 'datasource',
          query: 'prometheus',
          current: {},
          hide: 0,
        },
      ] + variables,
    },
    panels: panels,
  },

  // A multi-value variable over a label of a series.
  labelVariable(name, label, series):: {
    name: name,
    label: label,
    type: 'query',
    datasource: $.datasource,
    query: { query: 'label_values(%s, %s)' % [series, name], refId: 'V' },
    definition: 'label_values(%s, %s)' % [series, name],
    includeAll: true,
    multi: true,
    allValue: '.*',
    current: { selected: true, text: ['All'], value: ['$__all'] },
    refresh: 2,
    sort: 1,
  },

  grid(x, y, w, h):: { x: x, y: y, w: w, h: h },
}
