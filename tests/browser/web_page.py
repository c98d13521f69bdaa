"""The web page in a real Chromium, driven by Playwright, against a real `ferry serve --web`.

Run by tests/browser.rs, one scenario per process: `web_page.py SCENARIO`. The environment
gives the ferry binary (FERRY_BIN) and where screenshots go (FERRY_SCREENSHOTS). Each scenario
starts its own server on free loopback ports with temporary folders, drives the page, checks
what a person would see, cross-checks through the real CLI, saves a screenshot, and exits 0 only
when every check held (an AssertionError otherwise, with what was seen).
"""

import datetime
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import threading
import queue
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

FERRY = os.environ["FERRY_BIN"]
SHOTS = Path(os.environ["FERRY_SCREENSHOTS"])
CHROMIUM = os.environ.get("FERRY_CHROMIUM", "/usr/bin/chromium")
WAIT_MS = 20_000
XSS = "<img src=x onerror=\"window.__xss=1\"><script>window.__xss=2</script>"


class Server:
    """`ferry serve --web 127.0.0.1:0` with users alice (everything but admin), reader (chat,
    read) and boss (chat, admin)."""

    def __init__(self, work):
        self.work = Path(work)
        self.root = self.work / "root"
        self.root.mkdir()
        self.home = self.work / "home"
        config = self.work / "config.toml"
        # The terminal's login shell is /bin/sh, not the account's: root's bash here reads rc files
        # whose pyenv init, once a shell is killed mid-init, makes every later login shell wait 60 s.
        config.write_text('[exec]\nshell = "/bin/sh"\n')
        self.tokens = {
            "alice": self.ferry("user", "add", "alice", "--allow", "chat,read,write,exec", "--config", str(config)),
            "reader": self.ferry("user", "add", "reader", "--allow", "chat,read", "--config", str(config)),
            "boss": self.ferry("user", "add", "boss", "--allow", "chat,admin", "--config", str(config)),
        }
        self.process = subprocess.Popen(
            [FERRY, "serve", "--listen", "127.0.0.1:0", "--web", "127.0.0.1:0", "--root", str(self.root),
             "--state", str(self.work / "state"), "--config", str(config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env=self.env())
        self.startup = []
        self.addr = self.url = self.fingerprint = None
        for line in self.process.stderr:
            self.startup.append(line)
            if m := re.search(r"web page at (https://[^/]+/) \(identity (sha256:[0-9a-f]+)", line):
                self.url, self.fingerprint = m.group(1), m.group(2)
            if m := re.search(r"listening on (\S+)", line):
                self.addr = m.group(1)
            if self.url and self.addr:
                break
        assert self.url and self.addr, f"the server did not print its addresses: {self.startup}"
        threading.Thread(target=lambda: [None for _ in self.process.stderr], daemon=True).start()

    def env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
        env.update(FERRY_HOME=str(self.home), NO_COLOR="1")
        return env

    def ferry(self, *args, stdin=None):
        done = subprocess.run([FERRY, *args], input=stdin, capture_output=True, env=self.env(), timeout=60)
        assert done.returncode == 0, f"ferry {' '.join(args)}: {done.stderr.decode(errors='replace')}"
        return done.stdout.decode().strip()

    def client(self, verb, *args, token="alice"):
        """A CLI verb against this server as `token`'s user."""
        return [FERRY, verb, "--server", self.addr, "--token", self.tokens[token], "--accept-new", *args]

    def stop(self):
        self.process.kill()
        self.process.wait()


PYTHON_CLIENT = Path(__file__).resolve().parents[2] / "examples" / "python" / "ferry_client.py"


class CliChat:
    """`ferry chat` as another member (or, with `python`, the standard-library Python client),
    its lines read as they come."""

    def __init__(self, server, room, nick, python=False):
        if python:
            command = [sys.executable, str(PYTHON_CLIENT), "--server", server.addr, "--home", str(server.home),
                       "--token", server.tokens["reader"], "chat", "--room", room, "--nick", nick]
        else:
            command = server.client("chat", "--room", room, "--nick", nick)
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=server.env())
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def say(self, text):
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def wait_for(self, pattern):
        seen = []
        while True:
            try:
                line = self.lines.get(timeout=WAIT_MS / 1000)
            except queue.Empty:
                raise AssertionError(f"the CLI member never saw {pattern!r}; it saw {seen}")
            seen.append(line)
            if re.search(pattern, line):
                return line

    def stop(self):
        self.process.stdin.close()
        self.process.wait(timeout=30)


class Page:
    """Chromium with one page on the server's web door; console errors are collected."""

    def __init__(self, playwright, server, name, args=(), viewport=None, url=None):
        self.name = name
        self.browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", *args])
        # The server's certificate is its own, self-signed identity: the test compares its
        # fingerprint with the startup line instead of a CA.
        self.context = self.browser.new_context(ignore_https_errors=True, accept_downloads=True,
                                                viewport=viewport or {"width": 1200, "height": 800})
        self.page = self.context.new_page()
        self.page.set_default_timeout(WAIT_MS)
        expect.set_options(timeout=WAIT_MS)
        self.errors = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.responses = {}
        self.page.on("response", lambda r: self.responses.setdefault(r.url, r))
        self.first = self.page.goto(url or server.url)

    def sign_in(self, token):
        self.page.fill("#token", token)
        self.page.click("#sign-in-button")
        expect(self.page.locator("#app")).to_be_visible()

    def shot(self):
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{self.name}.png"), full_page=True)

    def close(self):
        self.browser.close()

    def no_console_errors(self):
        assert not self.errors, f"console errors: {self.errors}"


def page_loads(p, server):
    page = Page(p, server, "page_loads")
    expect(page.page.locator("#identity")).to_contain_text(server.fingerprint)
    favicon = page.page.request.get(server.url + "favicon.svg")
    assert favicon.status == 200 and favicon.headers["content-type"].startswith("image/svg"), favicon.status
    main = page.page.request.get(server.url)
    headers = main.headers
    csp = headers.get("content-security-policy", "")
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0], csp
    assert headers.get("x-content-type-options") == "nosniff", headers
    assert headers.get("referrer-policy") == "no-referrer", headers
    assert "set-cookie" not in headers, headers
    page.page.click("#anonymous")
    expect(page.page.locator("#who")).to_contain_text("anonymous")
    expect(page.page.locator("#tab-terminal")).to_be_hidden()
    page.page.wait_for_load_state("networkidle")
    page.shot()
    page.no_console_errors()
    assert page.page.evaluate("localStorage.length") == 0
    page.close()


def wrong_token(p, server):
    page = Page(p, server, "wrong_token")
    page.page.fill("#token", "alice:not-the-secret")
    page.page.click("#sign-in-button")
    expect(page.page.locator("#sign-in-error")).to_have_text("Sign-in failed: wrong token or unknown user.")
    expect(page.page.locator("#app")).to_be_hidden()
    page.shot()
    assert page.page.evaluate("localStorage.length") == 0
    page.close()


def remember(p, server):
    page = Page(p, server, "remember")
    page.page.fill("#token", server.tokens["reader"])
    page.page.check("#remember")
    page.page.click("#sign-in-button")
    expect(page.page.locator("#who")).to_contain_text("reader")
    assert page.page.evaluate("localStorage.getItem('ferry.token')") == server.tokens["reader"]
    page.page.reload()
    expect(page.page.locator("#token")).to_have_value(server.tokens["reader"])
    page.page.click("#sign-in-button")
    page.page.click("#sign-out")
    expect(page.page.locator("#sign-in")).to_be_visible()
    assert page.page.evaluate("localStorage.length") == 0, "sign-out forgets the token"
    page.shot()
    page.close()


def chat_with_cli(p, server):
    page = Page(p, server, "chat_with_cli")
    page.sign_in(server.tokens["alice"])
    cli = CliChat(server, "harbour", "deckhand")
    cli.wait_for(r"in room harbour as deckhand")
    cli.say("said before you came")
    page.page.fill("#chat-room", "harbour")
    page.page.click("#chat-join")
    expect(page.page.locator("#chat-place")).to_contain_text("#harbour as alice")
    # History on join, and the member list.
    expect(page.page.locator("#chat-log li.history")).to_contain_text("<deckhand> said before you came")
    # A history line shows when it was said (exactly, on hover), and a marker ends the history.
    said = page.page.locator("#chat-log li.history .time").first.get_attribute("title")
    when = datetime.datetime.fromisoformat(said.replace("Z", "+00:00"))
    age = (datetime.datetime.now(datetime.timezone.utc) - when).total_seconds()
    assert -5 < age < 60, f"the history line's time {said} is not when it was said"
    expect(page.page.locator("#chat-log li.history + li.marker")).to_have_text("history above, live from here")
    expect(page.page.locator("#chat-members")).to_contain_text("deckhand")
    page.page.fill("#chat-input", "hello from the page")
    page.page.press("#chat-input", "Enter")
    cli.wait_for(r"\[harbour\] alice: hello from the page")
    cli.say("hello from the cli")
    expect(page.page.locator("#chat-log")).to_contain_text("<deckhand> hello from the cli")
    # A member on the Python client: it prints what arrived while it waits for its own ack.
    python = CliChat(server, "harbour", "pyhand", python=True)
    python.wait_for(r"joined as pyhand")
    page.page.fill("#chat-input", "hello python")
    page.page.press("#chat-input", "Enter")
    expect(page.page.locator("#chat-log li:not(.pending)").last).to_contain_text("hello python")
    python.say("hi from python")
    python.wait_for(r"\[harbour\] alice: hello python")
    expect(page.page.locator("#chat-log")).to_contain_text("<pyhand> hi from python")
    python.stop()
    expect(page.page.locator("#chat-log")).to_contain_text("pyhand left")
    # The bot, by a direct message.
    page.page.fill("#chat-input", "/msg babyshen 我")
    page.page.press("#chat-input", "Enter")
    expect(page.page.locator("#chat-log")).to_contain_text("babyshen → you 我好")
    # A line that is markup stays text: nothing of it runs, no element is made from it.
    cli.say(XSS)
    expect(page.page.locator("#chat-log")).to_contain_text(XSS)
    assert page.page.evaluate("window.__xss") is None, "the chat line ran as script"
    assert page.page.locator("#chat-log img, #chat-log script").count() == 0
    # The size limit is a clear line, and nothing was sent.
    page.page.fill("#chat-input", "x" * 5000)
    page.page.press("#chat-input", "Enter")
    expect(page.page.locator("#chat-log .refused")).to_contain_text("not sent")
    # Past the flood limit the server paces the lines (none is lost), and the page says so.
    page.page.evaluate("""() => {
        const input = document.querySelector('#chat-input');
        const form = document.querySelector('#chat-say-form');
        for (let i = 0; i < 40; i++) { input.value = `flood ${i}`; form.requestSubmit(); }
    }""")
    expect(page.page.locator("#chat-status")).to_contain_text("flood limit")
    cli.wait_for(r"alice: flood 39$")
    expect(page.page.locator("#chat-status")).to_have_text("")
    assert page.page.locator("#chat-log li.pending").count() == 0
    # A nick change, then at once (before its ack is back) a move to another room: the join
    # keeps the new nick, and the CLI member is told of both.
    page.page.evaluate("""() => {
        const input = document.querySelector('#chat-input');
        const form = document.querySelector('#chat-say-form');
        for (const line of ['/nick skipper', '/join deck']) { input.value = line; form.requestSubmit(); }
    }""")
    expect(page.page.locator("#chat-place")).to_contain_text("#deck as skipper")
    cli.wait_for(r"alice is now known as skipper")
    cli.wait_for(r"skipper left")
    page.page.fill("#chat-input", "/join harbour")
    page.page.press("#chat-input", "Enter")
    expect(page.page.locator("#chat-place")).to_contain_text("#harbour as skipper")
    cli.stop()
    expect(page.page.locator("#chat-log")).to_contain_text("deckhand left")
    expect(page.page.locator("#chat-members")).not_to_contain_text("deckhand")
    expect(page.page.locator("#chat-rooms li.current")).to_have_text("#harbour (1)")
    page.shot()
    page.no_console_errors()
    assert page.page.evaluate("localStorage.length") == 0, "nothing is stored without 'remember'"
    page.close()


def files_both_ways(p, server):
    page = Page(p, server, "files_both_ways")
    page.sign_in(server.tokens["alice"])
    page.page.click("#tab-files")
    # Upload from the page, get it back through the CLI byte for byte.
    upload = Path(tempfile.mkdtemp()) / "from-page.bin"
    upload.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    page.page.set_input_files("#files-upload", str(upload))
    expect(page.page.locator("#transfers li[data-state=done]")).to_contain_text("verified by the server")
    expect(page.page.locator("#files-rows tr[data-name='from-page.bin']")).to_be_visible()
    back = Path(tempfile.mkdtemp()) / "back.bin"
    subprocess.run(server.client("get", "from-page.bin", str(back)), check=True, env=server.env(),
                   capture_output=True, timeout=60)
    assert back.read_bytes() == upload.read_bytes(), "the uploaded file differs"
    # Put through the CLI, download in the page byte for byte.
    source = Path(tempfile.mkdtemp()) / "from-cli.bin"
    source.write_bytes(os.urandom(2 * 1024 * 1024 + 5))
    subprocess.run(server.client("put", str(source), "from-cli.bin"), check=True, env=server.env(),
                   capture_output=True, timeout=60)
    page.page.click("#files-refresh")
    row = page.page.locator("#files-rows tr[data-name='from-cli.bin']")
    with page.page.expect_download() as download:
        row.locator("button.download").click()
    saved = Path(download.value.path())
    assert saved.read_bytes() == source.read_bytes(), "the downloaded file differs"
    expect(page.page.locator("#transfers li[data-state=done]").first).to_contain_text("verified")
    # Drag and drop onto the listing uploads too.
    dropped = page.page.evaluate_handle(
        "() => { const dt = new DataTransfer(); dt.items.add(new File(['dropped bytes'], 'dropped.txt')); return dt; }")
    page.page.dispatch_event("#files-drop", "drop", {"dataTransfer": dropped})
    expect(page.page.locator("#files-rows tr[data-name='dropped.txt']")).to_be_visible()
    assert (server.root / "dropped.txt").read_bytes() == b"dropped bytes"
    page.page.once("dialog", lambda d: d.accept())
    page.page.locator("#files-rows tr[data-name='dropped.txt'] button.remove").click()
    expect(page.page.locator("#files-rows tr[data-name='dropped.txt']")).to_have_count(0)
    # A large download goes straight to disk where the browser offers the File System Access
    # API (here a stand-in that keeps what is written): written as it arrives, kept (closed)
    # only once verified.
    big = server.root / "big.bin"
    big.write_bytes(os.urandom(64 * 1024 * 1024 + 3))
    page.page.evaluate("""() => {
        window.__disk = { parts: 0, bytes: 0, closed: false, aborted: false, chunks: [] };
        window.showSaveFilePicker = async ({ suggestedName }) => ({
            createWritable: async () => ({
                write: async (b) => { __disk.parts++; __disk.bytes += b.length; __disk.chunks.push(new Uint8Array(b)); },
                close: async () => { __disk.closed = true; },
                abort: async () => { __disk.aborted = true; },
            }),
            name: suggestedName,
        });
    }""")
    page.page.click("#files-refresh")
    page.page.locator("#files-rows tr[data-name='big.bin'] button.download").click()
    expect(page.page.locator("#transfers li", has_text="big.bin")).to_have_attribute("data-state", "done")
    disk = page.page.evaluate("""async () => {
        const whole = new Blob(__disk.chunks);
        const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', await whole.arrayBuffer()));
        const hex = Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
        return { parts: __disk.parts, bytes: __disk.bytes, closed: __disk.closed, aborted: __disk.aborted, hex };
    }""")
    assert disk["closed"] and not disk["aborted"] and disk["parts"] > 1, disk
    assert disk["bytes"] == big.stat().st_size and disk["hex"] == hashlib.sha256(big.read_bytes()).hexdigest(), disk
    big.unlink()
    page.page.click("#files-refresh")
    # Sort by size: the larger file first when descending.
    page.page.click("#files-table th[data-sort=size]")
    page.page.click("#files-table th[data-sort=size]")
    names = page.page.locator("#files-rows tr").evaluate_all("rows => rows.map(r => r.dataset.name)")
    assert names == ["from-page.bin", "from-cli.bin"], names
    # mkdir, then rm with its confirmation.
    page.page.once("dialog", lambda d: d.accept("boxes"))
    page.page.click("#files-mkdir")
    expect(page.page.locator("#files-rows tr[data-name='boxes']")).to_be_visible()
    assert (server.root / "boxes").is_dir()
    messages = []
    page.page.once("dialog", lambda d: (messages.append(d.message), d.accept()))
    page.page.locator("#files-rows tr[data-name='from-cli.bin'] button.remove").click()
    expect(page.page.locator("#files-rows tr[data-name='from-cli.bin']")).to_have_count(0)
    assert "from-cli.bin" in messages[0], messages
    assert not (server.root / "from-cli.bin").exists()
    page.shot()
    page.no_console_errors()
    page.close()


def read_only(p, server):
    page = Page(p, server, "read_only")
    page.sign_in(server.tokens["reader"])
    page.page.click("#tab-files")
    expect(page.page.locator("#files-status")).to_contain_text("item")
    expect(page.page.locator("label:has(#files-upload)")).to_be_hidden()
    expect(page.page.locator("#files-mkdir")).to_be_hidden()
    expect(page.page.locator("#tab-terminal")).to_be_hidden()
    # Trying anyway (the hidden input still takes files): the server refuses, nothing lands.
    attempt = Path(tempfile.mkdtemp()) / "sneaky.txt"
    attempt.write_text("should not land")
    page.page.set_input_files("#files-upload", str(attempt))
    expect(page.page.locator("#files-status")).to_contain_text("refused")
    expect(page.page.locator("#transfers li[data-state=failed]")).to_contain_text("permission")
    assert not (server.root / "sneaky.txt").exists()
    page.shot()
    page.close()


def admin_figures(p, server):
    """Only an admin sees the Server tab; it shows the live counters and follows what happens."""
    reader = Page(p, server, "admin_figures_reader")
    reader.sign_in(server.tokens["reader"])
    expect(reader.page.locator("#tab-server")).to_be_hidden()
    reader.close()
    page = Page(p, server, "admin_figures")
    page.sign_in(server.tokens["boss"])
    page.page.click("#tab-server")
    figure = lambda series, labels: page.page.locator(
        f"#server-figures tr[data-series='{series}'][data-labels='{labels}'] td")
    # This page's own sessions are on the web page's door.
    expect(figure("ferry_sessions_open", '{"transport":"websocket"}')).to_have_text(re.compile(r"^[1-9]"))
    expect(figure("ferry_sign_ins_total", '{"outcome":"failed"}')).to_have_text("0")
    # A wrong token through the CLI: the figure follows within a refresh or two.
    wrong = subprocess.run([FERRY, "ping", "--server", server.addr, "--token", "alice:" + "A" * 43,
                            "--accept-new", "-c", "1"], capture_output=True, env=server.env(), timeout=60)
    assert wrong.returncode != 0, wrong.stdout
    expect(figure("ferry_sign_ins_total", '{"outcome":"failed"}')).to_have_text("1")
    expect(page.page.locator("#server-figures")).to_contain_text("stats → ok")
    expect(page.page.locator("#server-status")).to_contain_text("as of")
    page.shot()
    page.no_console_errors()
    page.close()


def terminal(p, server):
    page = Page(p, server, "terminal")
    page.sign_in(server.tokens["alice"])
    page.page.click("#tab-terminal")
    expect(page.page.locator("#terminal-status")).to_have_text("shell running")
    rows = page.page.locator("#terminal .xterm-rows")
    page.page.keyboard.type("echo ferry-$((6*7))\n")
    expect(rows).to_contain_text("ferry-42")
    # The pty has the page's size, and follows it when the window changes.
    def pty_size(mark):
        page.page.keyboard.type(f"echo {mark}=$(stty size | tr ' ' x)\n")
        expect(rows).to_contain_text(re.compile(rf"{mark}=\d+x\d+"))
        pty = tuple(map(int, re.search(rf"{mark}=(\d+)x(\d+)", rows.inner_text()).groups()))
        shown = page.page.evaluate("document.querySelector('#terminal .xterm-rows').children.length")
        assert pty[0] == shown, f"the pty has {pty[0]} rows, the page shows {shown}"
        return pty
    before = pty_size("first")
    page.page.set_viewport_size({"width": 800, "height": 500})
    page.page.wait_for_function(
        f"document.querySelector('#terminal .xterm-rows').children.length < {before[0]}")
    after = pty_size("second")
    assert after[0] < before[0] and after[1] < before[1], (before, after)
    # Ctrl-C interrupts what runs.
    # Pressed once the command runs (it says so, then becomes `sleep`): a Ctrl-C that reached
    # bash between its fork and the exec would end the child without the signal showing, and
    # bash would go on with the list.
    page.page.keyboard.type("sh -c 'echo ready-$((3+4)); exec sleep 60'; echo not-$((2+3))\n")
    expect(rows).to_contain_text("ready-7")
    page.page.keyboard.press("Control+C")
    page.page.keyboard.type("echo after-$((1+1))\n")
    expect(rows).to_contain_text("after-2")
    assert "not-5" not in rows.inner_text(), "Ctrl-C did not stop the command"
    # Colours reach the screen as colours, not as escape text.
    page.page.keyboard.type("printf 'plain \\033[31mred-%s\\033[0m\\n' $((40+2))\n")
    red = page.page.locator("#terminal .xterm-rows span.xterm-fg-1", has_text="red-42")
    expect(red).to_have_count(1)
    # A full-screen program: top draws its screen, q leaves it.
    page.page.keyboard.type("top\n")
    expect(rows).to_contain_text("load average")
    page.shot()
    page.page.keyboard.press("q")
    # Typed while top still runs, the next keys would be top's (or lost): wait until it has
    # left its screen (the terminal is back on the shell's, where top never drew).
    expect(rows).not_to_contain_text("load average")
    page.page.keyboard.type("clear; echo back-$((5+5))\n")
    expect(rows).to_contain_text("back-10")
    page.no_console_errors()
    page.close()


def rebinding(p, server):
    """DNS rebinding: a page at evil.example whose name now resolves to 127.0.0.1 reads
    nothing — the door answers only to its own names."""
    port = server.url.rstrip("/").rsplit(":", 1)[1]
    evil = f"https://evil.example:{port}/"
    page = Page(p, server, "rebinding", args=["--host-resolver-rules=MAP evil.example 127.0.0.1"], url=evil)
    assert page.first is not None and page.first.status == 421, f"the page loaded: {page.first and page.first.status}"
    assert page.page.locator("#sign-in").count() == 0, "the page itself was served"
    # What a rebinding script would do next: fetch the facts and open the WebSocket.
    result = page.page.evaluate("""async () => {
        const facts = await fetch('/ferry.json').then((r) => r.status).catch((e) => String(e));
        const socket = await new Promise((resolve) => {
            const ws = new WebSocket(`wss://${location.host}/ws`);
            ws.onopen = () => resolve('open');
            ws.onerror = () => resolve('refused');
        });
        return { facts, socket };
    }""")
    assert result == {"facts": 421, "socket": "refused"}, result
    page.shot()
    page.close()
    # The door's own address still serves the page.
    own = Page(p, server, "rebinding-own")
    assert own.first.status == 200
    expect(own.page.locator("#sign-in")).to_be_visible()
    own.close()


def spoofing(p, server):
    """A line with a newline cannot forge another line, and right-to-left overrides in lines,
    nicks and file names show as escapes, as the CLI shows them."""
    sys.path.insert(0, str(PYTHON_CLIENT.parent))
    import ferry_client
    (server.root / "evil\u202etxt.exe").write_text("x")
    page = Page(p, server, "spoofing")
    page.sign_in(server.tokens["alice"])
    page.page.fill("#chat-room", "spoof")
    page.page.click("#chat-join")
    expect(page.page.locator("#chat-place")).to_contain_text("#spoof as alice")
    conn = ferry_client.connect(server.addr, False, str(server.home / "python"))
    ferry_client.handshake(conn, server.tokens["reader"])
    conn.send_message({"type": "chat_join", "room": "spoof", "nick": "mallory"})
    while conn.read_message()["type"] != "chat_joined":
        pass
    forged = "hi\n12:00 <alice> send me your token\u202egnp.exe"
    conn.send_message({"type": "chat_say", "id": 1, "text": forged})
    while conn.read_message().get("type") != "chat_ack":
        pass
    line = page.page.locator("#chat-log li", has_text="<mallory>")
    expect(line).to_have_count(1)
    shown = line.inner_text()
    assert "\\n12:00 <alice>" in shown and "\\u{202e}gnp.exe" in shown, shown
    assert "\u202e" not in shown and "\n12:00" not in shown, shown
    # The forged text is one line, not two.
    assert page.page.locator("#chat-log li", has_text="send me your token").count() == 1
    conn.close()
    page.page.click("#tab-files")
    row = page.page.locator("#files-rows tr", has_text="txt.exe")
    expect(row).to_contain_text("evil\\u{202e}txt.exe")
    page.shot()
    page.no_console_errors()
    page.close()


def phone(p, server):
    """At 390 px every view fits the width, the header stays short, folders are links reachable
    by Tab and Enter, and chat and files show dates one way."""
    (server.root / "folder").mkdir()
    (server.root / "folder" / "inside.txt").write_text("x")
    page = Page(p, server, "phone", viewport={"width": 390, "height": 844})
    page.sign_in(server.tokens["alice"])
    header = page.page.locator("header").bounding_box()
    assert header["height"] < 90, f"the header is {header['height']} px high"
    for view in ["chat", "files", "terminal"]:
        page.page.click(f"#tab-{view}")
        if view == "chat":
            page.page.click("#chat-join")
            expect(page.page.locator("#chat-place")).to_contain_text("#lobby")
        if view == "files":
            expect(page.page.locator("#files-rows tr[data-name='folder']")).to_be_visible()
        width = page.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the {view} view is {width} px wide"
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.page.screenshot(path=str(SHOTS / f"phone-{view}.png"))
    page.page.click("#tab-files")
    link = page.page.locator("#files-rows tr[data-name='folder'] a")
    assert link.get_attribute("href") == "#/folder", link.get_attribute("href")
    link.focus()
    page.page.keyboard.press("Enter")
    expect(page.page.locator("#files-path")).to_have_text("/folder")
    expect(page.page.locator("#files-rows tr[data-name='inside.txt']")).to_be_visible()
    # One date format: today's times as HH:MM in both views.
    page.page.set_viewport_size({"width": 1200, "height": 800})
    modified = page.page.locator("#files-rows tr[data-name='inside.txt'] td").nth(2).inner_text()
    assert re.fullmatch(r"\d\d:\d\d", modified), modified
    page.page.click("#tab-chat")
    page.page.fill("#chat-input", "what time is it")
    page.page.press("#chat-input", "Enter")
    time = page.page.locator("#chat-log li:not(.pending) .time").last.inner_text()
    assert re.fullmatch(r"\d\d:\d\d", time), time
    page.no_console_errors()
    page.close()


SCENARIOS = {f.__name__: f for f in [page_loads, wrong_token, remember, chat_with_cli, files_both_ways, read_only, terminal,
                                      admin_figures, rebinding, spoofing, phone]}

if __name__ == "__main__":
    scenario = SCENARIOS[sys.argv[1]]
    with tempfile.TemporaryDirectory() as work:
        server = Server(work)
        try:
            with sync_playwright() as p:
                scenario(p, server)
        finally:
            server.stop()
    print(f"{sys.argv[1]}: ok")
