<tr class="record level-{{r['levelname'] or 'NONE'}}" data-id="{{r['id']}}">
  <td class="received">{{fmt_time(r['received'])}}</td>
  <td class="created">{{fmt_time(r['created'])}}</td>
  <td class="level">{{r['levelname'] or ''}}</td>
  <td class="system{{' forwarded' if r['hops'] else ''}}">{{r['system_id'] or ''}}</td>
  <td class="host">{{r['sub_system_id'] or ''}}</td>
  <td class="subsub">{{r['sub_sub_system_id'] or ''}}</td>
  <td class="product">{{r['produkt_id'] or ''}}</td>
  <td class="user">{{' / '.join(v for v in (r['user_spec_1'], r['user_spec_2']) if v)}}</td>
  <td class="package">{{r['package_version'] or ''}} {{r['func_name'] or ''}}:{{r['lineno'] if r['lineno'] is not None else ''}}</td>
  <td class="message"><a class="detail" href="/record/{{r['id']}}">{{r['message'] if r['message'] is not None else ''}}</a>
% if r['exc_text']:
    <details class="trace"><summary>traceback</summary><pre>{{r['exc_text']}}</pre></details>
% end
  </td>
</tr>
