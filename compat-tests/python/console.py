"""Drives the status console in headless Chromium (Selenium with the system chromedriver):
a wrong token is refused, the admin token signs in, three volumes show up, the test's
bucket with its object count, the GC queue and the last verify; then, told on stdin which volume was killed, the page
shows it down and the cluster degraded.

Env: CAIRN_ADMIN_URL, CAIRN_ADMIN_TOKEN, CHROMIUM, CHROMEDRIVER. Protocol on stdout: prints
`three volumes up`, then reads one line `killed <volume url>` from stdin, then prints
`console passed`.
"""

import os
import sys

from browser import headless_chromium
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ADMIN = os.environ["CAIRN_ADMIN_URL"]
TOKEN = os.environ["CAIRN_ADMIN_TOKEN"]


# The page redraws its tables every few seconds, so an element found a moment ago may be gone:
# everything is read in one script run, never through element handles kept across calls.


def volume_health(driver):
    """{volume url: "up" | "down"} as the page shows it."""
    return driver.execute_script(
        """const health = {};
        for (const row of document.querySelectorAll('#volumes tbody tr[data-volume]'))
          health[row.dataset.volume] = row.querySelector('td[data-health]').dataset.health;
        return health;"""
    )


def row_cells(driver, selector):
    """The texts of the cells of the row `selector` matches, or None."""
    return driver.execute_script(
        "const row = document.querySelector(arguments[0]);"
        "return row ? Array.from(row.cells, (td) => td.textContent) : null;",
        selector,
    )


def text_of(driver, selector):
    return driver.execute_script("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", selector)


def sign_in(driver, token):
    field = driver.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token)
    driver.find_element(By.ID, "sign-in").click()


def main():
    driver = headless_chromium("console")
    driver.set_page_load_timeout(30)
    wait = WebDriverWait(driver, 30, poll_frequency=0.2)
    try:
        driver.get(ADMIN + "/")
        assert driver.title == "Cairn console", driver.title
        assert driver.find_element(By.ID, "login").is_displayed()
        assert not driver.find_element(By.ID, "console").is_displayed()

        # A wrong token is refused and the console stays hidden.
        sign_in(driver, "not-the-token")
        wait.until(lambda d: "not accepted" in text_of(d, "#login-error"))
        assert not driver.find_element(By.ID, "console").is_displayed()
        assert driver.execute_script("return sessionStorage.getItem('cairn-admin-token')") is None

        sign_in(driver, TOKEN)
        wait.until(lambda d: len(volume_health(d)) == 3 and set(volume_health(d).values()) == {"up"})
        health = text_of(driver, "#health")
        assert health == "healthy: 3 volumes up", health
        cells = row_cells(driver, '#buckets tr[data-bucket="photos"]')
        assert cells is not None and cells[0] == "photos" and cells[1] == "3", cells
        objects = text_of(driver, 'dd[data-fact="Objects"]')
        assert objects == "3", objects
        gc_queue = text_of(driver, 'dd[data-fact="GC queue"]')
        assert gc_queue == "1 blobs, 4 B", gc_queue
        cells = row_cells(driver, '#jobs tr[data-job="verify"]')
        assert cells is not None and cells[:4] == ["verify", "done", "3 of 3 (100%)", "0"], cells
        # The token never reaches the URL or the page, only this tab's storage.
        assert TOKEN not in driver.current_url and TOKEN not in driver.page_source
        print("three volumes up", flush=True)

        line = sys.stdin.readline().split()
        assert len(line) == 2 and line[0] == "killed", line
        killed = line[1]
        wait.until(lambda d: volume_health(d).get(killed) == "down")
        others = {url: h for url, h in volume_health(driver).items() if url != killed}
        assert set(others.values()) == {"up"} and len(others) == 2, others
        wait.until(lambda d: text_of(d, "#health") == "degraded: 1 of 3 volumes down")
        assert "degraded" in driver.find_element(By.ID, "health").get_attribute("class")

        # Signing out forgets the token.
        driver.find_element(By.ID, "logout").click()
        assert driver.find_element(By.ID, "login").is_displayed()
        assert driver.execute_script("return sessionStorage.getItem('cairn-admin-token')") is None
        print("console passed", flush=True)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
