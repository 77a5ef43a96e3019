// The console's tool column and typing indicators: item cards and material lists from the
// guide base, internal notes, transfer, hand-back and close; "市民正在输入…" on the console,
// and the agent's own typing passed to the citizen (only for a chat the agent owns).
(function () {
  "use strict";
  var D = window.daobanConsole, $ = function (id) { return document.getElementById(id); };
  var typingTimer = null, typingSent = 0;

  D.on("typing", function (f) {
    clearTimeout(typingTimer);
    if (!f || f.conversation_id !== D.current()) { $("typing").textContent = ""; return; }
    $("typing").textContent = "市民正在输入…";
    typingTimer = setTimeout(function () { $("typing").textContent = ""; }, 4000);
  });
  $("msg").addEventListener("input", function () {
    var current = D.current(), lists = D.lists(), text = $("msg").value;
    if (!current || Date.now() - typingSent < 2000 || !text.trim() || text.charAt(0) === "/") return;
    var mine = lists && lists.chats.some(function (it) { return it.conversation_id === current && it.mine; });
    if (!mine) return;  // a chat only looked at: the citizen is not told anyone is writing
    typingSent = Date.now();
    D.send({ type: "typing", conversation_id: current });
  });

  function insert(id, kind) {
    if (!D.current()) return;
    D.enqueue({ type: "insert", conversation_id: D.current(), entry_id: id, kind: kind },
              kind === "materials" ? "（材料清单）" : "（事项卡片）");
  }
  D.on("items", function (f) {
    var box = $("items"); box.innerHTML = "";
    f.items.forEach(function (it) {
      var d = D.el("div", "item");
      d.appendChild(D.el("div", "", it.name));
      var a = D.el("button", "btn", "发卡片"); a.type = "button";
      a.onclick = function () { insert(it.id, "item"); };
      var m = D.el("button", "btn", "发材料清单"); m.type = "button";
      m.onclick = function () { insert(it.id, "materials"); };
      d.appendChild(a); d.appendChild(m); box.appendChild(d);
    });
  });

  $("item-q").addEventListener("input", function () { D.send({ type: "search", q: this.value }); });
  $("note-send").onclick = function () {
    var t = $("note").value.trim(), current = D.current();
    if (!t || !current) return;
    D.enqueue({ type: "note", conversation_id: current, text: t }, t); $("note").value = "";
  };
  $("transfer").onclick = function () {
    var current = D.current(), to = $("to-agent").value;
    if (!current) return;
    D.send({ type: "transfer", conversation_id: current, to_agent: to ? Number(to) : null,
             to_department: $("to-dept").value || null });
  };
  $("handback").onclick = function () { if (D.current()) D.send({ type: "handback", conversation_id: D.current() }); };
  $("close").onclick = function () {
    if (D.current()) D.send({ type: "close", conversation_id: D.current(), summary: $("summary").value });
  };
})();
