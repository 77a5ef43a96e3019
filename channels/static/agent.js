// The agent console (/ws/agent). No framework, no CDN. Every conversation event carries a
// sequence number; on reconnect the console sends the last one it saw per conversation.
// What the agent sends (replies, notes, cards) goes through an outbox, as on the citizen
// page: each has a client id, stays (also across a reload) until the server acknowledges
// it, is sent again after a reconnect, and the server processes a client id once.
// agent-attention.js (unread, sound, title, SLA) and agent-canned.js (常用语) hook in
// through window.daobanConsole.
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var ws = null, me = null, current = null, lastSeq = {}, retry = 0, lists = null;
  var outbox = [];  // [{frame, label}] not yet acknowledged
  var citizenOnline = {};
  var watched = {};  // conversation id -> true once "open" was sent on this socket
  var titles = {};   // conversation id -> {button payload -> title}
  var rendered = {};  // seq -> true for the rows of the open chat
  var next = $("login").getAttribute("data-next") || "";
  $("login-next").hidden = !next;
  var hooks = {};
  var D = window.daobanConsole = {
    on: function (name, fn) { (hooks[name] = hooks[name] || []).push(fn); },
    emit: function (name) {
      var args = Array.prototype.slice.call(arguments, 1);
      (hooks[name] || []).forEach(function (fn) { fn.apply(null, args); });
    },
    me: function () { return me; },
    current: function () { return current; },
    lists: function () { return lists; },
    send: send, el: el, label: label, enqueue: enqueue, renderLists: function (part) { if (lists) renderLists(part); }
  };

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
  D.mins = mins;
  // Event times are UTC; one without a zone is read as UTC, not as the browser's local time.
  function at(s) { s = String(s || ""); return Date.parse(/(Z|[+-]\d\d:?\d\d)$/.test(s) ? s : s + "Z"); }
  D.at = at;
  var REASONS = { requested: "市民要求", complaint: "投诉", transfer: "转接", agent_lost: "帮办断线" };
  var CHANNELS = { web: "网页", wechat: "微信", rest: "接口", cli: "终端" };
  // Titles of the buttons the bot offers, for a press whose button is not in the log.
  var PRESSED = { "/walk": "逐项核对材料", "/materials": "查看材料", "/where": "在哪办", "/human": "转人工",
    "/bot": "返回机器人", "/yes": "是的", "/no": "不是", "/have": "有", "/missing": "没有", "/unsure": "不清楚",
    "/nocomment": "没有意见", "/rate:5": "非常满意", "/rate:4": "满意", "/rate:3": "一般", "/rate:2": "不满意",
    "/rate:1": "非常不满意" };

  // A citizen's button press is stored as its payload ("/walk", "/pick:…"): shown as the
  // button's title. Returns {text, pressed}.
  function label(conversation, text) {
    var t = String(text || "");
    if (t.charAt(0) !== "/" || /\s/.test(t)) return { text: t, pressed: false };
    var own = titles[conversation] || {};
    var title = own[t] || PRESSED[t] || (/^\/pick:/.test(t) ? "选择了一个事项" : /^\/sit:/.test(t) ? "选择了办事情形" : "点了一个按钮");
    return { text: title, pressed: true };
  }

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
    D.emit("start", me);
    connect();
  }

  function connect() {
    ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/agent");
    watched = {};
    ws.onopen = function () {
      retry = 0; conn(""); send({ type: "hello", last_seqs: lastSeq });
      Object.keys(lastSeq).forEach(function (c) { watched[c] = true; });
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
    if (f.type === "lists") { lists = f; lists.at = Date.now(); watchChats(); D.emit("lists", f); D.renderLists(); renderAgents(); }
    else if (f.type === "event") addEvent(f);
    else if (f.type === "context") { D.emit("loading", f); renderContext(f); }
    else if (f.type === "claimed") openChat(f.conversation_id);
    else if (f.type === "ack") acked(f);
    else if (f.type === "citizen") { citizenOnline[f.conversation_id] = f.online; renderHead(); }
    else if (f.type === "typing" || f.type === "items") D.emit(f.type, f);
    else if (f.type === "error" && f.client_id) failed(f.client_id, f.message);
    else if (f.type === "error") problem(f.message);
    else if (f.type === "transferred" && f.conversation_id === current) {
      var to = $("to-agent").value ? $("to-agent").selectedOptions[0].textContent.split("（")[0] : "转入排队";
      $("chat-head").textContent = "已转出：" + to;
      delete watched[f.conversation_id];
      D.emit("gone", f.conversation_id);
    }
    else if (f.type === "ended" || f.type === "transferred" || f.type === "unwatched") {
      delete watched[f.conversation_id];
      if (f.type === "unwatched") delete lastSeq[f.conversation_id];
      var head = $("chat-head");
      if (f.conversation_id === current && head.textContent.indexOf("已转出") !== 0) head.textContent = "会话已结束或已转出。";
      D.emit("gone", f.conversation_id);
    }
  }

  // Every chat in the list is watched (its events arrive even when another is open): the
  // unread counts and previews of agent-attention.js come from them.
  function watchChats() {
    lists.chats.forEach(function (it) {
      var c = it.conversation_id;
      if (!watched[c]) { watched[c] = true; send({ type: "open", conversation_id: c, last_seq: lastSeq[c] || 0 }); }
    });
  }

  // The lists are drawn in place: an item keeps its element (and its buttons) while it stays
  // in the list, so a click is never lost to a redraw (they come with every event).
  var queueEls = {}, chatEls = {};
  function place(box, els, rows, make, fill) {
    var keep = {};
    rows.forEach(function (it, i) {
      var c = it.conversation_id;
      keep[c] = true;
      var d = els[c] || (els[c] = make(it));
      fill(it, d);
      if (box.children[i] !== d) box.insertBefore(d, box.children[i] || null);
    });
    Object.keys(els).forEach(function (c) {
      if (!keep[c]) { if (els[c].parentNode) els[c].parentNode.removeChild(els[c]); delete els[c]; }
    });
  }
  function deco(d) {  // the part of an item redrawn every time (no buttons in it)
    var x = d.querySelector(".deco"); x.innerHTML = ""; return x;
  }
  function renderLists(part) {  // part "chats": the queue is left as it is
    $("queue-count").textContent = "(" + lists.queue.length + ")";
    var age = Math.floor((Date.now() - lists.at) / 1000);  // since the list came
    if (part !== "chats") place($("queue"), queueEls, lists.queue, function (it) {
      var d = el("div", "item");
      d.setAttribute("data-cid", it.conversation_id);
      d.onclick = function () { openChat(it.conversation_id); };
      d.appendChild(el("div", "head")); d.appendChild(el("div", "deco"));
      var b = el("button", "btn primary", "接入"); b.type = "button";
      b.onclick = function (ev) { ev.stopPropagation(); send({ type: "claim", conversation_id: it.conversation_id }); };
      var v = el("button", "btn", "查看"); v.type = "button";
      v.onclick = function (ev) { ev.stopPropagation(); openChat(it.conversation_id); };
      d.appendChild(b); d.appendChild(v);
      return d;
    }, function (it, d) {
      var wait = it.waiting_seconds + age, total = it.total_seconds + age;
      d.className = "item";
      d.querySelector(".head").textContent = (it.item || "未确定事项") + " · " + (it.department || "综合");
      var x = deco(d);
      x.appendChild(el("div", "meta wait", "等待 " + mins(wait) +
        (total > wait + 5 ? "（共 " + mins(total) + "）" : "") + " · " + (REASONS[it.reason] || it.reason) +
        " · " + (CHANNELS[it.channel] || it.channel) + (it.citizen_online === false ? " · 市民已离开" : "")));
      D.emit("queueItem", it, d, wait);
    });
    place($("chats"), chatEls, lists.chats, function (it) {
      var d = el("div", "item");
      d.setAttribute("data-cid", it.conversation_id);
      d.onclick = function () { openChat(it.conversation_id); };
      d.appendChild(el("div", "head")); d.appendChild(el("div", "deco"));
      return d;
    }, function (it, d) {
      d.className = "item" + (it.conversation_id === current ? " active" : "");
      var head = d.querySelector(".head"); head.innerHTML = "";
      head.appendChild(el("span", "", (it.item || "未确定事项") + " · " + (it.department || "综合")));
      deco(d).appendChild(el("div", "meta", (it.mine ? "我负责" : it.agent) + " · " + (CHANNELS[it.channel] || it.channel) +
        (it.citizen_online === false ? " · 市民已离开" : "")));
      D.emit("chatItem", it, d);
    });
  }

  // The transfer list is rebuilt only when the agents change, so an open dropdown and the
  // agent's choice survive list updates.
  var agentsShown = "";
  function renderAgents() {
    var sel = $("to-agent"), keep = sel.value;
    var others = (lists.agents || []).filter(function (a) { return !me || a.id !== me.id; });
    var sig = JSON.stringify(others);
    if (sig === agentsShown) return;
    agentsShown = sig;
    sel.innerHTML = '<option value="">选择帮办人员</option>';
    others.forEach(function (a) {
      var o = el("option", "", a.name + "（" + ({ online: "在线", away: "离开", offline: "离线" }[a.presence]) + "，" + a.busy + "/" + a.max_chats + "）");
      o.value = a.id; sel.appendChild(o);
    });
    sel.value = keep;
    if (sel.value !== keep) sel.value = "";
  }

  function openChat(id) {
    if (current !== id) {
      current = id; $("log").innerHTML = ""; $("typing").textContent = ""; rendered = {};
      lastSeq[id] = 0; outbox.forEach(pendingRow);
    }
    watched[id] = true;
    send({ type: "open", conversation_id: id, last_seq: lastSeq[id] || 0 });
    D.emit("opened", id);
    renderHead(); D.renderLists();
    $("msg").focus();
  }
  function renderHead() {
    if (!current) return;
    var on = citizenOnline[current];
    $("chat-head").textContent = "会话 " + current.slice(0, 8) + (on === false ? "（市民已断开）" : on ? "（市民在线）" : "");
  }
  function renderContext(f) {
    if (f.conversation_id !== current) return;
    var c = $("context"); c.innerHTML = "";
    if (f.citizen_online !== null && f.citizen_online !== undefined) citizenOnline[current] = f.citizen_online;
    renderHead();
    c.appendChild(el("p", "", f.current_item ? f.current_item.name + "（" + (f.current_item.department || "") + "）" : "市民还没说到具体事项"));
    c.appendChild(el("p", "", "渠道：" + (CHANNELS[f.channel] || f.channel || "")));
    D.emit("context", f);
  }
  // A refused action, said on the page (an alert() would block the console).
  var problemTimer = null;
  function problem(text) {
    var p = $("desk-error"); p.textContent = text; p.hidden = false;
    clearTimeout(problemTimer);
    problemTimer = setTimeout(function () { p.hidden = true; }, 8000);
  }
  function nearBottom() { var l = $("log"); return l.scrollHeight - l.scrollTop - l.clientHeight < 80; }
  var scrollPending = false;
  function toBottom() {  // once per frame: a chat's whole log arrives as a burst of events
    if (scrollPending) return;
    scrollPending = true;
    requestAnimationFrame(function () { scrollPending = false; var l = $("log"); l.scrollTop = l.scrollHeight; });
  }
  function addEvent(f) {
    var c = f.conversation_id;
    lastSeq[c] = Math.max(lastSeq[c] || 0, f.seq);
    if (f.from === "bot" || f.from === "agent") {
      (f.buttons || []).forEach(function (b) { if (b && b.payload) (titles[c] = titles[c] || {})[b.payload] = b.title; });
    }
    D.emit("event", f);
    if (c !== current) return;
    if (f.kind === "delivery" && delivery(f)) return;
    if (rendered[f.seq]) return;  // sent again: the chat was opened twice in a row
    rendered[f.seq] = true;
    var stick = scrollPending || nearBottom() || f.from === "agent";
    var mine = f.client_id && rowOf(String(f.client_id).split(":").pop());
    if (mine && !mine.classList.contains("failed")) mine.parentNode.removeChild(mine);
    var cls = { citizen: "citizen", bot: "bot", agent: "agent", system: "system", note: "note" }[f.from] || "system";
    var row = el("div", "row " + cls);
    var b = el("div", "bubble");
    var who = { citizen: "市民", bot: "导办助手", agent: f.agent || "帮办", note: "内部备注", system: "" }[f.from];
    if (who) b.appendChild(el("p", "who", who));
    var shown = f.from === "citizen" ? label(c, f.text) : { text: f.text, pressed: false };
    var p = el("p", "text" + (shown.pressed ? " pressed" : ""), shown.text);
    if (shown.pressed) p.title = "市民点了按钮";
    b.appendChild(p);
    if (f.from === "bot" && f.buttons && f.buttons.length) {
      b.appendChild(el("p", "choices", "按钮：" + f.buttons.map(function (x) { return x.title; }).join(" ｜ ")));
    }
    if (f.at && f.from !== "system" && at(f.at)) b.appendChild(el("p", "at", new Date(at(f.at)).toLocaleTimeString("zh-CN", { hour12: false })));
    row.appendChild(b);
    row.setAttribute("data-seq", f.seq);
    $("log").insertBefore(row, $("log").querySelector(".row.pending"));  // unsent ones stay last
    if (stick) toBottom();
    if (f.from === "citizen") D.emit("typing", null);
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
    toBottom();
  }
  function renderOutbox() {
    var box = $("outbox"), n = outbox.length;
    box.hidden = !n;
    box.textContent = n ? "未发送 " + n + " 条：" + (connected() ? "等待服务器确认……" : "连接恢复后自动重发") : "";
  }
  function enqueue(frame, text) {
    frame.client_id = cid();
    var o = { frame: frame, label: text };
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
    if (!row) { problem(message); return; }
    row.classList.remove("pending"); row.classList.add("failed");
    row.querySelector(".status").textContent = "未发送：" + message;
  }
  function submit() {
    var t = $("msg").value.trim();
    if (!t || !current) return;
    enqueue({ type: "send", conversation_id: current, text: t }, t);
    $("msg").value = "";
  }

  $("login").addEventListener("submit", login);
  $("logout").onclick = async function () { await fetch("/agent/logout", { method: "POST" }); location.reload(); };
  $("presence").onchange = function () { send({ type: "presence", status: this.value }); };
  $("composer").addEventListener("submit", function (ev) { ev.preventDefault(); submit(); });
  $("msg").addEventListener("keydown", function (ev) {
    // Enter sends, Shift+Enter is a new line; Enter that ends an IME composition is not a send.
    if (ev.key !== "Enter" || ev.shiftKey || ev.isComposing || ev.keyCode === 229) return;
    if (ev.defaultPrevented) return;  // taken by the 常用语 menu
    ev.preventDefault(); submit();
  });
  window.daobanAgent = { state: function () {
    var s = { connected: connected(), current: current, pending: outbox.length };
    D.emit("state", s);
    return s;
  } };
  document.addEventListener("DOMContentLoaded", start);
})();
