// 常用语 (canned replies): typed as "/" + shortcut in the composer, or picked from the
// 常用语 button; the server fills {item} {checklist} {citizen_channel} from the open
// conversation and the text lands in the composer, to edit before sending. Shared and
// department replies are managed by supervisors; personal ones by their owner.
(function () {
  "use strict";
  var D = window.daobanConsole, $ = function (id) { return document.getElementById(id); };
  var replies = [], manages = false, shown = [], chosen = 0, editing = null;
  var SCOPES = { shared: "共享", department: "部门", personal: "个人" };

  async function load() {
    var r = await fetch("/agent/api/canned");
    if (!r.ok) return;
    var got = await r.json();
    replies = got.replies; manages = got.manages_shared;
    renderAdmin();
  }

  // ---- the menu over the composer ----
  function query() { var m = /^\/(\S*)$/.exec($("msg").value); return m ? m[1].toLowerCase() : null; }
  function open(q) {
    shown = replies.filter(function (c) {
      // By shortcut; by the words of the text (not its {variables}) from two characters on.
      return !q || c.shortcut.toLowerCase().indexOf(q) === 0 ||
        (q.length > 1 && c.text.replace(/\{\w+\}/g, "").indexOf(q) >= 0);
    });
    var menu = $("canned-menu"); menu.innerHTML = "";
    if (!shown.length) { menu.hidden = true; return; }
    chosen = Math.min(chosen, shown.length - 1);
    shown.forEach(function (c, i) {
      var b = D.el("button", "", ""); b.type = "button"; b.setAttribute("role", "option");
      b.setAttribute("aria-selected", i === chosen ? "true" : "false");
      b.appendChild(D.el("span", "sc", "/" + c.shortcut));
      b.appendChild(D.el("span", "", c.text.length > 40 ? c.text.slice(0, 40) + "…" : c.text));
      b.appendChild(D.el("span", "scope", SCOPES[c.scope] + (c.department ? "·" + c.department : "")));
      b.onmousedown = function (ev) { ev.preventDefault(); use(c); };  // before the textarea blurs
      menu.appendChild(b);
    });
    menu.hidden = false;
  }
  function close() { $("canned-menu").hidden = true; chosen = 0; }
  async function use(c) {
    close();
    var text = c.text, cur = D.current();
    if (cur) {
      var r = await fetch("/agent/api/canned/" + c.id + "/render", { method: "POST",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify({ conversation_id: cur }) });
      if (r.ok) text = (await r.json()).text;
    }
    var msg = $("msg");
    msg.value = text; msg.focus();
    msg.setSelectionRange(text.length, text.length);
  }

  $("msg").addEventListener("input", function () { var q = query(); if (q === null) close(); else open(q); });
  $("msg").addEventListener("blur", function () { setTimeout(close, 150); });
  // Capture phase: the menu takes Enter before the composer's own "Enter sends".
  $("composer").addEventListener("keydown", function (ev) {
    if ($("canned-menu").hidden || !shown.length) return;
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      chosen = (chosen + (ev.key === "ArrowDown" ? 1 : shown.length - 1)) % shown.length;
      open(query() || "");
    } else if ((ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) || ev.key === "Tab") {
      ev.preventDefault(); use(shown[chosen]);
    } else if (ev.key === "Escape") { ev.preventDefault(); close(); }
  }, true);
  $("canned-open").addEventListener("click", function () {
    if (!$("canned-menu").hidden) { close(); return; }
    chosen = 0; open(query() || ""); $("msg").focus();
  });

  // ---- management ----
  function renderAdmin() {
    var scope = $("canned-scope"), keep = scope.value;
    scope.innerHTML = "";
    (manages ? ["personal", "shared", "department"] : ["personal"]).forEach(function (s) {
      var o = D.el("option", "", SCOPES[s]); o.value = s; scope.appendChild(o);
    });
    scope.value = keep || "personal"; if (!scope.value) scope.value = "personal";
    $("canned-dept").hidden = scope.value !== "department";
    var ul = $("canned-list"); ul.innerHTML = "";
    replies.filter(function (c) { return c.editable; }).forEach(function (c) {
      var li = D.el("li", "");
      li.setAttribute("data-id", c.id);
      li.appendChild(D.el("div", "", "/" + c.shortcut + "（" + SCOPES[c.scope] + (c.department ? "·" + c.department : "") + "）"));
      li.appendChild(D.el("div", "meta", c.text));
      var actions = D.el("div", "row-actions");
      var edit = D.el("button", "btn", "修改"); edit.type = "button";
      edit.onclick = function () {
        editing = c.id; $("canned-shortcut").value = c.shortcut; $("canned-text").value = c.text;
        $("canned-save").textContent = "保存修改";
      };
      var del = D.el("button", "btn", "删除"); del.type = "button";
      del.onclick = async function () {
        var r = await fetch("/agent/api/canned/" + c.id, { method: "DELETE" });
        if (!r.ok) { $("canned-error").textContent = (await r.json()).error; return; }
        load();
      };
      actions.appendChild(edit); actions.appendChild(del); li.appendChild(actions); ul.appendChild(li);
    });
  }
  $("canned-scope").addEventListener("change", function () { $("canned-dept").hidden = this.value !== "department"; });
  $("canned-save").addEventListener("click", async function () {
    var body = { shortcut: $("canned-shortcut").value.trim(), text: $("canned-text").value.trim() };
    if (!editing) { body.scope = $("canned-scope").value; body.department = $("canned-dept").value.trim() || null; }
    var r = await fetch("/agent/api/canned" + (editing ? "/" + editing : ""), {
      method: editing ? "PUT" : "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    if (!r.ok) { $("canned-error").textContent = (await r.json()).error || "保存失败"; return; }
    $("canned-error").textContent = ""; $("canned-shortcut").value = ""; $("canned-text").value = "";
    editing = null; $("canned-save").textContent = "保存常用语";
    load();
  });

  D.on("start", load);
  D.on("state", function (s) { s.canned = replies.length; });
})();
