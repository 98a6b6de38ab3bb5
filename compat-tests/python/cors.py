"""A page on another origin talks to Cairn from headless Chromium (Selenium with the system
chromedriver), so the browser itself enforces CORS: it serves a page from its own HTTP server,
says `origin <origin>`, reads a presigned PUT URL and a presigned GET URL from stdin, uploads
with fetch() (Content-Type makes Chromium send a preflight first) and reads the object back,
says `uploaded`; then, told `rules deleted`, checks that the browser now refuses the same GET,
and says `cors passed`.

Env: CHROMIUM, CHROMEDRIVER.
"""

import http.server
import os
import sys
import tempfile
import threading

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

PAGE = b"<!doctype html><html><head><title>uploader</title></head><body>uploader</body></html>"
BODY = "sent by a browser"


class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args):
        pass


def say(line):
    print(line, flush=True)


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = "http://127.0.0.1:%d" % server.server_address[1]
    say("origin " + origin)
    put_url = sys.stdin.readline().strip()
    get_url = sys.stdin.readline().strip()

    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--user-data-dir=" + tempfile.mkdtemp(prefix="cairn-cors-chromium-"))
    options.binary_location = os.environ["CHROMIUM"]
    driver = webdriver.Chrome(service=Service(os.environ["CHROMEDRIVER"]), options=options)
    driver.set_script_timeout(30)
    try:
        driver.get(origin + "/")
        assert driver.title == "uploader", driver.title
        result = driver.execute_async_script(
            """const [putUrl, getUrl, body, done] = arguments;
            (async () => {
              const put = await fetch(putUrl, {method: 'PUT', headers: {'Content-Type': 'text/plain'}, body});
              const etag = put.headers.get('ETag');
              const got = await fetch(getUrl, {cache: 'no-store'});
              return {put: put.status, etag, get: got.status, text: await got.text()};
            })().then(done, (e) => done({error: String(e)}));""",
            put_url,
            get_url,
            BODY,
        )
        assert result.get("put") == 200 and result.get("get") == 200, result
        assert result.get("text") == BODY, result
        assert result.get("etag"), "ETag is exposed to the page: %r" % result
        say("uploaded")

        assert sys.stdin.readline().strip() == "rules deleted"
        blocked = driver.execute_async_script(
            """const [getUrl, done] = arguments;
            fetch(getUrl, {cache: 'no-store'}).then((r) => done('read ' + r.status), (e) => done('blocked: ' + e));""",
            get_url,
        )
        assert blocked.startswith("blocked"), blocked
        say("cors passed")
    finally:
        driver.quit()
        server.shutdown()


if __name__ == "__main__":
    main()
