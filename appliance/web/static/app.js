// Live tail: while the box is ticked, fetch records newer than the top row with the page's
// filters every second and put them on top. Built with textContent only: never HTML.
(function () {
  "use strict";
  var box = document.getElementById("tail");
  var table = document.getElementById("records");
  if (!box || !table) { return; }
  var body = table.tBodies[0];
  var timer = null;

  var oldestFirst = new URLSearchParams(table.dataset.query).get("order") === "oldest";

  function newestId() {
    var newest = 0;
    body.querySelectorAll("tr.record").forEach(function (row) {
      newest = Math.max(newest, Number(row.dataset.id));
    });
    return newest;
  }

  function cell(row, name, text) {
    var td = document.createElement("td");
    td.className = name;
    td.textContent = text === null || text === undefined ? "" : String(text);
    row.appendChild(td);
    return td;
  }

  function when(epoch) {
    if (epoch === null || epoch === undefined) { return ""; }
    return new Date(Math.round(epoch * 1000)).toISOString().replace("T", " ").replace("Z", "");
  }

  function rowFor(r) {
    var tr = document.createElement("tr");
    tr.className = "record fresh level-" + (r.levelname || "NONE").replace(/[^A-Z]/g, "");
    tr.dataset.id = r.id;
    cell(tr, "received", when(r.received));
    cell(tr, "created", when(r.created));
    cell(tr, "level", r.levelname);
    cell(tr, r.hops ? "system forwarded" : "system", r.system_id);
    cell(tr, "host", r.sub_system_id);
    cell(tr, "subsub", r.sub_sub_system_id);
    cell(tr, "product", r.produkt_id);
    cell(tr, "user", [r.user_spec_1, r.user_spec_2].filter(Boolean).join(" / "));
    cell(tr, "package", (r.package_version || "") + " " + (r.func_name || "") + ":" +
         (r.lineno === null ? "" : r.lineno));
    var message = cell(tr, "message", "");
    var link = document.createElement("a");
    link.className = "detail";
    link.href = "/record/" + encodeURIComponent(r.id);
    link.textContent = r.message === null ? "" : r.message;
    message.appendChild(link);
    return tr;
  }

  function poll() {
    var params = new URLSearchParams(table.dataset.query);
    params.delete("order");
    params.set("order", "oldest");
    params.set("after", String(newestId()));
    fetch("/api/records?" + params.toString(), {credentials: "same-origin"})
      .then(function (response) { return response.ok ? response.json() : {records: []}; })
      .then(function (data) {
        // The answer is oldest first: newest ends on top, or at the bottom of an
        // oldest-first page.
        data.records.forEach(function (r) {
          if (oldestFirst) { body.appendChild(rowFor(r)); }
          else { body.insertBefore(rowFor(r), body.firstChild); }
        });
        var empty = document.getElementById("empty");
        if (empty && data.records.length) { empty.remove(); }
      })
      .catch(function () { /* the next tick tries again */ });
  }

  function follow() {
    if (box.checked && timer === null) { poll(); timer = setInterval(poll, 1000); }
    else if (!box.checked && timer !== null) { clearInterval(timer); timer = null; }
  }

  box.addEventListener("change", follow);
  // Back/forward may restore the ticked box after this script ran: follow what it shows.
  window.addEventListener("pageshow", follow);
}());
