local g = import '../lib/grafana.libsonnet';
local sel = 'probe_name=~"$probe_name"';

g.dashboard(
  'netprobe-prober',
  'netprobe / Prober health',
  [
    g.timeseries('Round time vs interval', [
      g.target('app_iteration_time_seconds{%s}' % sel, 'round {{probe_name}}'),
      g.target('netprobe_iteration_send_seconds{%s}' % sel, 'send window {{probe_name}}'),
      g.target('netprobe_interval_seconds{%s}' % sel, 'interval {{probe_name}}'),
    ], 's', g.grid(0, 0, 12, 8), 'Slowest worker: whole iteration and send window; above the interval the rounds stretch'),
    g.timeseries('Probes sent and unsent', [
      g.target('sum by (probe_name) (netprobe:sent:rate5m{%s})' % sel, 'sent {{probe_name}}'),
      g.target('sum by (probe_name, reason) (rate(netprobe_send_errors_total{%s}[5m])) > 0' % sel, 'unsent {{probe_name}} {{reason}}'),
    ], 'pps', g.grid(12, 0, 12, 8)),
    g.timeseries('Worker restarts and stalls', [
      g.target('increase(app_worker_restarts_total{%s}[15m])' % sel, 'restarts {{probe_name}}'),
      g.target('increase(app_process_timed_out_total{%s}[15m])' % sel, 'stalled {{probe_name}}'),
    ], 'short', g.grid(0, 8, 12, 8), 'Over 15 minutes'),
    g.timeseries('Capture', [
      g.target('rate(netprobe_capture_packets_received_total{%s}[5m])' % sel, 'received {{probe_name}}'),
      g.target('rate(netprobe_capture_packets_dropped_total{%s}[5m])' % sel, 'dropped {{probe_name}} {{source}}'),
    ], 'pps', g.grid(12, 8, 12, 8), 'A drop makes answered probes look lost'),
    g.timeseries('Rejected captured packets', [
      g.target('sum by (probe_name, reason) (rate(netprobe_capture_rejected_total{%s}[5m]))' % sel, '{{probe_name}} {{reason}}'),
    ], 'pps', g.grid(0, 16, 12, 8), 'docs/matching.md'),
    g.stat('Reload failed', [g.target('max(app_reload_conf_failed_status{%s})' % sel, instant=true)],
           'bool_yes_no', g.grid(12, 16, 6, 4), '1: the last reload was rejected, the previous configuration runs',
           g.thresholds([['green', null], ['red', 1]])),
    g.stat('Probers reporting', [g.target('count(app_reload_conf_failed_status{%s})' % sel, instant=true)],
           'short', g.grid(18, 16, 6, 4)),
    g.timeseries('CPU (whole process tree)', [
      g.target('sum by (probe_name, instance) (rate(netprobe_process_cpu_seconds_total[5m]))', '{{instance}}'),
    ], 'percentunit', g.grid(12, 20, 12, 8)),
    g.timeseries('Resident memory (whole process tree)', [
      g.target('sum by (instance) (netprobe_process_resident_memory_bytes)', '{{instance}}'),
    ], 'bytes', g.grid(0, 24, 12, 8)),
  ],
  [g.labelVariable('probe_name', 'Prober (probe_name)', 'app_reload_conf_failed_status')],
)
