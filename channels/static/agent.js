// The agent console (/ws/agent). No framework, no CDN. Every conversation event carries a
// sequence number; on reconnect the console sends the last one it saw per conversation.
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var ws = null, me = null, current = null, lastSeq = {}, pending = 0, retry = 0, lists = null;
  var citizenOnline = {};
  var next = $("login").getAttribute("data-next") || "";
  $("login-next").hidden = !next;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function send(frame) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(frame)); }
  function cid() { return "k-" + Date.now().toString(36) + Math.random().toString(36).slice(2, 8); }
  function conn(text, lost) { var c = $("conn"); c.hidden = !text; c.textContent = text || ""; c.className = lost ? "conn lost" : "conn"; }
  function mins(s) { return s < 60 ? s + " 秒" : Math.floor(s / 60) + " 分钟"; }
  var REASONS = { requested: "市民要求", complaint: "投诉", transfer: "转接", agent_lost: "帮办断线" };

  async function login(ev) {
    ev.preventDefault();
    var r = await fetch("/agent/login", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: $("username").value, password: $("password").value }) });
    if (!r.ok) { $("login-error").textContent = (await r.json()).error || "登录失败"; return; }
    start();
  }

  async function start() {
    var r = await fetch("/agent/api/me");
    if (!r.ok) { $("login").hidden = false; $("desk").hidden = true; return; }
    if (next) { location.replace(next); return; }  // signed in for another staff page: no console socket
    me = await r.json();
    $("login").hidden = true; $("desk").hidden = false; $("who").hidden = false;
    $("me").textContent = me.name + (me.role !== "agent" ? "（值班长）" : "");
    $("chats-title").textContent = me.role !== "agent" ? "全部进行中的会话" : "我的会话";
    connect();
  }

  function connect() {
    ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/agent");
    ws.onopen = function () { retry = 0; conn(""); send({ type: "hello", last_seqs: lastSeq }); };
    ws.onclose = function (e) {
      if (e.code === 4401) { conn("登录已过期，请重新登录", true); $("login").hidden = false; $("desk").hidden = true; return; }
      conn("连接断开，正在重连……", true);
      setTimeout(connect, Math.min(5000, 500 * Math.pow(2, retry++)));
    };
    ws.onmessage = function (m) { handle(JSON.parse(m.data)); };
  }

  function handle(f) {
    if (f.type === "ping") return send({ type: "pong" });
    if (f.type === "lists") { lists = f; renderLists(); }
    else if (f.type === "event") addEvent(f);
    else if (f.type === "context") renderContext(f);
    else if (f.type === "claimed") openChat(f.conversation_id);
    else if (f.type === "ack") pending = Math.max(0, pending - 1);
    else if (f.type === "citizen") { citizenOnline[f.conversation_id] = f.online; renderHead(); }
    else if (f.type === "items") renderItems(f.items);
    else if (f.type === "error") { pending = Math.max(0, pending - 1); alert(f.message); }
    else if (f.type === "ended" || f.type === "transferred" || f.type === "unwatched") {
      if (f.conversation_id === current) $("chat-head").textContent = "会话已结束或已转出。";
    }
  }

  function renderLists() {
    var q = $("queue"); q.innerHTML = "";
    $("queue-count").textContent = "(" + lists.queue.length + ")";
    lists.queue.forEach(function (it) {
      var d = el("div", "item");
      d.appendChild(el("div", "", (it.item || "未确定事项") + " · " + (it.department || "综合")));
      d.appendChild(el("div", "meta", "等待 " + mins(it.waiting_seconds) + " · " + (REASONS[it.reason] || it.reason) +
        " · " + it.channel + (it.citizen_online === false ? " · 市民已离开" : "")));
      var b = el("button", "btn primary", "接入"); b.type = "button";
      b.onclick = function () { send({ type: "claim", conversation_id: it.conversation_id }); };
      var v = el("button", "btn", "查看"); v.type = "button";
      v.onclick = function () { openChat(it.conversation_id); };
      d.appendChild(b); d.appendChild(v); q.appendChild(d);
    });
    var c = $("chats"); c.innerHTML = "";
    lists.chats.forEach(function (it) {
      var d = el("div", "item" + (it.conversation_id === current ? " active" : ""));
      d.appendChild(el("div", "", (it.item || "未确定事项") + " · " + (it.department || "综合")));
      d.appendChild(el("div", "meta", (it.mine ? "我负责" : it.agent) + (it.citizen_online === false ? " · 市民已离开" : "")));
      d.onclick = function () { openChat(it.conversation_id); };
      c.appendChild(d);
    });
    var sel = $("to-agent"); sel.innerHTML = '<option value="">选择帮办人员</option>';
    (lists.agents || []).forEach(function (a) {
      if (me && a.id === me.id) return;
      var o = el("option", "", a.name + "（" + ({ online: "在线", away: "离开", offline: "离线" }[a.presence]) + "，" + a.busy + "/" + a.max_chats + "）");
      o.value = a.id; sel.appendChild(o);
    });
  }

  function openChat(id) {
    if (current !== id) { current = id; $("log").innerHTML = ""; lastSeq[id] = 0; }
    send({ type: "open", conversation_id: id, last_seq: lastSeq[id] || 0 });
    renderHead(); if (lists) renderLists();
  }
  function renderHead() {
    if (!current) return;
    var on = citizenOnline[current];
    $("chat-head").textContent = "会话 " + current.slice(0, 8) + (on === false ? "（市民已断开）" : on ? "（市民在线）" : "");
  }
  function renderContext(f) {
    var c = $("context"); c.innerHTML = "";
    if (f.conversation_id !== current) return;
    if (f.citizen_online !== null && f.citizen_online !== undefined) citizenOnline[current] = f.citizen_online;
    renderHead();
    c.appendChild(el("p", "", f.current_item ? f.current_item.name + "（" + (f.current_item.department || "") + "）" : "市民还没说到具体事项"));
    if (f.checklist) {
      c.appendChild(el("p", "", "已备：" + (f.checklist.ready.join("、") || "无")));
      c.appendChild(el("p", "", "待准备：" + (f.checklist.to_get.join("、") || "无")));
    }
  }
  function addEvent(f) {
    lastSeq[f.conversation_id] = Math.max(lastSeq[f.conversation_id] || 0, f.seq);
    if (f.conversation_id !== current) return;
    var cls = { citizen: "citizen", bot: "bot", agent: "agent", system: "system", note: "note" }[f.from] || "system";
    var row = el("div", "row " + cls);
    var b = el("div", "bubble");
    var who = { citizen: "市民", bot: "导办助手", agent: f.agent || "帮办", note: "内部备注", system: "" }[f.from];
    if (who) b.appendChild(el("p", "who", who));
    b.appendChild(el("p", "text", f.text));
    row.appendChild(b); $("log").appendChild(row);
    $("log").scrollTop = $("log").scrollHeight;
  }
  function renderItems(items) {
    var box = $("items"); box.innerHTML = "";
    items.forEach(function (it) {
      var d = el("div", "item");
      d.appendChild(el("div", "", it.name));
      var a = el("button", "btn", "发卡片"); a.type = "button";
      a.onclick = function () { insert(it.id, "item"); };
      var m = el("button", "btn", "发材料清单"); m.type = "button";
      m.onclick = function () { insert(it.id, "materials"); };
      d.appendChild(a); d.appendChild(m); box.appendChild(d);
    });
  }
  function insert(id, kind) {
    if (!current) return;
    pending++; send({ type: "insert", conversation_id: current, client_id: cid(), entry_id: id, kind: kind });
  }

  $("login").addEventListener("submit", login);
  $("logout").onclick = async function () { await fetch("/agent/logout", { method: "POST" }); location.reload(); };
  $("presence").onchange = function () { send({ type: "presence", status: this.value }); };
  $("composer").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var t = $("msg").value.trim();
    if (!t || !current) return;
    pending++; send({ type: "send", conversation_id: current, client_id: cid(), text: t });
    $("msg").value = "";
  });
  $("item-q").addEventListener("input", function () { send({ type: "search", q: this.value }); });
  $("note-send").onclick = function () {
    var t = $("note").value.trim(); if (!t || !current) return;
    pending++; send({ type: "note", conversation_id: current, client_id: cid(), text: t }); $("note").value = "";
  };
  $("transfer").onclick = function () {
    if (!current) return;
    send({ type: "transfer", conversation_id: current, to_agent: $("to-agent").value || null, to_department: $("to-dept").value || null });
  };
  $("handback").onclick = function () { if (current) send({ type: "handback", conversation_id: current }); };
  $("close").onclick = function () { if (current) send({ type: "close", conversation_id: current, summary: $("summary").value }); };
  window.daobanAgent = { state: function () { return { connected: !!ws && ws.readyState === 1, current: current, pending: pending }; } };
  start();
})();
