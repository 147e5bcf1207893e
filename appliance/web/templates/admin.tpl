% rebase("layout", title="admin")
<h1>Admin</h1>
% if message:
<p class="done">{{message}}</p>
% end
<form id="purge" method="post" action="/admin/purge">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <label>Delete every record received more than <input name="days" size="4" required> days ago</label>
  <button type="submit">Purge</button>
</form>
