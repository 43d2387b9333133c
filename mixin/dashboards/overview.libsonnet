local g = import '../lib/grafana.libsonnet';
local sel = 'probe_name=~"$probe_name",destination=~"$destination"';

g.dashboard(
  'netprobe-overview',
  'netprobe / Overview',
  [
    g.stat('Global outages', [g.target('count(netprobe:target_failing_sites:count >= on (destination) netprobe:target_site_threshold:max) or vector(0)', instant=true)],
           'short', g.grid(0, 0, 6, 4), 'Targets failing from at least health.site_threshold sites',
           g.thresholds([['green', null], ['red', 1]])),
    g.stat('Failing (target, site) pairs', [g.target('count(netprobe_target_failing{%s} == 1) or vector(0)' % sel, instant=true)],
           'short', g.grid(6, 0, 6, 4), 'netprobe_target_failing: one site sees the target failing',
           g.thresholds([['green', null], ['orange', 1]])),
    g.stat('Probes sent per second', [g.target('sum(netprobe:sent:rate5m{%s})' % sel)],
           'pps', g.grid(12, 0, 6, 4)),
    g.stat('Worst loss', [g.target('max(netprobe:loss_ratio{%s})' % sel)],
           'percentunit', g.grid(18, 0, 6, 4), '', g.thresholds([['green', null], ['orange', 0.01], ['red', 0.1]])),
    g.timeseries('Loss by target', [g.target('max by (destination) (netprobe:loss_ratio{%s})' % sel, '{{destination}}')],
                 'percentunit', g.grid(0, 4, 12, 8), 'Worst group and site of each target, last iteration', 1),
    g.timeseries('RTT p95 by target', [g.target('max by (destination) (netprobe:round_trip_seconds{%s,percentile="95"})' % sel, '{{destination}}')],
                 's', g.grid(12, 4, 12, 8), 'Worst group and site of each target, last iteration'),
    g.timeseries('Loss by group', [g.target('sum by (group) (rate({__name__=~"tcpsyn_loss_total|icmp_loss_total|udp_unreachable_loss_total",%s}[5m])) / sum by (group) (rate({__name__=~"tcpsyn_sent_total|icmp_sent_total|udp_unreachable_sent_total",%s}[5m]))' % [sel, sel], '{{group}}')],
                 'percentunit', g.grid(0, 12, 12, 8), 'Lost / sent over 5 minutes, all targets of the group', 1),
    g.timeseries('RTT by group (histogram p50 / p99)', [
      g.target('histogram_quantile(0.5, sum by (group, le) (rate({__name__=~"tcpsyn_rtt_seconds_bucket|icmp_rtt_seconds_bucket|udp_unreachable_rtt_seconds_bucket",probe_name=~"$probe_name"}[5m])))', 'p50 {{group}}'),
      g.target('histogram_quantile(0.99, sum by (group, le) (rate({__name__=~"tcpsyn_rtt_seconds_bucket|icmp_rtt_seconds_bucket|udp_unreachable_rtt_seconds_bucket",probe_name=~"$probe_name"}[5m])))', 'p99 {{group}}'),
    ], 's', g.grid(12, 12, 12, 8)),
    g.table('Failing targets', [g.target('netprobe_target_failing{%s} == 1' % sel, instant=true)],
            'short', g.grid(0, 20, 12, 8), 'Targets in failing state, per site',
            [{ id: 'organize', options: { excludeByName: { Time: true, __name__: true, Value: true } } }]),
    g.table('Worst paths', [g.target('topk(20, {__name__=~"tcpsyn_worst_path_loss_ratio|udp_unreachable_worst_path_loss_ratio",%s} > 0)' % sel, instant=true)],
            'percentunit', g.grid(12, 20, 12, 8), 'Flows losing more than the others of their target (docs/paths.md)',
            [{ id: 'organize', options: { excludeByName: { Time: true } } }],
            g.thresholds([['green', null], ['orange', 0.05], ['red', 0.5]])),
  ],
  [
    g.labelVariable('probe_name', 'Site (probe_name)', 'netprobe_target_failing'),
    g.labelVariable('destination', 'Target', 'netprobe_target_failing{probe_name=~"$probe_name"}'),
  ],
)
