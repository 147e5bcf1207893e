<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{title}} · herald {{stage}} · {{instance}}</title>
<link rel="stylesheet" href="/static/app.css">
</head>
<body>
<header>
  <a href="/" class="brand">herald</a>
  <span class="identity stage-{{stage.lower()}}" title="stage and instance of this appliance">{{stage}} · {{instance}}</span>
  <nav class="top"><a href="/">records</a> <a href="/systems">systems</a> <a href="/alerts">alerts</a>
% if user is not None and user.admin:
  <a href="/admin">admin</a>
% end
  </nav>
% if user is not None:
  <form class="logout" method="post" action="/logout"><input type="hidden" name="csrf" value="{{csrf}}"><span class="who">{{user.name}}</span> <button type="submit">log out</button></form>
% end
</header>
<main>
{{!base}}
</main>
<script src="/static/app.js"></script>
</body>
</html>
