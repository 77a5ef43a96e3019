/* daoban citizen chat page. Plain browser JavaScript, no dependencies, no build step.
 * Protocol: see the /ws/chat contract (hello/welcome, message/ack with client_id and seq, ping/pong).
 * Server text is only ever inserted with textContent, never innerHTML.
 */
(function () {
  'use strict';

  var KEY = { cid: 'daoban.cid', token: 'daoban.token', seq: 'daoban.seq', elder: 'daoban.elder', outbox: 'daoban.outbox' };
  var PING_MS = 20000;          // client heartbeat
  var DEAD_MS = 50000;          // no frame at all for this long: treat the socket as dead
  var BACKOFF_MIN = 500;
  var BACKOFF_MAX = 5000;
  var RESEND_MAX_S = 30;        // longest wait before re-sending a message that met an outage
  var MAX_TEXT = 1000;
  var RATINGS = { '/rate:5': '非常满意', '/rate:4': '满意', '/rate:3': '一般', '/rate:2': '不满意', '/rate:1': '非常不满意' };
  var ERRORS = {
    rate_limited: '您发送得太快了，请稍等几秒再发。',
    too_large: '消息太长了，请分几次发送。',
    too_long: '消息太长了，请控制在1000字以内。',
    empty: '请先输入内容再发送。',
    bad_frame: '消息格式不对，请刷新页面后重试。',
    internal: '系统开小差了，请稍后再试，或拨打12345。',
    unavailable: '系统暂时繁忙，消息还没有发出，稍后会自动重发。'
  };

  // ---- storage (may be unavailable: private mode, blocked third-party storage in the widget) ----
  var memStore = {};
  function load(k) {
    try { return window.localStorage.getItem(k); } catch (e) { return k in memStore ? memStore[k] : null; }
  }
  function save(k, v) {
    try {
      if (v === null) window.localStorage.removeItem(k); else window.localStorage.setItem(k, v);
    } catch (e) {
      if (v === null) delete memStore[k]; else memStore[k] = v;
    }
  }

  // ---- URL options ----
  var params = new URLSearchParams(location.search);
  var embed = params.get('embed') === '1';
  var place = (function () {
    var m = /^\/d\/([^/?#]+)/.exec(location.pathname);
    var t = m ? m[1] : params.get('place');
    if (!t) return null;
    try { t = decodeURIComponent(t); } catch (e) { /* keep raw */ }
    return t.length <= 200 ? t : null;
  })();

  // ---- state ----
  var cid = load(KEY.cid);
  // The capability the server gave with the conversation: without it the id opens nothing.
  var token = load(KEY.token);
  // Rendered server seq. Starts at 0 on every page load so the server replays the whole
  // transcript (that is how a reload shows it); within a page it is the resume point.
  var lastSeq = 0;
  var outbox = [];               // [{client_id, text, title}] not yet acked by the server
  try { outbox = JSON.parse(load(KEY.outbox) || '[]') || []; } catch (e) { outbox = []; }
  if (!Array.isArray(outbox)) outbox = [];
  var titles = {};               // button payload -> title, to show titles instead of "/walk"
  Object.keys(RATINGS).forEach(function (p) { titles[p] = RATINGS[p]; });
  titles['/human'] = '转人工';

  var sock = null;
  var connected = false;         // true between welcome and close
  var backoff = BACKOFF_MIN;
  var reconnectTimer = null;
  var ackTimer = null;
  var retryTimer = null;
  // Messages the server refused as retryable (an outage): client_id -> true, re-sent together
  // by resendTimer with back-off (retry_after, doubled on each failed round, ≤ RESEND_MAX_S).
  var failed = {};
  var resendTimer = null;
  var resendRound = 0;
  var outageNoticed = false;     // one notice per outage, not one per message
  var lastFrameAt = 0;

  // ---- DOM ----
  var $ = function (id) { return document.getElementById(id); };
  var logEl = $('log');
  var connEl = $('conn');
  var form = $('composer');
  var input = $('msg');
  var elderBtn = $('elder-toggle');

  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined && text !== null) n.textContent = String(text);
    return n;
  }

  // A card that just arrived stays readable from its title: later rows of the same answer
  // (buttons, the rating question) do not scroll it away. The citizen's next message
  // releases it.
  var anchor = null;
  function scrollDown() {
    var bottom = logEl.scrollHeight;
    if (anchor && anchor.parentNode === logEl) {
      var top = logEl.scrollTop + anchor.getBoundingClientRect().top - logEl.getBoundingClientRect().top - 8;
      logEl.scrollTop = Math.min(bottom, Math.max(0, top));
    } else {
      logEl.scrollTop = bottom;
    }
  }

  // Server rows go before the first pending (optimistic) bubble, so pending ones stay last.
  function insertRow(row) {
    var pending = logEl.querySelector('.row.pending');
    logEl.insertBefore(row, pending);
    scrollDown();
  }

  function newId() {
    var b = new Uint8Array(16);
    if (window.crypto && window.crypto.getRandomValues) window.crypto.getRandomValues(b);
    else for (var i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
    return 'c-' + Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join('');
  }

  function timeOf(iso) {
    var d = iso ? new Date(iso) : null;
    if (!d || isNaN(d.getTime())) return null;
    var t = el('time', 'at', ('0' + d.getHours()).slice(-2) + ':' + ('0' + d.getMinutes()).slice(-2));
    t.setAttribute('datetime', iso);
    return t;
  }

  // ---- connection banner ----
  function setConn(state) {
    if (state === 'ok') {
      connEl.textContent = '';
      connEl.hidden = true;
    } else {
      connEl.hidden = false;
      connEl.className = 'conn ' + state;
      connEl.textContent = state === 'lost' ? '已断开，正在重连…' : '连接中…';
    }
  }

  // ---- rendering ----
  function displayText(text) {
    return Object.prototype.hasOwnProperty.call(titles, text) ? titles[text] : text;
  }

  function citizenRow(text, clientId, pending) {
    var row = el('div', 'row citizen' + (pending ? ' pending' : ''));
    if (clientId) row.setAttribute('data-client-id', clientId);
    var b = el('div', 'bubble');
    b.appendChild(el('p', 'who sr-only', '我：'));
    b.appendChild(el('p', 'text', text));
    if (pending) b.appendChild(el('p', 'status', '发送中…'));
    row.appendChild(b);
    return row;
  }

  function renderButtons(buttons, into) {
    var list = (buttons || []).filter(function (x) { return x && x.title && x.payload; }).slice(0, 5);
    if (!list.length) return;
    list.forEach(function (x) { titles[x.payload] = x.title; });
    var isRating = list.every(function (x) { return /^\/rate:[1-5]$/.test(x.payload); });
    var box = el('div', isRating ? 'buttons rating' : 'buttons');
    box.setAttribute('role', 'group');
    box.setAttribute('aria-label', isRating ? '请为服务打分' : '可选操作');
    list.forEach(function (x) {
      var btn = el('button', 'btn choice', x.title);
      btn.type = 'button';
      btn.setAttribute('data-payload', x.payload);
      btn.addEventListener('click', function () {
        if (isRating) {
          box.querySelectorAll('button').forEach(function (o) { o.disabled = true; });
          btn.setAttribute('aria-pressed', 'true');
        }
        send(x.payload, x.title);
      });
      box.appendChild(btn);
    });
    into.appendChild(box);
  }

  function fact(dl, label, value) {
    if (value === undefined || value === null || value === '') return;
    dl.appendChild(el('dt', null, label));
    dl.appendChild(el('dd', null, value));
  }

  function sourceLine(c, into) {
    var line = String(c.source || '');
    var url = c.source_url;
    if (/^https?:\/\//.test(line)) { url = url || line; line = '来源：网络公开资料'; }   // cards stored before source lines
    else if (line && !/^来源[：:]/.test(line)) line = '来源：' + line;
    if (!line) return;
    var p = el('p', 'source secondary');
    if (url && /^https?:\/\//.test(url)) {
      var a = el('a', null, line);
      a.href = url;
      a.rel = 'noopener noreferrer';
      a.target = '_blank';
      p.appendChild(a);
    } else {
      p.textContent = line;
    }
    into.appendChild(p);
  }

  // What, where, how long, cost, online or not first; other places' figures folded away.
  function itemCard(c) {
    var card = el('article', 'card');
    card.setAttribute('aria-label', (c.type === 'bundle' ? '一件事：' : '事项：') + (c.name || ''));
    if (c.type === 'bundle') card.appendChild(el('p', 'kind', '一件事 · 联办'));
    card.appendChild(el('h2', 'card-title', c.name || ''));
    if (c.plain_name) card.appendChild(el('p', 'plain', '俗称：' + c.plain_name));
    var what = c.brief || c.summary;
    if (what) card.appendChild(el('p', 'summary', what));
    var dl = el('dl', 'facts');
    fact(dl, '在哪办', c.where);
    fact(dl, '多久办好', c.time_limit);
    fact(dl, '收费', c.fee);
    fact(dl, '网上办', c.online && c.online.length ? c.online.join('；') : '暂不支持，需到现场');
    if (typeof c.visits === 'number') fact(dl, '到现场次数', c.visits ? c.visits + '次' : '0次（不用跑）');
    if (typeof c.materials_count === 'number') fact(dl, '材料数', c.materials_count + '项');
    card.appendChild(dl);
    if (c.members && c.members.length) {
      var m = el('div', 'members');
      m.appendChild(el('h3', null, '一次办好这些事'));
      var ul = el('ul');
      c.members.forEach(function (x) { ul.appendChild(el('li', null, x && x.name)); });
      m.appendChild(ul);
      card.appendChild(m);
    }
    if (c.brief && c.summary && c.summary.length > c.brief.length) {
      var more = el('details', 'more secondary');
      more.appendChild(el('summary', null, '详细说明'));
      more.appendChild(el('p', null, c.summary));
      card.appendChild(more);
    }
    var other = (c.elsewhere && c.elsewhere.length) ? c.elsewhere : (c.reductions || []);
    if (other.length) {
      var r = el('details', 'elsewhere secondary');
      r.appendChild(el('summary', null, '其他地方的做法（不是哈尔滨的数据）'));
      var ul2 = el('ul');
      other.forEach(function (x) { ul2.appendChild(el('li', null, String(x).replace(/（[^（）]*https?:\/\/[^）]*）/g, ''))); });
      r.appendChild(ul2);
      card.appendChild(r);
    }
    if (c.caveat) card.appendChild(el('p', 'caveat', c.caveat));
    sourceLine(c, card);
    return card;
  }

  var STATES = {
    ready: ['✔', '已备好'], missing: ['✘', '还要准备'], deferrable: ['✘', '还要准备，可容缺后补'],
    commitment: ['✘', '可签告知承诺书代替'], unsure: ['？', '待确认'], skipped: ['○', '可不带纸质件'],
    pending: ['☐', '还没核对'], listed: ['☐', '要带']
  };

  // The checklist with amounts and states, under each member item's name (a 一件事).
  function groupedList(c, card) {
    c.groups.forEach(function (g) {
      var sec = el('section', 'group member');
      if (g && g.title) sec.appendChild(el('h3', 'member-name', g.title));
      var ul = el('ul');
      ((g && g.materials) || []).forEach(function (x) {
        var st = STATES[x.state] || ['☐', x.label || ''];
        var li = el('li', 'mat ' + (x.state || ''));
        var box = el('span', 'box', st[0] === '☐' ? '' : st[0]);   // an empty box to tick by hand
        box.setAttribute('aria-hidden', 'true');
        li.appendChild(box);
        var body = el('span', 'mat-body');
        body.appendChild(el('span', 'name', x.name));
        if (x.amount) body.appendChild(el('span', 'amount', x.amount));
        body.appendChild(el('span', 'state', st[1]));
        li.appendChild(body);
        ul.appendChild(li);
      });
      sec.appendChild(ul);
      card.appendChild(sec);
    });
    var dl = el('dl', 'facts');
    fact(dl, '在哪办', c.where);
    fact(dl, '多久办好', c.time_limit);
    fact(dl, '咨询电话', c.phone);
    card.appendChild(dl);
  }

  function checklistCard(c, text) {
    var lines = String(text || '').split('\n');
    var head = (lines[0] || '').replace(/[：:]\s*$/, '');
    var card = el('article', 'card checklist');
    var title = /材料清单/.test(head) ? head : '材料清单';
    card.setAttribute('aria-label', title);
    card.appendChild(el('h2', 'card-title', title));
    if (c.groups && c.groups.length) {
      groupedList(c, card);
      card.appendChild(takeAlong(card));
      return card;
    }
    [['ready', '✔', '已备好'], ['to_get', '✘', '还要准备'], ['not_needed', '○', '可不带纸质件']].forEach(function (g) {
      var names = c[g[0]] || [];
      if (!names.length) return;
      var sec = el('section', 'group ' + g[0]);
      sec.appendChild(el('h3', null, g[2] + '（' + names.length + '项）'));
      var ul = el('ul');
      names.forEach(function (n) {
        var li = el('li', g[0]);
        var tick = el('span', 'tick', g[1]);
        tick.setAttribute('aria-hidden', 'true');
        li.appendChild(tick);
        li.appendChild(el('span', 'sr-only', g[2] + '：'));
        li.appendChild(el('span', 'name', n));
        ul.appendChild(li);
      });
      sec.appendChild(ul);
      card.appendChild(sec);
    });
    lines.slice(1).forEach(function (l) {
      if (/^在哪办[：:]/.test(l)) card.appendChild(el('p', 'where', l));
    });
    card.appendChild(takeAlong(card));
    return card;
  }

  // ---- a checklist to take along: print it, or open it on another phone ----
  function markPrintable(row) {
    Array.prototype.forEach.call(logEl.querySelectorAll('.row.print-target'), function (r) {
      if (r !== row) r.classList.remove('print-target');
    });
    row.classList.add('print-target');
  }

  function takeAlong(card) {
    var box = el('div', 'buttons take-along');
    box.setAttribute('role', 'group');
    box.setAttribute('aria-label', '带走清单');
    var printBtn = el('button', 'btn print-btn', '打印清单');
    printBtn.type = 'button';
    printBtn.addEventListener('click', function () {
      var row = card.closest('.row');
      if (row) markPrintable(row);
      window.print();
    });
    var shareBtn = el('button', 'btn share-btn', '发到手机');
    shareBtn.type = 'button';
    shareBtn.addEventListener('click', function () { shareChecklist(card, shareBtn); });
    box.appendChild(printBtn);
    box.appendChild(shareBtn);
    return box;
  }

  function shareChecklist(card, btn) {
    if (!cid || !window.fetch) { notice('暂时无法生成分享链接，请稍后再试。'); return; }
    btn.disabled = true;
    var headers = { 'Content-Type': 'application/json' };
    var t = token || load(KEY.token);      // the conversation's capability (from the welcome)
    if (t) headers.Authorization = 'Bearer ' + t;
    fetch('/api/v1/conversations/' + encodeURIComponent(cid) + '/checklist/share', {
      method: 'POST', headers: headers, body: '{}', credentials: 'same-origin'
    }).then(function (r) {
      return r.json().then(function (body) { return { ok: r.ok, body: body }; });
    }).then(function (res) {
      btn.disabled = false;
      if (!res.ok || !res.body || !res.body.url) { notice((res.body && res.body.error) || '暂时无法生成分享链接，请稍后再试。'); return; }
      var old = card.querySelector('.share-result');
      if (old) old.parentNode.removeChild(old);
      var out = el('div', 'share-result');
      out.appendChild(el('p', null, '用另一部手机扫码，或打开这个链接查看清单（只读，保存30天）：'));
      var a = el('a', 'share-link', res.body.url);
      a.href = res.body.url;
      a.target = '_blank';
      a.rel = 'noopener noreferrer';
      out.appendChild(a);
      if (typeof res.body.qr_svg === 'string' && /^<svg/.test(res.body.qr_svg)) {
        var img = el('img', 'share-qr');
        img.alt = '清单二维码';
        img.src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(res.body.qr_svg);
        out.appendChild(img);
      }
      if (res.body.expires_at) out.appendChild(el('p', 'expires', '有效期到 ' + String(res.body.expires_at).slice(0, 10)));
      card.appendChild(out);
    }).catch(function () {
      btn.disabled = false;
      notice('网络不太好，分享链接没有生成，请稍后再试。');
    });
  }

  function renderMessage(m) {
    var from = m.from;
    if (from === 'citizen') {
      var title = displayText(m.text || '');
      if (m.client_id) {
        var mine = logEl.querySelector('.row.pending[data-client-id="' + cssEscape(m.client_id) + '"]');
        if (mine) { title = mine.getAttribute('data-title') || title; mine.parentNode.removeChild(mine); }
        dropFromOutbox(m.client_id);
      }
      anchor = null;                       // the citizen moved on: follow the newest rows again
      var row = citizenRow(title, m.client_id, false);
      var t = timeOf(m.at);
      if (t) row.firstChild.appendChild(t);
      insertRow(row);
      return;
    }
    if (from === 'system') {
      if (m.text) insertRow(el('div', 'row system', m.text));   // never an empty line
      return;
    }
    var rowB = el('div', 'row ' + (from === 'agent' ? 'agent' : 'bot'));
    var b = el('div', 'bubble');
    b.appendChild(el('p', from === 'agent' ? 'who' : 'who sr-only', from === 'agent' ? '人工帮办：' : '导办助手：'));
    var c = m.card;
    if (c && (c.type === 'item' || c.type === 'bundle' || c.type === 'checklist')) anchor = rowB;
    if (c && (c.type === 'item' || c.type === 'bundle')) {
      b.appendChild(itemCard(c));          // the text is the same content for text-only channels
    } else if (c && c.type === 'checklist') {
      b.appendChild(checklistCard(c, m.text));
    } else if (m.text) {
      b.appendChild(el('p', 'text', m.text));
    }
    renderButtons(m.buttons, b);
    if (c || b.querySelector('.rating')) b.classList.add('wide');   // cards and the rating row use the full width
    var tb = timeOf(m.at);
    if (tb) b.appendChild(tb);
    rowB.appendChild(b);
    if (c && c.type === 'checklist') markPrintable(rowB);
    insertRow(rowB);
  }

  function cssEscape(s) {
    return window.CSS && CSS.escape ? CSS.escape(s) : String(s).replace(/["\\]/g, '\\$&');
  }

  function notice(text) {
    var n = el('div', 'row notice', text);
    n.setAttribute('role', 'alert');
    insertRow(n);
  }

  // ---- outbox ----
  function saveOutbox() { save(KEY.outbox, outbox.length ? JSON.stringify(outbox) : null); }

  function dropFromOutbox(clientId) {
    var before = outbox.length;
    outbox = outbox.filter(function (o) { return o.client_id !== clientId; });
    if (outbox.length !== before) saveOutbox();
  }

  function markSent(clientId) {
    var row = logEl.querySelector('.row.pending[data-client-id="' + cssEscape(clientId) + '"]');
    if (!row) return;
    var st = row.querySelector('.status');
    if (st) st.parentNode.removeChild(st);
  }

  function setStatus(clientId, text) {
    var row = logEl.querySelector('.row.pending[data-client-id="' + cssEscape(clientId) + '"]');
    var st = row && row.querySelector('.status');
    if (st) st.textContent = text;
  }

  function transmit(o) {
    if (failed[o.client_id]) { delete failed[o.client_id]; setStatus(o.client_id, '发送中…'); }
    return raw({ type: 'message', client_id: o.client_id, text: o.text });
  }

  function flushOutbox() {
    if (!connected) return;
    outbox.forEach(transmit);
  }

  // The server could not take a message for now (its database or event bus is away) and
  // stored nothing of it: keep it pending and send it again on this socket, same client_id
  // (the server answers a repeat once), without waiting for a reconnect.
  function retryLater(f) {
    if (!connected) {              // the hello itself met the outage: start the socket again
      if (sock) { try { sock.close(); } catch (e) { /* closing */ } }
      return;
    }
    var pending = outbox.some(function (o) { return o.client_id === f.client_id; });
    if (!pending) return;          // already acknowledged, or not one of ours
    failed[f.client_id] = true;
    setStatus(f.client_id, '未发送，稍后自动重发');
    if (!outageNoticed) { outageNoticed = true; notice(f.message || ERRORS.unavailable); }
    if (resendTimer) return;
    var first = Math.max(1, Number(f.retry_after) || 2);
    var wait = Math.min(RESEND_MAX_S, first * Math.pow(2, resendRound));
    resendRound += 1;
    resendTimer = setTimeout(resendFailed, wait * 1000);
  }

  function resendFailed() {
    resendTimer = null;
    if (!connected) return;        // the welcome re-sends the whole outbox
    outbox.forEach(function (o) { if (failed[o.client_id]) transmit(o); });
  }

  // Public entry: send text (a typed message or a button payload) and show `title`.
  function send(text, title) {
    text = String(text || '').trim();
    if (!text) { notice(ERRORS.empty); return; }
    if (text.length > MAX_TEXT) { notice(ERRORS.too_long); return; }
    var o = { client_id: newId(), text: text, title: title || text };
    outbox.push(o);
    saveOutbox();
    addPendingRow(o);
    if (connected) transmit(o);
  }

  function addPendingRow(o) {
    var row = citizenRow(o.title, o.client_id, true);
    row.setAttribute('data-title', o.title);
    logEl.appendChild(row);
    anchor = null;
    scrollDown();
  }

  // ---- socket ----
  function raw(obj) {
    if (!sock || sock.readyState !== 1) return false;
    try { sock.send(JSON.stringify(obj)); return true; } catch (e) { return false; }
  }

  function scheduleAck() {
    if (ackTimer) return;
    ackTimer = setTimeout(function () {
      ackTimer = null;
      if (lastSeq > 0) raw({ type: 'ack', seq: lastSeq });
    }, 0);
  }

  function onFrame(f) {
    switch (f.type) {
      case 'welcome': {
        var previous = cid;
        cid = f.conversation_id;
        save(KEY.cid, cid);
        if (typeof f.token === 'string') { token = f.token; save(KEY.token, token); }
        if (!f.resumed && previous && lastSeq > 0) {
          // The server no longer knows our conversation: start over, keep what is on screen.
          lastSeq = 0;
          notice('之前的对话已结束，已为您开始新的对话。');
        } else if (typeof f.last_seq === 'number' && f.last_seq < lastSeq) {
          lastSeq = f.last_seq;
        }
        save(KEY.seq, String(lastSeq));
        connected = true;
        backoff = BACKOFF_MIN;
        setConn('ok');
        flushOutbox();
        break;
      }
      case 'message':
        if (typeof f.seq !== 'number' || f.seq <= lastSeq) return;   // duplicate from a replay
        if (f.mode) withHuman = f.mode === 'WAITING_AGENT' || f.mode === 'WITH_AGENT';
        if (f.from === 'agent') agentTyping(false);
        lastSeq = f.seq;
        save(KEY.seq, String(lastSeq));
        renderMessage(f);
        scheduleAck();
        break;
      case 'ack':
        if (!f.client_id) return;
        dropFromOutbox(f.client_id);
        delete failed[f.client_id];
        resendRound = 0;           // the server takes messages again
        outageNoticed = false;
        if (f.rejected) {
          var row = logEl.querySelector('.row.pending[data-client-id="' + cssEscape(f.client_id) + '"]');
          if (row) row.parentNode.removeChild(row);
        } else {
          markSent(f.client_id);
        }
        break;
      case 'error':
        if (f.retryable === true) { retryLater(f); break; }
        notice(f.message || ERRORS[f.code] || '出错了，请稍后再试。');
        if (f.code === 'rate_limited' && outbox.length && !retryTimer) {
          retryTimer = setTimeout(function () { retryTimer = null; flushOutbox(); }, 4000);
        }
        break;
      case 'ping':
        raw({ type: 'pong' });
        break;
      case 'typing':
        agentTyping(true);
        break;
      default:
        break;                     // pong and unknown frames: nothing to do
    }
  }

  // ---- typing, both ways, only with a human on the other side ----
  var withHuman = false, typingEl = null, typingTimer = null, typedAt = 0;
  function agentTyping(on) {
    if (!typingEl && !on) return;
    if (!typingEl) {
      typingEl = el('p', 'typing-hint');
      typingEl.setAttribute('role', 'status');
      typingEl.style.cssText = 'margin:0;padding:0 .75em;font-size:.85em;color:#4a5563;min-height:1.4em';
      form.parentNode.insertBefore(typingEl, form);
    }
    typingEl.textContent = on ? '帮办人员正在输入…' : '';
    clearTimeout(typingTimer);
    if (on) typingTimer = setTimeout(function () { typingEl.textContent = ''; }, 4000);
  }
  function typed() {
    if (!withHuman || !connected || Date.now() - typedAt < 2000 || !input.value.trim()) return;
    typedAt = Date.now();
    raw({ type: 'typing' });
  }

  function connect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (sock && (sock.readyState === 0 || sock.readyState === 1)) return;
    var url = (location.protocol === 'https:' ? 'wss' : 'ws') + '://' + location.host + '/ws/chat';
    var ws;
    try { ws = new WebSocket(url); } catch (e) { scheduleReconnect(); return; }
    sock = ws;
    ws.onopen = function () {
      if (ws !== sock) return;
      lastFrameAt = Date.now();
      ws.send(JSON.stringify({ type: 'hello', conversation_id: cid || null, token: token || null, last_seq: lastSeq, place: place }));
    };
    ws.onmessage = function (ev) {
      if (ws !== sock) return;
      lastFrameAt = Date.now();
      var f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      if (f && typeof f === 'object') onFrame(f);
    };
    ws.onclose = function () {
      if (ws !== sock) return;
      sock = null;
      connected = false;
      setConn('lost');
      scheduleReconnect();
    };
    ws.onerror = function () { /* onclose follows */ };
  }

  function scheduleReconnect() {
    if (reconnectTimer) return;
    var wait = backoff;
    backoff = Math.min(BACKOFF_MAX, backoff * 2);
    reconnectTimer = setTimeout(connect, wait);
  }

  function reconnectNow() {
    if (sock) return;
    backoff = BACKOFF_MIN;
    connect();
  }

  function heartbeat() {
    if (!sock || sock.readyState !== 1) return;
    if (Date.now() - lastFrameAt > DEAD_MS) { sock.close(); return; }   // silent dead link
    raw({ type: 'ping' });
  }

  // ---- 适老化 (elder) mode ----
  function setElder(on, remember) {
    document.body.classList.toggle('elder', on);
    elderBtn.setAttribute('aria-pressed', on ? 'true' : 'false');
    var st = elderBtn.querySelector('.toggle-state');
    if (st) st.textContent = on ? '开' : '关';
    if (remember) save(KEY.elder, on ? '1' : null);
  }

  // ---- wiring ----
  function init() {
    if (embed) document.body.classList.add('embed');
    var q = params.get('elder');
    if (q === '1' || q === '0') setElder(q === '1', true);
    else setElder(load(KEY.elder) === '1', false);
    elderBtn.addEventListener('click', function () {
      setElder(!document.body.classList.contains('elder'), true);
    });

    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var text = input.value;
      if (!text.trim()) { input.focus(); return; }
      send(text);
      input.value = '';
      input.focus();
    });
    input.addEventListener('input', typed);
    $('human').addEventListener('click', function () { send('/human', '转人工'); });
    // Example buttons in the static greeting send their text.
    Array.prototype.forEach.call(document.querySelectorAll('.intro [data-text]'), function (b) {
      b.addEventListener('click', function () { send(b.getAttribute('data-text')); });
    });

    // Messages left unacked by a previous page load: show them as pending, re-sent after welcome.
    outbox.forEach(addPendingRow);

    setConn('connecting');
    connect();
    setInterval(heartbeat, PING_MS);
    window.addEventListener('online', reconnectNow);
    document.addEventListener('visibilitychange', function () {
      if (document.visibilityState === 'visible') reconnectNow();
    });
  }

  // Test hook (used by the browser tests).
  window.daoban = {
    socket: function () { return sock; },
    // Simulates a network drop: forget the socket at once (no clean handshake wait) and reconnect.
    dropConnection: function () {
      var ws = sock;
      if (!ws) return;
      sock = null;
      connected = false;
      try { ws.close(4000, 'dropped'); } catch (e) { /* already closing */ }
      setConn('lost');
      scheduleReconnect();
    },
    state: function () {
      return { cid: cid, lastSeq: lastSeq, connected: connected, pending: outbox.length, retrying: Object.keys(failed).length };
    }
  };

  init();
})();
