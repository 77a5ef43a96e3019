/* daoban embeddable widget.
 *   <script src="https://daoban.example/widget.js"></script>
 * Optional attributes on the script tag: data-place="<door-sign token>", data-elder="1".
 * Shows a round bubble (bottom-right) that opens/closes an iframe of the chat page (?embed=1)
 * from the script's own origin. No dependencies; styles are isolated in a shadow root when possible.
 */
(function () {
  'use strict';
  if (window.__daobanWidget) return;
  window.__daobanWidget = true;

  var script = document.currentScript || (function () {
    var all = document.getElementsByTagName('script');
    for (var i = all.length - 1; i >= 0; i--) if (/\/widget\.js(\?|#|$)/.test(all[i].src)) return all[i];
    return null;
  })();
  if (!script || !script.src) return;
  var origin = new URL(script.src, location.href).origin;

  var q = new URLSearchParams({ embed: '1' });
  if (script.getAttribute('data-place')) q.set('place', script.getAttribute('data-place'));
  if (script.getAttribute('data-elder') === '1') q.set('elder', '1');
  var pageUrl = origin + '/?' + q.toString();

  var CSS = [
    ':host{all:initial}',
    '.dbw-bubble{position:fixed;right:20px;bottom:20px;z-index:2147483647;width:64px;height:64px;border-radius:50%;',
    'border:3px solid #fff;background:#0b3d7a;color:#fff;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.35);',
    'display:flex;align-items:center;justify-content:center;padding:0;',
    'font:700 17px/1 -apple-system,"PingFang SC","Microsoft YaHei","Noto Sans CJK SC",sans-serif}',
    '.dbw-bubble:hover{background:#083066}',
    '.dbw-bubble:focus-visible{outline:3px solid #1a1a1a;outline-offset:2px;box-shadow:0 0 0 6px #ffd23f}',
    '.dbw-bubble svg{width:30px;height:30px;fill:currentColor}',
    '.dbw-panel{position:fixed;right:20px;bottom:96px;z-index:2147483646;width:400px;max-width:calc(100vw - 24px);',
    'height:640px;max-height:calc(100vh - 120px);border:1px solid #5b6573;border-radius:12px;overflow:hidden;',
    'background:#fff;box-shadow:0 8px 30px rgba(0,0,0,.3)}',
    '.dbw-panel[hidden]{display:none}',
    '.dbw-panel iframe{width:100%;height:100%;border:0;display:block}',
    '@media (max-width:480px){.dbw-panel{left:0;right:0;top:0;bottom:96px;width:auto;max-width:none;height:auto;',
    'max-height:none;border-radius:0;border:0}}'
  ].join('');

  var CHAT_ICON = '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path d="M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2zm3 6.5a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01z"/></svg>';
  var CLOSE_ICON = '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path d="M5.3 3.9 12 10.6l6.7-6.7 1.4 1.4-6.7 6.7 6.7 6.7-1.4 1.4-6.7-6.7-6.7 6.7-1.4-1.4 6.7-6.7-6.7-6.7z"/></svg>';

  function mount() {
    var host = document.createElement('div');
    host.setAttribute('data-daoban-widget', '');
    document.body.appendChild(host);
    var root = host.attachShadow ? host.attachShadow({ mode: 'open' }) : host;

    var style = document.createElement('style');
    style.textContent = CSS;
    root.appendChild(style);

    var panel = document.createElement('div');
    panel.className = 'dbw-panel';
    panel.id = 'daoban-widget-panel';
    panel.hidden = true;
    root.appendChild(panel);

    var bubble = document.createElement('button');
    bubble.type = 'button';
    bubble.className = 'dbw-bubble';
    bubble.setAttribute('aria-controls', panel.id);
    root.appendChild(bubble);

    var frame = null;
    function render(open) {
      bubble.innerHTML = open ? CLOSE_ICON : CHAT_ICON;   // static markup only, no external text
      bubble.setAttribute('aria-label', open ? '关闭导办助手' : '打开导办助手');
      bubble.setAttribute('aria-expanded', open ? 'true' : 'false');
    }
    function toggle(open) {
      if (open && !frame) {                                // created on first open, kept afterwards
        frame = document.createElement('iframe');
        frame.src = pageUrl;
        frame.title = '导办助手';
        frame.setAttribute('allow', 'clipboard-write');
        panel.appendChild(frame);
      }
      panel.hidden = !open;
      render(open);
      if (open && frame) { try { frame.focus(); } catch (e) { /* cross-origin focus may fail */ } }
    }
    bubble.addEventListener('click', function () { toggle(panel.hidden); });
    document.addEventListener('keydown', function (ev) {
      if (ev.key === 'Escape' && !panel.hidden) { toggle(false); bubble.focus(); }
    });
    render(false);
  }

  if (document.body) mount();
  else document.addEventListener('DOMContentLoaded', mount);
})();
