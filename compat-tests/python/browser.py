"""What the browser tests share: headless Chromium through Selenium with the system
chromedriver (env CHROMIUM, CHROMEDRIVER), and a page served on an origin of its own."""

import http.server
import os
import tempfile
import threading

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service


def headless_chromium(name):
    """A headless Chromium with a fresh profile (named after the test)."""
    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--user-data-dir=" + tempfile.mkdtemp(prefix="cairn-%s-chromium-" % name))
    options.binary_location = os.environ["CHROMIUM"]
    return webdriver.Chrome(service=Service(os.environ["CHROMEDRIVER"]), options=options)


def serve_page(title):
    """Serves a page titled `title` at / on 127.0.0.1 and a port of its own, in a thread:
    another origin than Cairn's. Returns the server (to shut down) and its origin."""
    page = ("<!doctype html><html><head><title>%s</title></head><body>%s</body></html>" % (title, title)).encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, "http://127.0.0.1:%d" % server.server_address[1]
