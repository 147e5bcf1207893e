% rebase("layout", title="systems")
<h1>Systems</h1>
<table id="systems">
<thead><tr><th>system</th><th>hosts</th><th>last record</th><th>records (all time)</th><th>last hour</th><th>errors last hour</th><th>package versions (first seen)</th><th>heartbeat</th></tr></thead>
<tbody>
% for s in systems:
<tr class="system{{' has-errors' if s['errors_last_hour'] else ''}}">
  <td class="name"><a href="/?{{urlencode({'system_id': s['system_id']})}}">{{s['system_id']}}</a></td>
  <td class="hosts">{{', '.join(s['hosts'])}}</td>
  <td class="last">{{fmt_time(s['last_seen'])}}</td>
  <td class="records">{{s['records']}}</td>
  <td class="last-hour">{{s['last_hour']}}</td>
  <td class="errors"><a href="/?{{urlencode({'system_id': s['system_id'], 'level': 'ERROR', 'since': '1h'})}}">{{s['errors_last_hour']}}</a></td>
  <td class="versions">
%   for v in s['versions']:
    <span class="version">{{v['version']}} ({{fmt_time(v['first_seen'])}})</span>
%   end
  </td>
%   hb = s['heartbeat']
%   if hb['state'] == 'down':
  <td class="heartbeat hb-down">DOWN since {{fmt_time(hb['down_since'])}}{{' · snoozed until ' + fmt_time(hb['snoozed_until']) if hb['snoozed_until'] else ''}}</td>
%   elif hb['state'] == 'snoozed':
  <td class="heartbeat hb-snoozed">snoozed until {{fmt_time(hb['snoozed_until'])}}</td>
%   elif hb['state'] == 'up':
  <td class="heartbeat hb-up">UP{{'' if hb['last_seen'] else ' (no record yet)'}}</td>
%   elif hb['state'] == 'not watched':
  <td class="heartbeat hb-none">not watched</td>
%   else:
  <td class="heartbeat hb-none">—</td>
%   end
</tr>
% end
</tbody>
</table>
% if not systems:
<p id="empty">No systems have logged yet.</p>
% end
% if not neelix_has_run:
<p class="note" id="neelix-not-run">neelix has not run yet: no heartbeat states.</p>
% end
% if forwarders:
<section id="forwarders">
<h2>Forwarders</h2>
<table id="forwarder-links">
<thead><tr><th>forwarder</th><th>link</th><th>records behind</th><th>seconds behind</th><th>forwarded</th><th>failures</th><th>last report</th></tr></thead>
<tbody>
%   for f in forwarders:
<tr class="forwarder{{' link-down' if f['link_up'] is False else ''}}{{' stale' if f['stale'] else ''}}">
  <td class="name">{{f['name']}}</td>
  <td class="link">{{'up' if f['link_up'] else ('down' if f['link_up'] is False else '—')}}</td>
  <td class="behind-records">{{'—' if f['behind_records'] is None else f['behind_records']}}</td>
  <td class="behind-seconds">{{'—' if f['behind_seconds'] is None else '%.1f' % f['behind_seconds']}}</td>
  <td class="forwarded">{{'—' if f['forwarded'] is None else f['forwarded']}}</td>
  <td class="failures">{{'—' if f['failures'] is None else f['failures']}}</td>
  <td class="report">{{fmt_time(f['time']) if f['time'] is not None else 'unreadable'}}{{' · stale: not running?' if f['stale'] else ''}}</td>
</tr>
%   end
</tbody>
</table>
</section>
% end
