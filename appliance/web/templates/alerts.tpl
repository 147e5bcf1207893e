% rebase("layout", title="alerts")
<h1>Alerts</h1>
% if not neelix_has_run:
<p class="note" id="neelix-not-run">neelix has not run yet: no incidents and no alerts to show.</p>
% end
<form id="alert-filters" method="get" action="/alerts">
  <label>system <input name="system" value="{{params.get('system', '')}}" autocomplete="off"></label>
  <label>status <select name="status">
    <option value="">any</option>
% for name in statuses:
    <option value="{{name}}" {{'selected' if params.get('status') == name else ''}}>{{name}}</option>
% end
  </select></label>
  <label>event <select name="event">
    <option value="">any</option>
% for name in events:
    <option value="{{name}}" {{'selected' if params.get('event') == name else ''}}>{{name}}</option>
% end
  </select></label>
  <button type="submit">Filter</button>
  <a href="/alerts">reset</a>
</form>
<h2>Open incidents</h2>
% if incidents:
<table id="incidents">
<thead><tr><th>system</th><th>heartbeat</th><th>down since</th><th>last record</th></tr></thead>
<tbody>
%   for i in incidents:
<tr class="incident hb-down">
  <td class="system"><a href="/?{{urlencode({'system_id': i['system']})}}">{{i['system']}}</a></td>
  <td class="heartbeat">{{i['heartbeat']}}</td>
  <td class="opened">{{fmt_time(i['opened'])}}</td>
  <td class="last">{{fmt_time(i['last_seen'])}}</td>
</tr>
%   end
</tbody>
</table>
% elif neelix_has_run:
<p id="no-incidents">No open incidents: every watched system is up.</p>
% end
% if snoozes:
<h2>Snoozed</h2>
<table id="snoozes">
<thead><tr><th>system</th><th>until</th><th>reason</th></tr></thead>
<tbody>
%   for z in snoozes:
<tr class="snooze">
  <td class="system">{{'every system' if z['system'] == '*' else z['system']}}</td>
  <td class="until">{{fmt_time(z['until'])}}</td>
  <td class="reason">{{z['reason']}}</td>
</tr>
%   end
</tbody>
</table>
% end
<h2>Alert history</h2>
<table id="alerts">
<thead><tr><th>time</th><th>event</th><th>source</th><th>system</th><th>action</th><th>status</th><th>attempts</th><th>last error</th><th>summary</th></tr></thead>
<tbody>
% for a in alerts:
<tr class="alert status-{{a['status']}} event-{{a['event']}}" data-id="{{a['id']}}">
  <td class="time">{{fmt_time(a['time'])}}</td>
  <td class="event">{{a['event']}}</td>
  <td class="source">{{a['source']}}</td>
%   if a['system'] is not None:
  <td class="system"><a href="/?{{urlencode({'system_id': a['system']})}}">{{a['system']}}</a></td>
%   else:
  <td class="system"></td>
%   end
  <td class="action">{{a['action']}}</td>
  <td class="status">{{a['status']}}</td>
  <td class="attempts">{{a['attempts']}}</td>
  <td class="last-error">{{a['last_error'] or ''}}</td>
  <td class="summary">{{a['summary']}}</td>
</tr>
% end
</tbody>
</table>
% if not alerts:
<p id="empty">No alerts match.</p>
% end
<nav class="pages">
% if paged:
  <a id="newest" href="/alerts?{{urlencode(params)}}">← newest</a>
% end
% if next:
  <a id="older" href="/alerts?{{urlencode({**params, 'before': next['before']})}}">older →</a>
% end
</nav>
