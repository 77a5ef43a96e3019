"""The agent console under a full shift: 200 queued chats, 50 own chats, in the browser.

    .venv/bin/python benchmarks/console_render.py [--queued 200] [--chats 50] [--events 60]

Serves channels/static/agent*.{html,js,css} and chat.css from a local HTTP server and fakes
``/ws/agent`` with Playwright's WebSocket routing (no daoban server: the numbers are the
page's own). Measures, in Debian chromium: the first draw of the lists after the lists frame
(every own chat is then watched, so its log arrives too), a redraw of both lists (every 5 s
and on every lists frame), a redraw of the chat list only (what events cost, coalesced to one
per 100 ms), and switching chats (a click until the chat's last row is on
screen; the faked server answers "open" with ``--events`` events). Prints median and max.
"""

from __future__ import annotations

import argparse
import http.server
import json
import statistics
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STATIC = Path(__file__).resolve().parents[1] / "channels" / "static"


def _serve() -> tuple[http.server.ThreadingHTTPServer, str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/agent":
                body, kind = (STATIC / "agent.html").read_bytes(), "text/html"
            elif self.path.startswith("/static/"):
                f = STATIC / self.path.removeprefix("/static/")
                body = f.read_bytes()
                kind = "text/css" if f.suffix == ".css" else "text/javascript"
            elif self.path == "/agent/api/me":
                body, kind = json.dumps({"id": 1, "username": "wang", "name": "王帮办",
                                         "role": "agent", "skills": ["人社"],
                                         "sla_seconds": 120}).encode(), "application/json"
            elif self.path == "/agent/api/canned":
                body, kind = b'{"replies": [], "manages_shared": false}', "application/json"
            else:
                body, kind = b'{"conversation_id": "", "checklist": null}', "application/json"
            self.send_response(200)
            self.send_header("Content-Type", kind + "; charset=utf-8")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


def _lists(queued: int, chats: int) -> dict[str, Any]:
    q = [{"conversation_id": f"q{i:04d}", "handoff_id": i, "reason": "requested",
          "department": "人社", "item": "社会保障卡挂失补换", "channel": "web",
          "waiting_seconds": i * 3, "total_seconds": i * 3, "citizen_online": True}
         for i in range(queued)]
    c = [{"conversation_id": f"c{i:04d}", "handoff_id": 1000 + i, "department": "人社",
          "item": "社会保障卡挂失补换", "agent_id": 1, "agent": "王帮办", "mine": True,
          "channel": "web", "citizen_online": True} for i in range(chats)]
    agents = [{"id": i, "name": f"帮办{i}", "presence": "online", "busy": 1, "max_chats": 5}
              for i in range(1, 20)]
    return {"type": "lists", "queue": q, "chats": c, "agents": agents}


def _events(cid: str, n: int) -> list[dict[str, Any]]:
    at = datetime.now(UTC).isoformat()
    out = []
    for seq in range(1, n + 1):
        who = ("citizen", "bot", "agent")[seq % 3]
        out.append({"type": "event", "conversation_id": cid, "seq": seq, "at": at,
                    "kind": {"citizen": "user"}.get(who, who), "from": who,
                    "text": f"第{seq}条消息：社保卡补办需要带什么材料？" * 2, "card": None,
                    "buttons": [], "agent": "王帮办", "client_id": None})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queued", type=int, default=200)
    ap.add_argument("--chats", type=int, default=50)
    ap.add_argument("--events", type=int, default=60)
    ap.add_argument("--switches", type=int, default=15)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from tests.servers import launch_chromium

    srv, base = _serve()
    lists = _lists(args.queued, args.chats)

    def route(ws: Any) -> None:
        def on(message: str | bytes) -> None:
            f = json.loads(message)
            if f.get("type") == "hello":
                ws.send(json.dumps({"type": "welcome", "agent": {"id": 1}}))
                ws.send(json.dumps(lists))
            elif f.get("type") == "open":
                cid = f["conversation_id"]
                ws.send(json.dumps({"type": "context", "conversation_id": cid, "mode": "WITH_AGENT",
                                    "channel": "web", "current_item": None, "checklist": None,
                                    "handoff": None, "citizen_online": True,
                                    "last_seq": args.events}))
                for e in _events(cid, args.events):
                    if e["seq"] > int(f.get("last_seq") or 0):
                        ws.send(json.dumps(e))

        ws.on_message(on)

    with sync_playwright() as p:
        b = launch_chromium(p)
        page = b.new_page(viewport={"width": 1280, "height": 800})
        page.route_web_socket("**/ws/agent", route)
        page.goto(base + "/agent")
        page.wait_for_function(
            f"() => document.querySelectorAll('#chats .item').length === {args.chats}"
            f" && document.querySelectorAll('#queue .item').length === {args.queued}")
        first = page.evaluate("""() => {
            const t = performance.now();
            document.getElementById('queue').textContent = '';
            document.getElementById('chats').textContent = '';
            window.daobanConsole.renderLists(); document.body.offsetHeight;
            return performance.now() - t; }""")
        redraws = [page.evaluate("""() => { const t = performance.now();
            window.daobanConsole.renderLists(); document.body.offsetHeight;
            return performance.now() - t; }""") for _ in range(20)]
        chats_only = [page.evaluate("""() => { const t = performance.now();
            window.daobanConsole.renderLists('chats'); document.body.offsetHeight;
            return performance.now() - t; }""") for _ in range(20)]
        switches = []
        for i in range(args.switches):
            cid = f"c{(i * 7) % args.chats:04d}"
            switches.append(page.evaluate("""async ([cid, n]) => {
                const t = performance.now();
                document.querySelector('#chats .item[data-cid="' + cid + '"]').click();
                while (document.querySelectorAll('#log .row').length < n)
                  await new Promise(r => requestAnimationFrame(r));
                await new Promise(r => requestAnimationFrame(r));  // the scroll follows
                const log = document.getElementById('log');
                if (log.scrollTop + log.clientHeight < log.scrollHeight - 2) return -1;
                return performance.now() - t; }""", [cid, args.events]))
        b.close()
    srv.shutdown()
    print(f"{args.queued} queued, {args.chats} own chats, {args.events} events per chat")
    print(f"both lists emptied and drawn again (elements re-inserted): {first:.1f} ms")
    print(f"redraw in place: median {statistics.median(redraws):.1f} ms, max {max(redraws):.1f} ms")
    print(f"redraw of the chat list only (after events): median "
          f"{statistics.median(chats_only):.1f} ms, max {max(chats_only):.1f} ms")
    print(f"switch chats until the last row shows: median {statistics.median(switches):.1f} ms, "
          f"max {max(switches):.1f} ms (incl. Playwright's relay of the faked socket)")


if __name__ == "__main__":
    main()
