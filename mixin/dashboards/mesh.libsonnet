local g = import '../lib/grafana.libsonnet';

g.dashboard(
  'netprobe-mesh',
  'netprobe / Mesh',
  [
    g.table('Loss: source prober x destination', [
      g.target('max by (probe_name, destination) (netprobe:loss_ratio{probe_name=~"$probe_name",destination=~"$destination"})', instant=true),
    ], 'percentunit', g.grid(0, 0, 24, 14), 'Last iteration, worst group; rows are probers (sites), columns targets',
       [{ id: 'groupingToMatrix', options: { rowField: 'probe_name', columnField: 'destination', valueField: 'Value' } }],
       g.thresholds([['green', null], ['yellow', 0.001], ['orange', 0.01], ['red', 0.1]])),
    g.table('RTT p95: source prober x destination', [
      g.target('max by (probe_name, destination) (netprobe:round_trip_seconds{probe_name=~"$probe_name",destination=~"$destination",percentile="95"})', instant=true),
    ], 's', g.grid(0, 14, 24, 14), 'Last iteration, worst group',
       [{ id: 'groupingToMatrix', options: { rowField: 'probe_name', columnField: 'destination', valueField: 'Value' } }]),
    g.table('Failing: source prober x destination', [
      g.target('max by (probe_name, destination) (netprobe_target_failing{probe_name=~"$probe_name",destination=~"$destination"})', instant=true),
    ], 'bool_yes_no', g.grid(0, 28, 24, 10), 'netprobe_target_failing (health hysteresis)',
       [{ id: 'groupingToMatrix', options: { rowField: 'probe_name', columnField: 'destination', valueField: 'Value' } }],
       g.thresholds([['green', null], ['red', 1]])),
  ],
  [
    g.labelVariable('probe_name', 'Source prober', 'netprobe_target_failing'),
    g.labelVariable('destination', 'Destination', 'netprobe_target_failing{probe_name=~"$probe_name"}'),
  ],
)
