% rebase("layout", title="log in")
<h1>Log in</h1>
% if failed:
<p class="error">Wrong name or password.</p>
% end
<form id="login" method="post" action="/login">
  <input type="hidden" name="next" value="{{next}}">
  <label>name <input name="name" autocomplete="username" required></label>
  <label>password <input name="password" type="password" autocomplete="current-password" required></label>
  <button type="submit">Log in</button>
</form>
