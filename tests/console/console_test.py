"""The auditor's console in a real headless Chromium (docs/console.md).

Drives `warrant serve` (the binary in $WARRANT_BIN) with selenium: sign in
(a key without `audit:read` is told so), filter by actor and kind, open a
record, follow its token's timeline, pin the log key and verify the record
(verified), export JSON Lines and CSV; then rewrite the record in the
SQLite file behind the server's back and verify again (not verified, with
the reason), and pin a wrong key (not verified). axe-core must report no
serious or critical violation. A screenshot of each step goes to
$CONSOLE_ARTIFACTS.

Run by tests/console/run, which installs what it needs.
"""

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

BIN = os.environ["WARRANT_BIN"]
AXE = Path(os.environ["AXE_JS"]).read_text()
ARTIFACTS = Path(os.environ["CONSOLE_ARTIFACTS"])
ROOT = Path(__file__).resolve().parents[2]
checks = 0


def check(condition, message):
    global checks
    if not condition:
        raise AssertionError(message)
    checks += 1


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """`warrant serve` on a temporary SQLite database, with its keys."""

    def __init__(self, work, extra=(), db=None, env=None):
        self.work = work
        self.extra = list(extra)
        self.db = db or work / "warrant.db"
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("WARRANT_")},
                    "XDG_CONFIG_HOME": str(work / "config"), **(env or {})}
        self.url = f"sqlite://{self.db}"
        self.auditor = self.key("audit:read")
        self.writer = self.key("events:write", "decide")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(work / "serve.log", "a")
        self.start()
        self.public_key = self.cli("audit", "public-key").splitlines()[0]

    def start(self):
        self.process = subprocess.Popen(
            [BIN, "serve", "--listen", f"127.0.0.1:{self.port}", "--database-url", self.url,
             "--policies", str(ROOT / "policies"), "--checkpoint-interval", "100ms", "--log-format", "text",
             *self.extra],
            env=self.env, stderr=self.log)
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{self.base}/readyz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("warrant did not start: " + (self.work / "serve.log").read_text())

    def restart(self, *extra):
        """Stops and starts serve on the same database and keys, with `extra` flags."""
        self.process.terminate()
        self.process.wait(timeout=10)
        self.extra = list(extra)
        self.start()

    def cli(self, *args, env=None):
        out = subprocess.run([BIN, *args], env=env or self.env, capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def key(self, *scopes):
        args = ["keys", "create", "--database-url", self.url]
        for scope in scopes:
            args += ["--scope", scope]
        return self.cli(*args)

    def post(self, path, body, key):
        request = urllib.request.Request(f"{self.base}{path}", data=json.dumps(body).encode(), method="POST",
                                         headers={"content-type": "application/json",
                                                  "authorization": f"Bearer {key}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())

    def get(self, path, key):
        request = urllib.request.Request(f"{self.base}{path}", headers={"authorization": f"Bearer {key}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)
        self.log.close()


class Witness:
    """`warrant witness` following the log whose verifier key is `log_key`."""

    def __init__(self, work, log_key):
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("WARRANT_")},
                    "XDG_CONFIG_HOME": str(work / "witness-config")}
        self.log = open(work / "witness.log", "w+")
        self.process = subprocess.Popen(
            [BIN, "witness", "--listen", "127.0.0.1:0", "--log-format", "json", "--state",
             str(work / "witness.db"), "--log", log_key, "--name", "witness.example/console"],
            env=self.env, stderr=self.log)
        for _ in range(100):
            self.log.seek(0)
            listening = [json.loads(l) for l in self.log if '"listening"' in l]
            if listening:
                self.url = f"http://{listening[0]['addr']}"
                break
            time.sleep(0.1)
        else:
            raise AssertionError("warrant witness did not start: " + (work / "witness.log").read_text())
        out = subprocess.run([BIN, "witness", "public-key"], env=self.env, capture_output=True, text=True, check=True)
        self.public_key = out.stdout.strip()

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)
        self.log.close()


def browser(downloads):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"]:
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    service = webdriver.ChromeService(executable_path="/usr/bin/chromedriver")
    return webdriver.Chrome(options=options, service=service)


def scale(db, samples):
    """The console over a large log (`--scale DB`, tests/bench/console_scale):
    the first page and filtered pages as the page times them (fetch and
    render, `performance.now()`), `samples` times each; prints one
    `console-scale` line."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        service = Service(work, db=Path(db), env={"WARRANT_AUDIT_KEY": os.environ["SCALE_AUDIT_KEY"]})
        for _ in range(100):
            try:
                note = urllib.request.urlopen(f"{service.base}/log/checkpoint", timeout=2).read().decode()
                break
            except OSError:
                time.sleep(0.1)
        records = int(note.splitlines()[1])
        driver = browser(work)
        try:
            driver.get(f"{service.base}/console/")
            by_id = lambda name: driver.find_element(By.ID, name)  # noqa: E731

            def timed(action, expect_none=False):
                driver.execute_script("delete document.getElementById('find-status').dataset.ms;")
                action()
                WebDriverWait(driver, 60).until(
                    lambda d: d.execute_script("return document.getElementById('find-status').dataset.ms"))
                text = by_id("find-status").text
                check("record(s) shown" in text, text)
                check(text.startswith("0 record(s)") == expect_none, text)
                return int(by_id("find-status").get_attribute("data-ms")), text

            def search(**values):
                for name in ["since", "until", "kind", "actor", "connection", "project", "token"]:
                    field = by_id(f"f-{name}")
                    field.clear()
                    if values.get(name):
                        field.send_keys(values[name])
                Select(by_id("f-decision")).select_by_value(values.get("decision", ""))
                return timed(lambda: by_id("search").click(), expect_none=values.get("connection") == "c1")

            by_id("api-key").send_keys(service.auditor)
            first = [timed(lambda: by_id("signin-form").submit())]
            WebDriverWait(driver, 120).until(ec.text_to_be_present_in_element((By.ID, "overview-status"), " ms)"))
            overview = by_id("overview-status").text
            first += [search() for _ in range(samples - 1)]
            rng = __import__("random").Random(7)
            cases = {
                "actor+kind": lambda: search(actor=f"User::u{4 * rng.randrange(250)}", kind="decision"),
                "kind+decision": lambda: search(kind="decision", decision="deny"),
                # token.used records are those of n % 4 == 2, so on c2 and c6.
                "connection+kind": lambda: search(connection=f"c{rng.choice([2, 6])}", kind="token.used"),
                "token": lambda: search(token=f"t{4 * rng.randrange(records // 4) + 1}"),
                # A filter nothing matches: every candidate of c1 is read.
                "no_match": lambda: search(connection="c1", kind="token.used"),
            }
            filtered = {name: [case() for _ in range(samples)] for name, case in cases.items()}
            driver.save_screenshot(str(ARTIFACTS / "scale-filtered.png"))
        finally:
            driver.quit()
            service.stop()

    def p50(times):
        return sorted(t for t, _ in times)[len(times) // 2]

    shown = {name: times[-1][1] for name, times in filtered.items()}
    print(f"console page texts: first {first[-1][1]!r}; {shown}", file=sys.stderr)
    print(f"console overview at sign-in: {overview!r}", file=sys.stderr)
    overview_ms = int(overview.rsplit("(", 1)[1].split(" ")[0])
    print(f"console-scale records={records} samples={samples} first_page_p50_ms={p50(first)} "
          + " ".join(f"{name}_p50_ms={p50(times)}" for name, times in filtered.items())
          + f" overview_day_ms={overview_ms}")


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--scale":
        return scale(sys.argv[2], int(sys.argv[3]))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        downloads = work / "downloads"
        downloads.mkdir()
        service = Service(work)
        driver = browser(downloads)
        try:
            run(service, driver, downloads)
        except Exception:
            driver.save_screenshot(str(ARTIFACTS / "failure.png"))
            print((work / "serve.log").read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            driver.quit()
            service.stop()
    print(f"console: ok, {checks} checks; screenshots in {ARTIFACTS}")


def run(service, driver, downloads):
    wait = WebDriverWait(driver, 10)
    by_id = lambda name: driver.find_element(By.ID, name)  # noqa: E731
    shot = lambda name: driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))  # noqa: E731

    def text_of(name, contains):
        wait.until(ec.text_to_be_present_in_element((By.ID, name), contains))
        return by_id(name).text

    # Records to find: one token's lifecycle, and decisions.
    for kind in ["token.issued", "token.used", "token.refreshed", "token.revoked"]:
        body = {"kind": kind, "token_id": "tok-console", "owner": "eddie", "connection": "c_wh"}
        if kind in ("token.issued", "token.refreshed"):
            body["expires_at"] = "2099-01-01T00:00:00Z"
        service.post("/v1/tokens/events", body, service.writer)
    # A token event's actor is the one it names, else its owner.
    writer_actor = "eddie"
    # Decisions for the overview: users nobody knows are denied.
    for user in ["nobody", "no-one", "nemo"]:
        answer = service.post("/access/v1/evaluation", {
            "subject": {"type": "User", "id": user}, "action": {"name": "view_notebook"},
            "resource": {"type": "Project", "id": "p1"}, "context": {}}, service.writer)
        check(answer == {"decision": False}, answer)
    denied = service.get("/v1/audit/events?kind=decision&decision=deny", service.auditor)["events"]
    check(len(denied) == 3, denied)

    driver.get(f"{service.base}/console/")
    check(driver.title == "warrant · audit console", driver.title)
    headers = urllib.request.urlopen(f"{service.base}/console/").headers
    check("script-src 'self'" in headers["content-security-policy"] and "unsafe-inline" not in
          headers["content-security-policy"], headers["content-security-policy"])

    # Sign in: a key without audit:read is told what it lacks.
    by_id("api-key").send_keys(service.writer)
    by_id("signin-form").submit()
    check("lacks the audit:read scope" in text_of("signin-error", "audit:read"), by_id("signin-error").text)
    shot("1-signin-refused")
    # The second try by keyboard alone: Tab reaches the key field first,
    # Enter signs in.
    driver.get(f"{service.base}/console/")
    ActionChains(driver).send_keys(Keys.TAB).perform()
    check(driver.switch_to.active_element == by_id("api-key"), "Tab from the top reaches the key field first")
    ActionChains(driver).send_keys(service.auditor, Keys.ENTER).perform()
    wait.until(ec.visibility_of_element_located((By.ID, "find")))
    text_of("find-status", "record(s) shown")
    check(by_id("api-key").get_attribute("value") == "", "the key is not left in the form")
    check(service.auditor not in driver.current_url, "no key in the URL")
    shot("2-signed-in")

    # The overview of the last day: its totals and tables agree with the
    # records the events API lists.
    text_of("overview-status", "by hour")
    totals = dict(zip([e.text for e in driver.find_elements(By.CSS_SELECTOR, "#o-totals dt")],
                      [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#o-totals dd")]))
    check(totals.get("decisions denied") == "3" and totals.get("decisions allowed") == "0", totals)
    reasons = [r.text for r in driver.find_elements(By.CSS_SELECTOR, "#o-reasons tbody tr")]
    listed = sorted({reason for record in denied for reason in record["reasons"]})
    check(sorted(r.rsplit(" ", 1)[0] for r in reasons) == listed and all(r.endswith(" 3") for r in reasons),
          (reasons, listed))
    tokens = [r.text for r in driver.find_elements(By.CSS_SELECTOR, "#o-tokens tbody tr")]
    check(tokens == ["c_wh 1 1 1 1 0 4"], tokens)
    check(driver.find_elements(By.CSS_SELECTOR, "#o-chart rect.bar-deny"), "a deny bar is drawn")
    check("3 denied" in by_id("o-chart-summary").text, by_id("o-chart-summary").text)
    check("No rule failed" in by_id("o-rules").text, by_id("o-rules").text)
    driver.execute_script("document.getElementById('overview').scrollIntoView()")
    shot("2b-overview")

    # Filter by actor and kind.
    by_id("f-actor").send_keys(writer_actor)
    by_id("f-kind").send_keys("token.used")
    by_id("search").click()
    text_of("find-status", "1 record(s) shown")
    rows = driver.find_elements(By.CSS_SELECTOR, "#events tbody tr")
    check(len(rows) == 1 and "token.used" in rows[0].text and writer_actor in rows[0].text, [r.text for r in rows])
    shot("3-filtered")

    # Export the current filter.
    by_id("export-jsonl").click()
    by_id("export-csv").click()
    for _ in range(50):
        if (downloads / "warrant-audit.jsonl").exists() and (downloads / "warrant-audit.csv").exists():
            break
        time.sleep(0.1)
    lines = (downloads / "warrant-audit.jsonl").read_text().splitlines()
    check(len(lines) == 1 and json.loads(lines[0])["kind"] == "token.used", lines)
    csv = (downloads / "warrant-audit.csv").read_text().splitlines()
    check(csv[0].startswith("seq,ts,kind,actor") and len(csv) == 2 and "token.used" in csv[1], csv)

    # Open the record and follow its token's lifecycle.
    rows[0].find_element(By.CSS_SELECTOR, "button").click()
    text_of("record-title", "token.used")
    check("keyed digest" in by_id("record-redaction").text, by_id("record-redaction").text)
    driver.find_element(By.XPATH, "//button[contains(., 'lifecycle')]").click()
    wait.until(ec.visibility_of_element_located((By.ID, "timeline")))
    items = [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#timeline-list li")]
    kinds = [next(k for k in ["issued", "used", "refreshed", "revoked"] if f"token.{k}" in i) for i in items]
    check(kinds == ["issued", "used", "refreshed", "revoked"], items)
    shot("4-timeline")

    # A token id in clear is digested first (POST /v1/audit/digest), so the
    # search's URL carries only the keyed digest.
    by_id("f-actor").clear()
    by_id("f-kind").clear()
    by_id("f-token").send_keys("tok-console")
    by_id("search").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#events tbody tr")) == 4)
    urls = driver.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")
    check(not any("tok-console" in u for u in urls), [u for u in urls if "tok-console" in u])
    check(any("token_digest=hmac-sha256" in u for u in urls), urls)
    by_id("f-token").clear()

    # Verify without a pinned key, then with the operator's key.
    by_id("verify").click()
    check("no log key is pinned" in text_of("verify-result", "Not verified"), by_id("verify-result").text)
    by_id("log-key").send_keys(service.public_key)
    by_id("pin-form").submit()
    text_of("pin-status", "Pinned:")
    time.sleep(0.3)  # a checkpoint covering every record (published every 100 ms)
    by_id("verify").click()
    result = text_of("verify-result", "erified")
    check(result.startswith("Verified: record "), result + " / " + by_id("verify-steps").text)
    check("Inclusion proof" in by_id("verify-steps").text, by_id("verify-steps").text)
    shot("5-verified")

    # The log grew: the next check proves the new checkpoint extends the one
    # this browser kept.
    service.post("/v1/tokens/events", {"kind": "token.used", "token_id": "tok-later", "owner": "erin",
                                       "connection": "c_wh"}, service.writer)
    time.sleep(0.3)
    by_id("verify").click()
    check(text_of("verify-result", "erified").startswith("Verified"), by_id("verify-result").text)
    check("Consistent with the checkpoint this browser verified before" in by_id("verify-steps").text,
          by_id("verify-steps").text)
    # A log served to this browser that does not extend what it verified
    # before (here: the kept checkpoint's root changed under it) is refused.
    driver.execute_script(
        "const k = 'warrant.console.checkpoint'; const s = JSON.parse(localStorage.getItem(k));"
        "s.root = '00'.repeat(32); localStorage.setItem(k, JSON.stringify(s));")
    by_id("verify").click()
    result = text_of("verify-result", "Not verified")
    check("not consistent with the checkpoint this browser verified before" in result, result)
    driver.execute_script("localStorage.removeItem('warrant.console.checkpoint');")

    # Witnesses: serve again, submitting each checkpoint to a witness and
    # serving only checkpoints it cosigned; the auditor pins the witness.
    witness = Witness(service.work, service.public_key)
    try:
        service.restart("--witness", f"{witness.url}={witness.public_key}", "--witness-quorum", "1")
        for _ in range(100):
            try:
                note = urllib.request.urlopen(f"{service.base}/log/checkpoint", timeout=2).read().decode()
                if "witness.example/console" in note:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("no cosigned checkpoint: " + (service.work / "witness.log").read_text()[-2000:])
        by_id("witness-keys").send_keys(witness.public_key)
        by_id("witness-form").submit()
        text_of("witness-status", "1 of these 1 witness(es) must cosign")
        by_id("verify").click()
        result = text_of("verify-result", "erified")
        check(result.startswith("Verified") and "cosigned by witness.example/console" in result,
              result + " / " + by_id("verify-steps").text)
        check("Cosigned by 1 pinned witness(es), 1 required" in by_id("verify-steps").text, by_id("verify-steps").text)
        shot("5c-witnessed")
        # A quorum of two when only one of the pinned witnesses cosigned.
        by_id("witness-keys").send_keys(witness.public_key + "\n" + absent_witness_key())
        by_id("quorum").clear()
        by_id("quorum").send_keys("2")
        by_id("witness-form").submit()
        text_of("witness-status", "2 of these 2 witness(es)")
        by_id("verify").click()
        result = text_of("verify-result", "Not verified")
        check("cosigned by 1 of the 2 pinned witness(es) and 2 are required" in result, result)
        shot("5d-no-quorum")
        by_id("quorum").clear()
        by_id("quorum").send_keys("1")
        by_id("witness-form").submit()
        text_of("witness-status", "No witness pinned")
        driver.execute_script("localStorage.removeItem('warrant.console.checkpoint');")
    finally:
        witness.stop()

    # Accessibility: no serious or critical violation on the record page.
    axe = driver.execute_async_script(
        AXE + "\nconst done = arguments[arguments.length - 1];"
        "axe.run(document).then((r) => done(r.violations.map((v) => [v.id, v.impact, v.nodes.length])));")
    serious = [v for v in axe if v[1] in ("serious", "critical")]
    check(not serious, f"axe-core: {serious}")

    # Readable at 200 % zoom: half the width in CSS pixels, and no page-wide
    # horizontal scrolling (a wide table may scroll inside its own box).
    driver.set_window_size(640, 1000)
    time.sleep(0.2)
    for page in ("record", "find"):
        driver.execute_script(f"document.getElementById('{page}').scrollIntoView()")
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        check(overflow <= 0, f"{page}: {overflow} px of horizontal scrolling at 200 % zoom")
    shot("5b-zoom-200")
    driver.set_window_size(1280, 1000)

    # The record rewritten behind the server's back: not verified, and why.
    seq = int(by_id("record-title").text.split()[1].rstrip(":"))
    subprocess.run(["sqlite3", str(service.db),
                    f"DROP TRIGGER audit_records_no_update; UPDATE audit_records SET actor = 'someone-else' WHERE seq = {seq};"],
                   check=True)
    by_id("verify").click()
    result = text_of("verify-result", "Not verified")
    check("does not hash into the signed tree" in result, result)
    shot("6-tampered")

    # A wrong pinned key fails too.
    other = work_key(service)
    by_id("log-key").send_keys(other)
    by_id("pin-form").submit()
    text_of("pin-status", other.split("+", 2)[2])
    by_id("verify").click()
    result = text_of("verify-result", "Not verified")
    check("no signature by the pinned key" in result, result)
    shot("7-wrong-key")
    print(f"axe-core: {len(axe)} violation(s), none serious: {axe}")


def work_key(service):
    """A verifier key under the log's own name but another Ed25519 key (RFC
    8032's first test vector): a checkpoint it did not sign must fail."""
    name = service.public_key.split("+")[0]
    raw = b"\x01" + bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    key_hash = hashlib.sha256(name.encode() + b"\n" + raw).hexdigest()[:8]
    return f"{name}+{key_hash}+{base64.b64encode(raw).decode()}"


def absent_witness_key():
    """A witness key (type 0x04) of a witness that never cosigned."""
    name = "witness.example/absent"
    raw = b"\x04" + bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
    key_hash = hashlib.sha256(name.encode() + b"\n" + raw).hexdigest()[:8]
    return f"{name}+{key_hash}+{base64.b64encode(raw).decode()}"


if __name__ == "__main__":
    main()
