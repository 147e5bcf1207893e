% rebase("layout", title="records")
<form id="filters" method="get" action="/">
% for name in fields:
  <label>{{name}} <input name="{{name}}" value="{{params.get(name, '')}}" list="options-{{name}}" autocomplete="off"></label>
  <datalist id="options-{{name}}">
%   for value in options.get(name, []):
    <option value="{{value}}">
%   end
  </datalist>
% end
  <label>level ≥ <select name="level">
    <option value="">any</option>
% for level_name, number in levels.items():
    <option value="{{level_name}}" {{'selected' if query.level == number else ''}}>{{level_name}}</option>
% end
  </select></label>
  <label>since <input name="since" value="{{params.get('since', '')}}" placeholder="15m, 2h, 7d, 2026-11-28T12:00"></label>
  <label>until <input name="until" value="{{params.get('until', '')}}"></label>
  <label class="wide">search <input name="q" value="{{params.get('q', '')}}" placeholder='words, "a phrase", prefix*'></label>
  <label>order <select name="order">
    <option value="newest">newest first</option>
    <option value="oldest" {{'selected' if not query.newest_first else ''}}>oldest first</option>
  </select></label>
  <label>rows <input name="limit" value="{{params.get('limit', '')}}" size="4" placeholder="100"></label>
  <button type="submit">Filter</button>
  <a href="/">reset</a>
  <label class="tail"><input type="checkbox" id="tail" autocomplete="off"> live tail</label>
</form>
<div class="chart">{{!chart}}</div>
<p class="exports">export this filter: <a id="export-csv" href="/api/export.csv?{{urlencode(params)}}">CSV</a> · <a id="export-ndjson" href="/api/export.ndjson?{{urlencode(params)}}">NDJSON</a></p>
<table id="records" data-query="{{urlencode(params)}}">
<thead><tr>
  <th>received</th><th>created</th><th>level</th><th>system</th><th>host</th><th>sub-sub</th>
  <th>product</th><th>user</th><th>package / function / line</th><th>message</th>
</tr></thead>
<tbody>
% for r in rows:
% include("row", r=r)
% end
</tbody>
</table>
% if not rows:
<p id="empty">No records match.</p>
% end
<nav class="pages">
% if query.newest_first:
%   if newer is not None:
  <a id="newer" href="/?{{urlencode({**params, 'after': newer})}}">← newer</a>
%   end
%   if older is not None:
  <a id="older" href="/?{{urlencode({**params, 'before': older})}}">older →</a>
%   end
% else:
%   if older is not None:
  <a id="older" href="/?{{urlencode({**params, 'before': older})}}">← older</a>
%   end
%   if newer is not None:
  <a id="newer" href="/?{{urlencode({**params, 'after': newer})}}">newer →</a>
%   end
% end
</nav>
