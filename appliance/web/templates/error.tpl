% rebase("layout", title=status)
<h1>{{status}}</h1>
<p class="error">{{message}}</p>
<p><a href="/">All records</a></p>
