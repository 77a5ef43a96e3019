// The console's checklist panel: every material of the item in hand with its state
// (ready / missing / not yet checked), read again when the conversation moves on.
(function () {
  "use strict";
  var D = window.daobanConsole, $ = function (id) { return document.getElementById(id); };
  var timer = null, shown = null;  // the last materials answer, for state()
  var WORDS = { ready: "已备好", missing: "缺", unchecked: "未核对" };

  async function load() {
    var c = D.current();
    if (!c) return;
    var r = await fetch("/agent/api/conversations/" + encodeURIComponent(c) + "/materials");
    if (!r.ok || c !== D.current()) return;
    render((await r.json()).checklist);
  }
  function later() { clearTimeout(timer); timer = setTimeout(load, 300); }

  function render(cl) {
    var box = $("materials"); box.innerHTML = "";
    shown = cl;
    if (!cl || !cl.materials.length) {
      $("materials-count").textContent = "";
      box.appendChild(D.el("p", "", "市民还没说到具体事项，暂无材料。"));
      return;
    }
    var n = cl.counts;
    $("materials-count").textContent = "已备 " + n.ready + " · 缺 " + n.missing + " · 未核对 " + n.unchecked;
    box.appendChild(D.el("p", "", cl.name + (cl.walked ? "" : "（市民还没逐项核对）")));
    var ul = D.el("ul", "materials"), group = null;
    cl.materials.forEach(function (m) {
      if (m.group && m.group !== group) { group = m.group; ul.appendChild(D.el("li", "materials-title", group)); }
      var li = D.el("li", m.category);
      li.setAttribute("data-state", m.category);
      li.appendChild(D.el("span", "mark", m.mark));
      li.appendChild(D.el("span", "name", m.name + (m.amount ? "（" + m.amount + "）" : "")));
      li.appendChild(D.el("span", "state", m.category === "unchecked" ? WORDS.unchecked : m.label));
      ul.appendChild(li);
    });
    box.appendChild(ul);
  }

  D.on("context", load);
  D.on("opened", function () { shown = null; $("materials").textContent = "…"; });
  D.on("event", function (f) { if (f.conversation_id === D.current() && f.from !== "note") later(); });
  D.on("state", function (s) { s.materials = shown ? shown.counts : null; });
})();
