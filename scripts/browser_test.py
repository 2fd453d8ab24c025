#!/usr/bin/env python3
"""The tracking script in a real headless Chromium, against a real `tally serve` process.

A test page is served from another origin than the collector. It queues a custom event
before the script loads (the snippet), loads /tally.js with `data-allow-local`, and is opened
through a link on a third origin (so it has a referrer) with UTM parameters. The browser then
navigates the way a single-page app does (pushState twice to the same path, replaceState,
back to the pushed path), and fires a custom event. /stats must show exactly those views and paths, and the
stored rows the referrer host, the UTM value, the browser family and the custom events.
A page without `data-allow-local` sends nothing, and Chromium's own headless User-Agent is
filtered as a bot.

Needs chromium, chromium-driver and selenium (make test installs them). Usage:
scripts/browser_test.py --binary .build/debug/tally. Prints "browser: P passed, F failed".
"""

import argparse
import functools
import http.client
import http.server
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from hostile_test import HOST, Server, free_port, log  # noqa: E402

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402

DESKTOP_CHROME = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/131.0.0.0 Safari/537.36")


def pages(collector, page_port, allow_local=True):
    tag = (f'<script defer src="http://{HOST}:{collector}/tally.js" data-site="%s"'
           f'{" data-allow-local" if allow_local else ""}></script>')
    return {
        "/from.html": f'<html><body><a id="go" href="http://{HOST}:{page_port}/app/index.html?utm_source=browser-test&x=1">'
                      'go</a></body></html>',
        "/app/index.html": "<html><head><script>window.tally = window.tally || function () {"
                           " (tally.q = tally.q || []).push(arguments) }; tally('early_signup', {path: '/early'});"
                           "</script>" + tag % "browser-site" + "</head><body>app</body></html>",
        "/local/index.html": "<html><head>" + tag.replace(" data-allow-local", "") % "local-site"
                             + "</head><body>local</body></html>",
    }


class PageHandler(http.server.BaseHTTPRequestHandler):
    def __init__(self, *args, content=None, **kw):
        self.content = content
        super().__init__(*args, **kw)

    def do_GET(self):
        body = self.content.get(self.path.split("?")[0])
        if body is None:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def browser(user_agent=None):
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    if user_agent:
        options.add_argument(f"--user-agent={user_agent}")
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(options=options, service=service)


def stats(server, site):
    return json.loads(server.get(f"/stats?site_id={site}&limit=100")[1])


def wait_for(predicate, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    args = ap.parse_args()
    problems = []
    server = Server(args.binary)
    page_port = free_port()
    httpd = http.server.ThreadingHTTPServer((HOST, page_port), functools.partial(PageHandler, content=pages(server.http_port, page_port)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        d = browser(DESKTOP_CHROME)
        try:
            # A page on a third origin ("localhost" is not "127.0.0.1") links to the app.
            d.get(f"http://localhost:{page_port}/from.html")
            d.find_element("id", "go").click()
            wait_for(lambda: d.execute_script("return typeof window.tally === 'function' && !window.tally.q"), 10)
            d.execute_script("history.pushState({}, '', '/app/second'); history.pushState({}, '', '/app/second');"
                             "history.replaceState({}, '', '/app/third');")
            # History now holds index, second, third (the second push replaced): back is /app/second.
            d.execute_script("history.back()")
            wait_for(lambda: d.execute_script("return location.pathname") == "/app/second", 5)
            d.execute_script("tally('signup', {path: '/signup'})")
            # The repeated pushState sent nothing; popstate back to /app/second sent its second view.
            expected = {"/app/index.html": 1, "/app/second": 2, "/app/third": 1}
            ok = wait_for(lambda: {p["path"]: p["views"] for p in stats(server, "browser-site")["top_paths"]} == expected)
            s = stats(server, "browser-site")
            log(f"browser: /stats after the SPA session: {s}")
            if not ok or s["total_views"] != 4:
                problems.append(f"views {s} (want {expected}, 4 in total)")
        finally:
            d.quit()
        # The raw rows: custom events, referrer host, UTM, browser family (after a flush).
        wait_for(lambda: len(rows(server, "SELECT 1 FROM events WHERE site_id = 'browser-site'")) == 6)
        got = rows(server, "SELECT event_type, path, referrer, utm_source, browser, device, visitor IS NOT NULL "
                           "FROM events WHERE site_id = 'browser-site' ORDER BY id")
        log(f"browser: stored rows {got}")
        types = sorted(r[0] for r in got)
        if types != ["early_signup", "page_view", "page_view", "page_view", "page_view", "signup"]:
            problems.append(f"event types {types}")
        first_view = next((r for r in got if r[0] == "page_view"), None)
        if first_view is None or first_view[1:] != ("/app/index.html", "localhost", "browser-test", "Chrome", "desktop", 1):
            problems.append(f"first page view stored as {first_view}")
        if len({r[6] for r in got}) != 1 or any(r[2] is not None for r in got if r is not first_view):
            problems.append("later events should carry no referrer, and all one visitor")
        custom = {r[0]: r[1] for r in got if r[0] != "page_view"}
        if custom != {"early_signup": "/early", "signup": "/signup"}:
            problems.append(f"custom events {custom}")

        # Without data-allow-local nothing leaves a local page; the default headless User-Agent
        # is a bot: answered, stored flagged, counted nowhere.
        d = browser()
        try:
            d.get(f"http://{HOST}:{page_port}/local/index.html")
            time.sleep(1.5)
            local_events = rows(server, "SELECT count(*) FROM events WHERE site_id = 'local-site'")[0][0]
            if local_events != 0:
                problems.append(f"{local_events} events sent from a local page without data-allow-local")
            d.get(f"http://localhost:{page_port}/from.html")
            d.find_element("id", "go").click()
            filtered = wait_for(lambda: server.metric('tally_events_filtered_total{transport="http",reason="bot"}') >= 2)
            views = stats(server, "browser-site")["total_views"]
            log(f"browser: headless User-Agent filtered: {filtered}, views still {views}")
            if not filtered or views != 4:
                problems.append(f"HeadlessChrome not filtered (filtered metric reached: {filtered}, views {views})")
        finally:
            d.quit()
    except Exception as e:  # the check itself failing is a failure too
        problems.append(f"{type(e).__name__}: {e}")
    finally:
        httpd.shutdown()
        alive = server.stop(remove=False)
        if not alive:
            problems.append("server died")
        shutil.rmtree(server.dir, ignore_errors=True)
    for p in problems:
        log("FAIL " + p)
    print(f"browser: {0 if problems else 1} passed, {1 if problems else 0} failed")
    sys.exit(1 if problems else 0)


def rows(server, sql):
    """Rows from the server's SQLite file (read-only; WAL mode lets it read while serving)."""
    db = sqlite3.connect(f"file:{server.dir}/tally.sqlite?mode=ro", uri=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


if __name__ == "__main__":
    main()
