/* The operations dashboard (/admin/dashboard): reads /admin/dashboard/data for the chosen
 * Harbin days and draws it with Chart.js (vendored: /static/vendor/chart.umd.min.js). */
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var COLORS = ["#0b4f9c", "#2b7a3d", "#c99a2e", "#b3261e", "#6a3d9a", "#1f8a8a", "#7a7a7a"];
  var CHANNELS = { web: "网页", wechat: "微信", rest: "接口", cli: "命令行", unknown: "其他" };
  var charts = {};

  function pct(x) { return x === null || x === undefined ? "–" : (x * 100).toFixed(1) + "%"; }
  function iso(d) { return d.toISOString().slice(0, 10); }

  function draw(id, config) {
    if (charts[id]) { charts[id].destroy(); }
    config.options = Object.assign({
      animation: false, responsive: true, maintainAspectRatio: false,
      plugins: { legend: { position: "bottom" } }
    }, config.options || {});
    charts[id] = new Chart($(id), config);
  }

  function perChannel(series) {
    return Object.keys(series).map(function (ch, i) {
      return { label: CHANNELS[ch] || ch, data: series[ch], backgroundColor: COLORS[i % COLORS.length],
               borderColor: COLORS[i % COLORS.length] };
    });
  }

  function bars(id, rows, label, color) {
    draw(id, {
      type: "bar",
      data: { labels: rows.map(function (r) { return r.name; }),
              datasets: [{ label: label, data: rows.map(function (r) { return r.count; }),
                           backgroundColor: color, maxBarThickness: 36 }] },
      options: { indexAxis: "y", plugins: { legend: { display: false } },
                 scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } }
    });
  }

  function rows(tbody, items, cells) {
    tbody.textContent = "";
    if (!items.length) {
      var tr = tbody.insertRow(), td = tr.insertCell();
      td.colSpan = 5; td.className = "empty"; td.textContent = "暂无数据";
      return;
    }
    items.forEach(function (item) {
      var tr = tbody.insertRow();
      cells(item).forEach(function (v, i) {
        var td = tr.insertCell();
        td.textContent = String(v);  // citizens' words: text, never markup
        if (i > 0) { td.className = "n"; }
      });
    });
  }

  function render(d) {
    var t = d.totals;
    $("t-messages").textContent = t.messages;
    $("t-conversations").textContent = t.conversations;
    $("t-no-match").textContent = pct(t.no_match_rate);
    $("t-handoff").textContent = pct(t.handoff_rate);
    $("t-ratings").textContent = t.ratings;
    var stacked = { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } };
    draw("c-messages", { type: "bar", data: { labels: d.days, datasets: perChannel(d.messages) },
                         options: { scales: stacked } });
    draw("c-conversations", { type: "bar", data: { labels: d.days, datasets: perChannel(d.conversations) },
                              options: { scales: stacked } });
    draw("c-rates", {
      type: "line",
      data: { labels: d.days, datasets: [
        { label: "未匹配率", data: d.no_match_rate.map(function (x) { return x === null ? null : x * 100; }),
          borderColor: COLORS[3], backgroundColor: COLORS[3], spanGaps: true },
        { label: "转人工率", data: d.handoff_rate.map(function (x) { return x === null ? null : x * 100; }),
          borderColor: COLORS[0], backgroundColor: COLORS[0], spanGaps: true }] },
      options: { scales: { y: { beginAtZero: true, title: { display: true, text: "%" } } } }
    });
    bars("c-items", d.top_items, "次数", COLORS[0]);
    draw("c-ratings", {
      type: "bar",
      data: { labels: d.ratings.map(function (r) { return r.name; }), datasets: [
        { label: "好评（4–5 分）", data: d.ratings.map(function (r) { return r.good; }), backgroundColor: COLORS[1], maxBarThickness: 36 },
        { label: "一般（3 分）", data: d.ratings.map(function (r) { return r.scores[2]; }), backgroundColor: COLORS[6], maxBarThickness: 36 },
        { label: "差评（1–2 分）", data: d.ratings.map(function (r) { return r.bad; }), backgroundColor: COLORS[3], maxBarThickness: 36 }] },
      options: { indexAxis: "y", scales: { x: { stacked: true, beginAtZero: true, ticks: { precision: 0 } },
                                           y: { stacked: true } } }
    });
    rows($("ratings-table").tBodies[0], d.ratings, function (r) {
      return [r.name, r.count, r.average.toFixed(2), r.good, r.bad];
    });
    bars("c-plates", d.doorplate.plates, "扫码次数", COLORS[2]);
    bars("c-communities", d.doorplate.communities, "扫码次数", COLORS[5]);
    bars("c-streets", d.doorplate.streets, "扫码次数", COLORS[4]);
    rows($("questions").tBodies[0], d.unanswered_questions, function (q) { return [q.text, q.count]; });
  }

  function load() {
    var q = "from=" + encodeURIComponent($("from").value) + "&to=" + encodeURIComponent($("to").value);
    $("csv").href = "/admin/dashboard.csv?" + q;
    $("status").textContent = "正在加载……";
    document.body.removeAttribute("data-ready");
    fetch("/admin/dashboard/data?" + q, { credentials: "same-origin" }).then(function (r) {
      if (r.status === 401) { location.replace("/agent?next=" + encodeURIComponent(location.pathname + location.search)); return null; }
      return r.json().then(function (body) {
        if (!r.ok) { throw new Error(body.error || "加载失败"); }
        return body;
      });
    }).then(function (d) {
      if (!d) { return; }
      render(d);
      $("status").textContent = d.from + " 至 " + d.to + "（哈尔滨时间）";
      document.body.setAttribute("data-ready", "1");
    }).catch(function (e) {
      $("status").textContent = "加载失败：" + e.message;
    });
  }

  function init() {
    var params = new URLSearchParams(location.search);
    var to = new Date(Date.now() + 8 * 3600 * 1000);  // Harbin's today
    var from = new Date(to.getTime() - 29 * 86400 * 1000);
    $("from").value = params.get("from") || iso(from);
    $("to").value = params.get("to") || iso(to);
    $("range").addEventListener("submit", function (ev) {
      ev.preventDefault();
      history.replaceState(null, "", "?from=" + $("from").value + "&to=" + $("to").value);
      load();
    });
    load();
  }

  init();
})();
