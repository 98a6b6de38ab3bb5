"""A page on another origin posts a form upload to Cairn from headless Chromium (Selenium with
the system chromedriver): it serves a page from its own HTTP server and says `origin <origin>`,
reads one JSON line from stdin (`url` and `fields`: the signed form's fields in order), posts
them with fetch() and a FormData whose file part is `photo.txt`, and says `posted <status>
<body>` — which it can only read if the response carries the bucket's CORS headers.

Env: CHROMIUM, CHROMEDRIVER.
"""

import json
import sys

from browser import headless_chromium, serve_page


def main():
    server, origin = serve_page("form")
    print("origin " + origin, flush=True)
    request = json.loads(sys.stdin.readline())

    driver = headless_chromium("form")
    driver.set_script_timeout(30)
    try:
        driver.get(origin + "/")
        answer = driver.execute_async_script(
            """const [url, fields, done] = arguments;
            const form = new FormData();
            for (const [name, value] of fields) form.append(name, value);
            form.append('file', new Blob(['picked in a browser'], {type: 'text/plain'}), 'photo.txt');
            fetch(url, {method: 'POST', body: form})
              .then(async (r) => done('posted ' + r.status + ' ' + (await r.text())), (e) => done('failed: ' + e));""",
            request["url"],
            request["fields"],
        )
        print(answer.replace("\n", " "), flush=True)
    finally:
        driver.quit()
        server.shutdown()


if __name__ == "__main__":
    main()
