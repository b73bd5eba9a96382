"""Debian's headless Chromium driven over the DevTools protocol (--remote-debugging-pipe).

--dump-dom cannot send a cookie, and the admin's pages need a logged-in session; the pipe is
stdlib-only (NUL-separated JSON on fds 3 and 4), so no browser driver package is needed.
Console messages, CSP violations among them, come on stderr (--enable-logging=stderr).
"""

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass

# `make deps` installs Debian's chromium; a missing browser is a failure, not a skip.
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Visit:
    html: str
    console: list[str]  # Chromium's log lines for the page's console (CONSOLE)
    values: dict  # each expression of ``evaluate`` -> its value in the loaded page

    @property
    def csp_violations(self) -> list[str]:
        return [line for line in self.console if "Content Security Policy" in line]


def visit(url: str, *, cookies: dict | None = None, evaluate=(), timeout: float = 60) -> Visit:
    """Load ``url`` (after its load event: stylesheets and scripts ran) with ``cookies`` set."""
    with tempfile.TemporaryDirectory(prefix="qbuy-chromium-") as profile:
        to_chromium, from_chromium = os.pipe(), os.pipe()

        def pipe_fds():  # the protocol's fixed descriptors in the child
            os.dup2(to_chromium[0], 3)
            os.dup2(from_chromium[1], 4)

        proc = subprocess.Popen(
            [
                CHROMIUM,
                *FLAGS,
                f"--user-data-dir={profile}",
                "--enable-logging=stderr",
                "--v=0",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=pipe_fds,  # only dup2: safe with the live server's threads
            pass_fds=(3, 4),
        )
        os.close(to_chromium[0])
        os.close(from_chromium[1])
        devtools = _DevTools(to_chromium[1], from_chromium[0])
        # A hung browser is killed: the pipe then ends and the reads below raise EOFError.
        watchdog = threading.Timer(timeout, proc.kill)
        watchdog.start()
        try:
            if cookies:
                devtools.call(
                    "Storage.setCookies",
                    cookies=[{"name": n, "value": v, "url": url} for n, v in cookies.items()],
                )
            target = devtools.call("Target.createTarget", url="about:blank")["targetId"]
            page = devtools.call("Target.attachToTarget", targetId=target, flatten=True)
            session = page["sessionId"]
            devtools.call("Page.enable", session=session)
            devtools.call("Page.navigate", url=url, session=session)
            devtools.wait("Page.loadEventFired", session=session)
            values = {
                expr: devtools.call(
                    "Runtime.evaluate", expression=expr, returnByValue=True, session=session
                )["result"].get("value")
                for expr in ("document.documentElement.outerHTML", *evaluate)
            }
            devtools.close()
            stderr = proc.communicate(timeout=timeout)[1]
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            devtools.release()
    console = [line for line in stderr.splitlines() if ":CONSOLE" in line]
    html = values.pop("document.documentElement.outerHTML")
    return Visit(html=html, console=console, values=values)


class _DevTools:
    def __init__(self, write_fd: int, read_fd: int):
        self.out = os.fdopen(write_fd, "wb", buffering=0)
        self.inp = os.fdopen(read_fd, "rb", buffering=0)
        self.buffer, self.last_id = b"", 0

    def _receive(self) -> dict:
        while b"\0" not in self.buffer:
            chunk = self.inp.read(1 << 16)
            if not chunk:
                raise EOFError("Chromium closed the DevTools pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, *, session: str | None = None, **params) -> dict:
        self.last_id += 1
        message = {"id": self.last_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.out.write(json.dumps(message).encode() + b"\0")
        while True:
            answer = self._receive()
            if answer.get("id") == self.last_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]

    def wait(self, event: str, *, session: str) -> dict:
        while True:
            message = self._receive()
            if message.get("method") == event and message.get("sessionId") == session:
                return message

    def close(self) -> None:
        with contextlib.suppress(EOFError):  # it may close the pipe before answering
            self.call("Browser.close")

    def release(self) -> None:
        self.out.close()
        self.inp.close()
