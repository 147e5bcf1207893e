<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{title}} · herald</title>
<link rel="stylesheet" href="/static/app.css">
</head>
<body>
<header><a href="/" class="brand">herald</a> <span class="where">{{title}}</span></header>
<main>
{{!base}}
</main>
<script src="/static/app.js"></script>
</body>
</html>
