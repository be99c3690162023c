#!/usr/bin/env python3
"""The Raftgate web console in headless Chromium, driven over WebDriver (selenium).

Run by chaos-tests/tests/console.rs against a running cluster it prepared. Configuration
(environment):
  RAFTGATE_ADMIN_URL       a node's admin URL, e.g. http://127.0.0.1:9080
  RAFTGATE_ADMIN_TOKEN     an admin token
  RAFTGATE_TENANT_TOKEN    a tenant-admin token for RAFTGATE_TENANT
  RAFTGATE_VIEWER_TOKEN    a viewer token
  RAFTGATE_TENANT          that tenant's id
  RAFTGATE_NODES           how many nodes the cluster page must show
  RAFTGATE_SUBSCRIPTION    a pending subscription to a service of RAFTGATE_TENANT
  RAFTGATE_UPSTREAM        an upstream the new route may target
  RAFTGATE_OWN_ROUTE / RAFTGATE_OWN_CONSUMER      resources of RAFTGATE_TENANT
  RAFTGATE_OTHER_ROUTE / RAFTGATE_OTHER_CONSUMER  another tenant's, never to be shown
  RAFTGATE_DATA_URL, RAFTGATE_API_KEY, RAFTGATE_TRAFFIC_PATH  live traffic for the charts
  RAFTGATE_SCREENSHOTS     where to save PNG screenshots
  RAFTGATE_CHROMIUM, RAFTGATE_CHROMEDRIVER  the browser and its driver

Prints one line per check; exits 1 on the first failed check, naming it.
"""

import json
import os
import shutil
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

ADMIN = os.environ["RAFTGATE_ADMIN_URL"].rstrip("/")
ADMIN_TOKEN = os.environ["RAFTGATE_ADMIN_TOKEN"]
TENANT_TOKEN = os.environ["RAFTGATE_TENANT_TOKEN"]
VIEWER_TOKEN = os.environ["RAFTGATE_VIEWER_TOKEN"]
TENANT = os.environ["RAFTGATE_TENANT"]
NODES = int(os.environ["RAFTGATE_NODES"])
SUBSCRIPTION = os.environ["RAFTGATE_SUBSCRIPTION"]
UPSTREAM = os.environ["RAFTGATE_UPSTREAM"]
OWN_ROUTE = os.environ["RAFTGATE_OWN_ROUTE"]
OWN_CONSUMER = os.environ["RAFTGATE_OWN_CONSUMER"]
OTHER_ROUTE = os.environ["RAFTGATE_OTHER_ROUTE"]
OTHER_CONSUMER = os.environ["RAFTGATE_OTHER_CONSUMER"]
DATA = os.environ["RAFTGATE_DATA_URL"].rstrip("/")
API_KEY = os.environ["RAFTGATE_API_KEY"]
TRAFFIC_PATH = os.environ["RAFTGATE_TRAFFIC_PATH"]
SHOTS = os.environ["RAFTGATE_SCREENSHOTS"]
WAIT = 20.0

NEW_ROUTE = {
    "id": "ui-route",
    "tenant": TENANT,
    "path": "/ui-created",
    "methods": ["GET"],
    "target": {"upstream": UPSTREAM},
    "policies": [{"key_auth": {}}],
}


def check(cond, message):
    if not cond:
        raise AssertionError(message)
    print(f"ok   {message}")


def admin_get(path, token=ADMIN_TOKEN):
    req = urllib.request.Request(ADMIN + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def send_traffic(n):
    ok = 0
    for _ in range(n):
        req = urllib.request.Request(DATA + TRAFFIC_PATH, headers={"Authorization": f"Bearer {API_KEY}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                ok += resp.status == 200
        except urllib.error.HTTPError:
            pass
    return ok


def wait_for(what, fn, timeout=WAIT):
    """Polls fn() until it returns something truthy; fails naming `what`."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = fn()
            if value:
                return value
        except WebDriverException as e:  # element not there yet, stale, ...
            last_error = e
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f" ({last_error.msg})" if last_error else ""))


def browser(profile):
    opts = Options()
    opts.binary_location = os.environ.get("RAFTGATE_CHROMIUM", "/usr/bin/chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1440,960", "--no-proxy-server", "--no-first-run",
                f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=os.environ.get("RAFTGATE_CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(service=service, options=opts)


def shot(driver, name):
    path = os.path.join(SHOTS, f"{name}.png")
    driver.save_screenshot(path)
    print(f"screenshot {path}")


def css(driver, selector):
    return driver.find_elements(By.CSS_SELECTOR, selector)


def text_of(driver, selector):
    found = css(driver, selector)
    return found[0].text if found else ""


def go(driver, hash_):
    driver.execute_script("location.hash = arguments[0]", hash_)


def sign_in(driver, token, expect_role):
    driver.get(ADMIN + "/ui")
    field = wait_for("the token field", lambda: css(driver, "#token"))[0]
    field.clear()
    field.send_keys(token)
    css(driver, "#login-button")[0].click()
    wait_for(f"signed in as {expect_role}", lambda: css(driver, f'#whoami[data-role="{expect_role}"]'))


def storage_token(driver):
    return driver.execute_script("return sessionStorage.getItem('raftgate.admin_token')")


def test_admin(driver):
    driver.get(ADMIN + "/ui")
    wait_for("the login form", lambda: css(driver, "#login-form"))
    css(driver, "#token")[0].send_keys("not-a-token")
    css(driver, "#login-button")[0].click()
    wait_for("a sign-in error", lambda: "Sign-in failed" in text_of(driver, "#login-status"))
    check(storage_token(driver) is None, "a refused token is not kept")
    shot(driver, "01-login")

    sign_in(driver, ADMIN_TOKEN, "admin")
    check("admin" in text_of(driver, "#whoami"), "the header shows the admin role")
    check(storage_token(driver) == ADMIN_TOKEN, "the token is in sessionStorage")
    check(ADMIN_TOKEN not in driver.current_url, "the token is not in the URL")

    # Cluster page: every node, one leader, all reachable.
    go(driver, "#/cluster")
    rows = wait_for(f"{NODES} node rows", lambda: (r := css(driver, "tr.node-row")) and len(r) == NODES and r)
    leaders = css(driver, 'tr.node-row[data-leader="true"]')
    check(len(leaders) == 1, f"the cluster page shows {len(rows)} nodes and one leader")
    check(text_of(driver, "#card-reachable") == f"Nodes reachable\n{NODES} / {NODES}", "every node is reachable")
    check(text_of(driver, "#card-leader").endswith(f"node {leaders[0].get_attribute('data-node-id')}"), "the leader card names the leader row")
    shot(driver, "02-cluster")

    # Create a route through the JSON editor.
    go(driver, "#/r/routes")
    wait_for("the routes table", lambda: css(driver, f'#resource-table tr[data-id="{OWN_ROUTE}"]'))
    css(driver, "#new-resource")[0].click()
    editor = wait_for("the JSON editor", lambda: css(driver, "#resource-json"))[0]
    editor.clear()
    editor.send_keys("{not json")
    css(driver, "#save-resource")[0].click()
    wait_for("a JSON syntax error", lambda: "Not valid JSON" in text_of(driver, "#editor-status"))
    editor.clear()
    editor.send_keys(json.dumps({**NEW_ROUTE, "target": {"upstream": "no-such-upstream"}}))
    css(driver, "#save-resource")[0].click()
    wait_for("the server's refusal", lambda: "Save failed" in text_of(driver, "#editor-status"))
    check("no-such-upstream" in text_of(driver, "#editor-status"), "the API's error message is shown in the editor")
    editor.clear()
    editor.send_keys(json.dumps(NEW_ROUTE))
    css(driver, "#save-resource")[0].click()
    wait_for("the created route's row", lambda: css(driver, '#resource-table tr[data-id="ui-route"]'))
    check("Created ui-route" in text_of(driver, "#resource-status"), "the UI reports the new route")
    stored = admin_get("/admin/v1/routes/ui-route")
    check(stored["path"] == "/ui-created" and stored["tenant"] == TENANT, "the API has the route the UI created")
    shot(driver, "03-routes")

    # Update a consumer and delete a route through the editor.
    go(driver, "#/r/consumers")
    wait_for("the consumer row", lambda: css(driver, f'#resource-table tr[data-id="{OWN_CONSUMER}"] td'))[0].click()
    editor = wait_for("the consumer's JSON", lambda: css(driver, "#resource-json"))[0]
    body = json.loads(editor.get_attribute("value"))
    check(body["id"] == OWN_CONSUMER and "revision" not in body, "the editor shows the stored consumer without bookkeeping fields")
    body["name"] = "Renamed in the UI"
    editor.clear()
    editor.send_keys(json.dumps(body))
    css(driver, "#save-resource")[0].click()
    wait_for("the update notice", lambda: f"Updated {OWN_CONSUMER}" in text_of(driver, "#resource-status"))
    check(admin_get(f"/admin/v1/consumers/{OWN_CONSUMER}")["name"] == "Renamed in the UI", "the API has the consumer the UI updated")

    go(driver, "#/r/routes")
    wait_for("the routes table", lambda: css(driver, '#resource-table tr[data-id="ui-route"]'))
    css(driver, "#new-resource")[0].click()
    editor = wait_for("the JSON editor", lambda: css(driver, "#resource-json"))[0]
    editor.clear()
    editor.send_keys(json.dumps({**NEW_ROUTE, "id": "ui-temp", "path": "/ui-temp"}))
    css(driver, "#save-resource")[0].click()
    wait_for("the temporary route's row", lambda: css(driver, '#resource-table tr[data-id="ui-temp"] td'))[0].click()
    wait_for("the delete button", lambda: css(driver, "#delete-resource"))[0].click()
    check(css(driver, '#resource-table tr[data-id="ui-temp"]') != [], "the first Delete click only asks again")
    css(driver, "#delete-resource")[0].click()
    wait_for("the deleted route's row to go", lambda: not css(driver, '#resource-table tr[data-id="ui-temp"]'))
    try:
        admin_get("/admin/v1/routes/ui-temp")
        gone = False
    except urllib.error.HTTPError as e:
        gone = e.code == 404
    check(gone, "the route deleted in the UI is gone from the API")

    # Approve the pending subscription.
    go(driver, "#/r/subscriptions")
    button = wait_for("the approve button", lambda: css(driver, f'button[data-action="approve"][data-id="{SUBSCRIPTION}"]'))[0]
    check(css(driver, f'button[data-action="reject"][data-id="{SUBSCRIPTION}"]') != [], "a pending subscription offers reject too")
    button.click()
    wait_for("the approval notice", lambda: "now approved" in text_of(driver, "#resource-status"))
    check(admin_get(f"/admin/v1/subscriptions/{SUBSCRIPTION}")["state"] == "approved", "the API shows the subscription approved")
    wait_for("the approve button to go", lambda: not css(driver, f'button[data-action="approve"][data-id="{SUBSCRIPTION}"]'))
    shot(driver, "04-subscriptions")

    # Charts: traffic while the page samples /metrics; the live chart must draw it.
    go(driver, "#/charts")
    wait_for("the live requests chart", lambda: css(driver, "#chart-live-requests"))
    deadline = time.monotonic() + 40
    drawn = None
    while time.monotonic() < deadline and not drawn:
        send_traffic(10)
        svg = css(driver, "#chart-live-requests")
        if svg and float(svg[0].get_attribute("data-max") or 0) > 0:
            paths = css(driver, "#chart-live-requests path.series")
            if any(len(p.get_attribute("d") or "") > 3 for p in paths):
                drawn = svg[0]
        time.sleep(0.5)
    check(drawn is not None, "the live requests chart draws a non-zero series from the traffic")
    # The per-minute history comes from the cluster's analytics rollups (they trail
    # traffic by about a second): reload it until the requests chart has data.
    last_reload = [time.monotonic()]

    def history_has_data():
        charts = css(driver, "#chart-requests")
        if charts and float(charts[0].get_attribute("data-max") or 0) > 0:
            return True
        if time.monotonic() - last_reload[0] > 2:
            last_reload[0] = time.monotonic()
            for b in css(driver, "button"):
                if b.text == "Reload history":
                    b.click()
        return False
    wait_for("the per-minute history (analytics) with data", history_has_data)
    check(True, "the per-minute chart from the analytics rollups has data")
    check(not css(driver, "#charts-history-note .error"),
          f"no error above the history: {text_of(driver, '#charts-history-note')!r}")
    shot(driver, "05-charts")

    # Log explorer: rows, or the clear "not available" message.
    go(driver, "#/logs")
    wait_for("the log page to answer", lambda: text_of(driver, "#logs-status"))
    status = text_of(driver, "#logs-status")
    if "not available on this node" in status:
        print(f"note call logs are not available: {status!r}")
        shot(driver, "06-logs")
    else:
        rows = css(driver, "#logs-table tr.log-row")
        check(rows and any(OWN_ROUTE in r.text for r in rows) and any(OTHER_ROUTE in r.text for r in rows),
              f"the admin's log page lists calls of {OWN_ROUTE} and {OTHER_ROUTE} ({len(rows)} rows; {status!r})")
        routes = {r.find_elements(By.CSS_SELECTOR, "td")[3].text for r in rows}
        check(len(routes) > 1, f"unfiltered, calls of several routes are listed: {routes}")
        shot(driver, "06-logs")
        route_filter = css(driver, "#filter-route")[0]
        route_filter.send_keys(OWN_ROUTE)
        route_filter.submit()

        def filtered():
            cells = [r.find_elements(By.CSS_SELECTOR, "td")[3].text for r in css(driver, "#logs-table tr.log-row")]
            return cells and set(cells) == {OWN_ROUTE} and cells
        cells = wait_for("only the filtered route's calls", filtered)
        check(len(cells) < len(rows), f"the route filter narrows the search to {OWN_ROUTE} ({len(cells)} of {len(rows)} rows)")

    go(driver, "#/quotas")
    wait_for("the usage table", lambda: css(driver, "#usage-table tbody tr"))
    check(True, "the quotas page renders")

    css(driver, "#logout")[0].click()
    wait_for("the login form after sign-out", lambda: css(driver, "#login-form"))
    check(storage_token(driver) is None, "sign-out forgets the token")


def test_tenant_admin(driver):
    sign_in(driver, TENANT_TOKEN, "tenant-admin")
    check(css(driver, f'#whoami[data-tenant="{TENANT}"]') != [], f"the header shows tenant {TENANT}")
    nav = text_of(driver, "#nav")
    check("Providers" not in nav and "Certificates" not in nav, "no navigation to admin-only collections")

    go(driver, "#/r/routes")
    wait_for("own routes", lambda: css(driver, f'#resource-table tr[data-id="{OWN_ROUTE}"]'))
    ids = [r.get_attribute("data-id") for r in css(driver, "#resource-table tbody tr[data-id]")]
    check("ui-route" in ids and OTHER_ROUTE not in ids, f"routes of {TENANT} only: {ids}")
    check(OTHER_ROUTE not in driver.page_source, "the other tenant's route appears nowhere on the page")
    shot(driver, "07-tenant-routes")

    go(driver, "#/r/consumers")
    wait_for("own consumers", lambda: css(driver, f'#resource-table tr[data-id="{OWN_CONSUMER}"]'))
    ids = [r.get_attribute("data-id") for r in css(driver, "#resource-table tbody tr[data-id]")]
    check(OTHER_CONSUMER not in ids and OTHER_CONSUMER not in driver.page_source, f"consumers of {TENANT} only: {ids}")

    go(driver, "#/r/tenants")
    wait_for("the tenants table", lambda: css(driver, f'#resource-table tr[data-id="{TENANT}"]'))
    check(not css(driver, "#new-resource"), "a tenant admin gets no 'New tenant' button")
    css(driver, f'#resource-table tr[data-id="{TENANT}"]')[0].click()
    wait_for("the read-only editor", lambda: css(driver, "#resource-json"))
    check(not css(driver, "#save-resource") and not css(driver, "#delete-resource"), "its own tenant opens read-only")

    go(driver, "#/logs")
    wait_for("the tenant's log page", lambda: text_of(driver, "#logs-status"))
    check(not css(driver, "#filter-tenant"), "a tenant admin gets no tenant filter")
    tenants = {r.find_elements(By.CSS_SELECTOR, "td")[4].text for r in css(driver, "#logs-table tr.log-row")}
    check(tenants == {TENANT}, f"the tenant admin's call logs are its own tenant's only: {tenants}")
    check(OTHER_ROUTE not in driver.page_source, "the other tenant's calls appear nowhere in the tenant admin's logs")

    go(driver, "#/charts")
    wait_for("charts for the tenant", lambda: css(driver, "#chart-live-requests"))
    shot(driver, "08-tenant-charts")


def test_viewer(driver):
    sign_in(driver, VIEWER_TOKEN, "viewer")
    go(driver, "#/r/routes")
    wait_for("every tenant's routes", lambda: css(driver, f'#resource-table tr[data-id="{OTHER_ROUTE}"] td'))[0].click()
    wait_for("the read-only editor", lambda: css(driver, "#resource-json"))
    check(not css(driver, "#new-resource") and not css(driver, "#save-resource") and not css(driver, "#delete-resource"),
          "a viewer sees routes but no New, Save or Delete")
    go(driver, "#/r/subscriptions")
    wait_for("the subscriptions table", lambda: css(driver, f'#resource-table tr[data-id="{SUBSCRIPTION}"]'))
    check(not css(driver, "#resource-table button[data-action]"), "a viewer gets no approve, reject or revoke buttons")
    css(driver, "#logout")[0].click()
    wait_for("the login form after sign-out", lambda: css(driver, "#login-form"))


def browser_errors(driver):
    """Console messages that mean the UI is broken: CSP violations and uncaught errors."""
    bad = []
    for entry in driver.get_log("browser"):
        msg = entry.get("message", "")
        if "Content Security Policy" in msg or "Uncaught" in msg or "SyntaxError" in msg:
            bad.append(msg)
    return bad


def main():
    os.makedirs(SHOTS, exist_ok=True)
    profile = tempfile.mkdtemp(prefix="raftgate-chromium-")
    try:
        run(profile)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def run(profile):
    driver = browser(profile)
    try:
        test_admin(driver)
        test_viewer(driver)
        test_tenant_admin(driver)
        errors = browser_errors(driver)
        check(not errors, f"no CSP violations or uncaught script errors in the browser console {errors}")
    except Exception:
        traceback.print_exc()
        try:
            shot(driver, "99-failure")
            for entry in driver.get_log("browser"):
                print("browser:", entry.get("message"))
        except WebDriverException:
            pass
        print("FAILED", file=sys.stderr)
        sys.exit(1)
    finally:
        driver.quit()
    print("all console checks passed")


if __name__ == "__main__":
    main()
