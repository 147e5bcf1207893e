% rebase("layout", title="record %d" % record['id'])
<h1 class="level-{{record['levelname'] or 'NONE'}}">{{record['levelname'] or ''}} {{record['message'] if record['message'] is not None else ''}}</h1>
<dl id="fields">
% for name, value in record.items():
%   if name not in ("extra", "exc_text", "stack_info", "hops"):
  <dt>{{name}}</dt><dd class="field-{{name}}">{{fmt_time(value) if name in ("received", "created") else ("" if value is None else value)}}</dd>
%   end
% end
% if path:
  <dt>path</dt><dd class="field-path" id="path">
%   for i, hop in enumerate(path):
%     when = fmt_time(hop['received'])
%     if i == 0:
    <span class="hop"><span class="appliance">{{hop['appliance']}}</span> (received {{when}})</span>
%     else:
%       same_day = when[:10] == fmt_time(path[i - 1]['received'])[:10]
    → <span class="hop"><span class="appliance">{{hop['appliance']}}</span> ({{when[11:] if same_day else when}}, {{'%+.3f' % hop['after']}} s)</span>
%     end
%   end
  </dd>
% elif record['hops']:
  <dt>path</dt><dd class="field-hops">{{record['hops']}}</dd>
% end
</dl>
% if record['exc_text']:
<h2>Traceback</h2>
<pre id="trace">{{record['exc_text']}}</pre>
% end
% if record['stack_info']:
<h2>Stack</h2>
<pre id="stack">{{record['stack_info']}}</pre>
% end
% if extra:
<h2>Extra</h2>
<pre id="extra">{{extra}}</pre>
% end
<h2>Around this record (system {{record['system_id'] or '—'}})</h2>
<table id="around">
<thead><tr>
  <th>received</th><th>created</th><th>level</th><th>system</th><th>host</th><th>sub-sub</th>
  <th>product</th><th>user</th><th>package / function / line</th><th>message</th>
</tr></thead>
<tbody>
% for r in newer:
% include("row", r=r)
% end
<tr class="this"><td colspan="10">▶ this record</td></tr>
% for r in older:
% include("row", r=r)
% end
</tbody>
</table>
