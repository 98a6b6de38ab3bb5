"""A page on another origin talks to Cairn from headless Chromium (Selenium with the system
chromedriver), so the browser itself enforces CORS: it serves a page from its own HTTP server,
says `origin <origin>`, reads a presigned PUT URL and a presigned GET URL from stdin, uploads
with fetch() (Content-Type makes Chromium send a preflight first) and reads the object back,
says `uploaded`; then, told `rules deleted`, checks that the browser now refuses the same GET,
and says `cors passed`.

Env: CHROMIUM, CHROMEDRIVER.
"""

import sys

from browser import headless_chromium, serve_page

BODY = "sent by a browser"


def say(line):
    print(line, flush=True)


def main():
    server, origin = serve_page("uploader")
    say("origin " + origin)
    put_url = sys.stdin.readline().strip()
    get_url = sys.stdin.readline().strip()

    driver = headless_chromium("cors")
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
