// The agent console (/ws/agent). No framework, no CDN. Every conversation event carries a
// sequence number; on reconnect the console sends the last one it saw per conversation.
// What the agent sends (replies, notes, cards) goes through an outbox, as on the citizen
// page: each has a client id, stays (also across a reload) until the server acknowledges
// it, is sent again after a reconnect, and the server processes a client id once.
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var ws = null, me = null, current = null, lastSeq = {}, retry = 0, lists = null;
  var outbox = [];  // [{frame, label}] not yet acknowledged
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
  function connected() { return !!ws && ws.readyState === 1; }
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
    loadOutbox();
    $("login").hidden = true; $("desk").hidden = false; $("who").hidden = false;
    $("me").textContent = me.name + (me.role !== "agent" ? "（值班长）" : "");
    $("chats-title").textContent = me.role !== "agent" ? "全部进行中的会话" : "我的会话";
    connect();
  }

  function connect() {
    ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/agent");
    ws.onopen = function () {
      retry = 0; conn(""); send({ type: "hello", last_seqs: lastSeq });
      outbox.forEach(function (o) { send(o.frame); });  // processed once by the server
      renderOutbox();
    };
    ws.onclose = function (e) {
      renderOutbox();
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
    else if (f.type === "ack") acked(f);
    else if (f.type === "citizen") { citizenOnline[f.conversation_id] = f.online; renderHead(); }
    else if (f.type === "items") renderItems(f.items);
    else if (f.type === "error" && f.client_id) failed(f.client_id, f.message);
    else if (f.type === "error") alert(f.message);
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
      d.appendChild(el("div", "meta", "等待 " + mins(it.waiting_seconds) +
        (it.total_seconds > it.waiting_seconds + 5 ? "（共 " + mins(it.total_seconds) + "）" : "") + " · " + (REASONS[it.reason] || it.reason) +
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
    if (current !== id) { current = id; $("log").innerHTML = ""; lastSeq[id] = 0; outbox.forEach(pendingRow); }
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
    if (f.kind === "delivery" && delivery(f)) return;
    var mine = f.client_id && rowOf(String(f.client_id).split(":").pop());
    if (mine && !mine.classList.contains("failed")) mine.parentNode.removeChild(mine);
    var cls = { citizen: "citizen", bot: "bot", agent: "agent", system: "system", note: "note" }[f.from] || "system";
    var row = el("div", "row " + cls);
    var b = el("div", "bubble");
    var who = { citizen: "市民", bot: "导办助手", agent: f.agent || "帮办", note: "内部备注", system: "" }[f.from];
    if (who) b.appendChild(el("p", "who", who));
    b.appendChild(el("p", "text", f.text));
    row.appendChild(b);
    row.setAttribute("data-seq", f.seq);
    $("log").insertBefore(row, $("log").querySelector(".row.pending"));  // unsent ones stay last
    $("log").scrollTop = $("log").scrollHeight;
  }

  // A WeChat reply that did not go out: shown on the message, with the way to leave it as a 留言.
  function delivery(f) {
    var row = $("log").querySelector('.row[data-seq="' + f.of + '"]');
    if (!row) return false;  // not on screen: shown as its own line
    var b = row.querySelector(".bubble"), old = b.querySelectorAll(".delivery");
    for (var i = 0; i < old.length; i++) b.removeChild(old[i]);
    var p = el("p", "status delivery" + (f.ok ? " ok" : ""), f.text);
    b.appendChild(p);
    row.classList.toggle("failed", !f.ok && !f.held);
    if (!f.ok && !f.held) {
      var btn = el("button", "btn delivery", "留作留言"); btn.type = "button";
      btn.onclick = function () { btn.disabled = true; send({ type: "hold", conversation_id: f.conversation_id, seq: f.of, client_id: cid() }); };
      b.appendChild(btn);
    }
    return true;
  }

  // ---- outbox ----
  function outboxKey() { return "daoban.agent.outbox." + (me ? me.id : ""); }
  function loadOutbox() {
    try { outbox = JSON.parse(localStorage.getItem(outboxKey()) || "[]") || []; } catch (e) { outbox = []; }
    if (!Array.isArray(outbox)) outbox = [];
  }
  function saveOutbox() {
    try {
      if (outbox.length) localStorage.setItem(outboxKey(), JSON.stringify(outbox));
      else localStorage.removeItem(outboxKey());
    } catch (e) { /* private mode: the outbox lives as long as the page */ }
  }
  function rowOf(id) {
    var rows = $("log").querySelectorAll(".row[data-client-id]");
    for (var i = 0; i < rows.length; i++) if (rows[i].getAttribute("data-client-id") === id) return rows[i];
    return null;
  }
  function pendingRow(o) {
    if (o.frame.conversation_id !== current || rowOf(o.frame.client_id)) return;
    var row = el("div", "row pending " + (o.frame.type === "note" ? "note" : "agent"));
    row.setAttribute("data-client-id", o.frame.client_id);
    var b = el("div", "bubble");
    b.appendChild(el("p", "who", o.frame.type === "note" ? "内部备注" : "我"));
    b.appendChild(el("p", "text", o.label));
    b.appendChild(el("p", "status", "未发送"));
    row.appendChild(b); $("log").appendChild(row);
    $("log").scrollTop = $("log").scrollHeight;
  }
  function renderOutbox() {
    var box = $("outbox"), n = outbox.length;
    box.hidden = !n;
    box.textContent = n ? "未发送 " + n + " 条：" + (connected() ? "等待服务器确认……" : "连接恢复后自动重发") : "";
  }
  function enqueue(frame, label) {
    frame.client_id = cid();
    var o = { frame: frame, label: label };
    outbox.push(o); saveOutbox(); pendingRow(o); renderOutbox();
    send(frame);
  }
  function drop(id) {
    outbox = outbox.filter(function (o) { return o.frame.client_id !== id; });
    saveOutbox(); renderOutbox();
  }
  function acked(f) {
    drop(f.client_id);
    var row = rowOf(f.client_id);
    if (row && row.classList.contains("pending")) {
      row.classList.remove("pending");
      var st = row.querySelector(".status"); if (st) st.parentNode.removeChild(st);
    }
  }
  function failed(id, message) {
    drop(id);
    var row = rowOf(id);
    if (!row) { alert(message); return; }
    row.classList.remove("pending"); row.classList.add("failed");
    row.querySelector(".status").textContent = "未发送：" + message;
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
    enqueue({ type: "insert", conversation_id: current, entry_id: id, kind: kind },
            kind === "materials" ? "（材料清单）" : "（事项卡片）");
  }

  $("login").addEventListener("submit", login);
  $("logout").onclick = async function () { await fetch("/agent/logout", { method: "POST" }); location.reload(); };
  $("presence").onchange = function () { send({ type: "presence", status: this.value }); };
  $("composer").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var t = $("msg").value.trim();
    if (!t || !current) return;
    enqueue({ type: "send", conversation_id: current, text: t }, t);
    $("msg").value = "";
  });
  $("item-q").addEventListener("input", function () { send({ type: "search", q: this.value }); });
  $("note-send").onclick = function () {
    var t = $("note").value.trim(); if (!t || !current) return;
    enqueue({ type: "note", conversation_id: current, text: t }, t); $("note").value = "";
  };
  $("transfer").onclick = function () {
    if (!current) return;
    send({ type: "transfer", conversation_id: current, to_agent: $("to-agent").value || null, to_department: $("to-dept").value || null });
  };
  $("handback").onclick = function () { if (current) send({ type: "handback", conversation_id: current }); };
  $("close").onclick = function () { if (current) send({ type: "close", conversation_id: current, summary: $("summary").value }); };
  window.daobanAgent = { state: function () { return { connected: connected(), current: current, pending: outbox.length }; } };
  start();
})();
