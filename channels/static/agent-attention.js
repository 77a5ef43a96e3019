// Attention in the console: unread counts per chat, a beep (WebAudio) and the tab title on
// a new citizen message or a new queued chat (mute remembered in localStorage), the chat
// list's last-message preview and waiting time, SLA highlighting (DAOBAN_SLA_SECONDS).
(function () {
  "use strict";
  var D = window.daobanConsole, $ = function (id) { return document.getElementById(id); };
  var BASE_TITLE = document.title, MUTE_KEY = "daoban.agent.muted";
  var maxSeen = {}, unread = {}, preview = {}, waitingSince = {};
  var knownQueue = null, knownChats = null, newQueued = {};
  var audio = null, beeps = 0, rings = 0, lastBeep = 0, breaches = 0, pending = null;
  var muted = false;
  try { muted = localStorage.getItem(MUTE_KEY) === "1"; } catch (e) { /* private mode */ }
  $("mute").checked = muted;

  function sla() { var me = D.me(); return (me && me.sla_seconds) || 120; }
  function count(o) { return Object.keys(o).reduce(function (n, k) { return n + (o[k] || 0); }, 0); }

  function beep() {
    rings++;
    if (muted || Date.now() - lastBeep < 800) return;
    try {
      var Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return;
      audio = audio || new Ctx();
      if (audio.state === "suspended") audio.resume();
      var osc = audio.createOscillator(), gain = audio.createGain();
      osc.type = "sine"; osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.2, audio.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.25);
      osc.connect(gain); gain.connect(audio.destination);
      osc.start(); osc.stop(audio.currentTime + 0.25);
      lastBeep = Date.now(); beeps++;
    } catch (e) { /* no audio device: the title still changes */ }
  }
  function title() {
    var n = count(unread) + Object.keys(newQueued).length;
    document.title = n ? "(" + n + ") 新消息 · " + BASE_TITLE : BASE_TITLE;
  }
  function later() {  // one re-render for a burst of events
    if (pending) return;
    pending = setTimeout(function () { pending = null; D.renderLists("chats"); title(); }, 100);
  }
  function seen(c) {
    unread[c] = 0;
    if (maxSeen[c]) { read[c] = maxSeen[c]; saveRead(); }
    title(); later();
  }

  // What the agent has read, per chat (the highest sequence number shown while the chat was
  // open), kept across reloads: unread counts only what came after it.
  var read = {};
  function readKey() { var me = D.me(); return "daoban.agent.read." + (me ? me.id : ""); }
  function saveRead() {
    var l = D.lists(), keep = {};
    (l ? l.chats : []).forEach(function (it) { if (read[it.conversation_id]) keep[it.conversation_id] = read[it.conversation_id]; });
    try { localStorage.setItem(readKey(), JSON.stringify(keep)); } catch (e) { /* private mode */ }
  }
  D.on("start", function () {
    try { read = JSON.parse(localStorage.getItem(readKey()) || "{}") || {}; } catch (e) { read = {}; }
  });
  function shown(c) { return c === D.current() && document.visibilityState === "visible"; }

  D.on("event", function (f) {
    var c = f.conversation_id;
    if (f.seq <= (maxSeen[c] || 0)) return;  // the log read again when a chat is opened
    var live = history[c] !== undefined && f.seq > history[c];  // not the log of a chat being loaded
    maxSeen[c] = f.seq;
    if (f.from === "citizen" || f.from === "agent" || f.from === "bot") {
      var t = f.from === "citizen" ? D.label(c, f.text).text : f.text;
      preview[c] = (f.from === "citizen" ? "市民：" : f.from === "agent" ? "我方：" : "助手：") + String(t).slice(0, 60);
    }
    if (shown(c)) { read[c] = f.seq; saveRead(); }
    if (f.from === "citizen") {
      if (!waitingSince[c]) waitingSince[c] = Math.min(D.at(f.at) || Date.now(), Date.now());
      if (!shown(c) && f.seq > (read[c] || 0)) unread[c] = (unread[c] || 0) + 1;
      if (live && (!shown(c) || !document.hasFocus())) beep();
    } else if (f.from === "agent") {
      waitingSince[c] = null; unread[c] = 0;
    }
    later();
  });

  // An opened chat's context says up to where its log is history.
  var history = {};
  D.on("loading", function (f) { history[f.conversation_id] = Math.max(history[f.conversation_id] || 0, f.last_seq || 0); });

  D.on("lists", function (l) {
    var q = {}, chats = {}, fresh = false;
    l.queue.forEach(function (it) {
      q[it.conversation_id] = true;
      if (knownQueue && !knownQueue[it.conversation_id]) { newQueued[it.conversation_id] = true; fresh = true; }
    });
    Object.keys(newQueued).forEach(function (c) { if (!q[c]) delete newQueued[c]; });
    l.chats.forEach(function (it) {
      chats[it.conversation_id] = true;
      // A chat handed to this agent (a transfer) that was not in the agent's queue.
      if (knownChats && !knownChats[it.conversation_id] && !knownQueue[it.conversation_id] && it.mine) fresh = true;
    });
    knownQueue = q; knownChats = chats;
    if (fresh) beep();
    title();
  });
  D.on("opened", function (c) { delete newQueued[c]; seen(c); });
  D.on("gone", function (c) { delete unread[c]; title(); });

  D.on("queueItem", function (it, d, wait) {
    if (newQueued[it.conversation_id]) d.classList.add("new");
    if (wait > sla()) {
      d.classList.add("sla"); queueBreaches++;
      var w = d.querySelector(".deco .wait");
      w.insertBefore(D.el("span", "sla-tag", "超时 "), w.firstChild);
    }
  });
  D.on("chatItem", function (it, d) {
    var c = it.conversation_id, x = d.querySelector(".deco");
    if (unread[c]) d.querySelector(".head").appendChild(D.el("span", "badge", String(unread[c])));
    if (preview[c]) x.appendChild(D.el("div", "preview", preview[c]));
    if (waitingSince[c]) {
      var s = Math.max(0, Math.floor((Date.now() - waitingSince[c]) / 1000));
      var w = D.el("div", "meta wait", "市民已等 " + D.mins(s));
      if (s > sla()) { d.classList.add("sla"); chatBreaches++; w.insertBefore(D.el("span", "sla-tag", "超时 "), w.firstChild); }
      x.appendChild(w);
    }
  });
  // Breaches are counted while the lists are drawn; supervisors see the total.
  var render = D.renderLists;
  var queueBreaches = 0, chatBreaches = 0;
  D.renderLists = function (part) {  // breaches are counted while the items are drawn
    if (part !== "chats") queueBreaches = 0;
    chatBreaches = 0;
    render(part);
    breaches = queueBreaches + chatBreaches;
    var me = D.me(), b = $("breaches");
    b.hidden = !(me && me.role !== "agent" && breaches);
    b.textContent = "超时 " + breaches + " 个";
  };

  $("mute").addEventListener("change", function () {
    muted = this.checked;
    try { localStorage.setItem(MUTE_KEY, muted ? "1" : "0"); } catch (e) { /* private mode */ }
  });
  // The first click anywhere lets the page play sound (browsers' autoplay rule).
  document.addEventListener("click", function () {
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!audio && Ctx) { try { audio = new Ctx(); } catch (e) { /* none */ } }
  }, { once: true });
  window.addEventListener("focus", function () { var c = D.current(); if (c) seen(c); });
  document.addEventListener("visibilitychange", function () { var c = D.current(); if (c && shown(c)) seen(c); });
  setInterval(function () { D.renderLists(); }, 5000);  // waiting times move on

  D.on("state", function (s) {
    s.unread = count(unread); s.unreadBy = unread; s.newQueued = Object.keys(newQueued).length;
    s.beeps = beeps; s.rings = rings; s.muted = muted; s.title = document.title; s.breaches = breaches;
  });
})();
