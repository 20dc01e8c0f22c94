"""A minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe``, for the browser check of the book.

Chromium's own ``--screenshot`` flag captures only the window and reports nothing about requests; the DevTools
protocol gives full-page screenshots, every request a page makes, its console messages and exceptions, and lets
the check evaluate JavaScript in the page (figure geometry). The pipe transport needs no port, no websocket library
and no extra package: Chromium reads JSON commands, each ended by a NUL byte, on its fd 3 and answers on fd 4.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import subprocess
import tempfile
import time
from dataclasses import dataclass, field


class CDPError(RuntimeError):
    """The browser answered a command with an error, died, or did not answer in time."""


@dataclass
class Browser:
    """A headless Chromium started with a DevTools pipe; use as a context manager (the browser is closed after)."""

    binary: str
    flags: tuple[str, ...]
    timeout_s: float = 60.0
    events: list[dict] = field(default_factory=list)

    def __enter__(self) -> Browser:
        self._profile = tempfile.TemporaryDirectory(prefix="sitecheck-profile-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def wire_fds() -> None:  # in the child, before exec: commands on fd 3, answers on fd 4
            src_in = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)  # above 3 and 4, so neither dup2 clobbers the other
            src_out = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(src_in, 3)
            os.dup2(src_out, 4)

        self._proc = subprocess.Popen(
            [self.binary, *self.flags, "--remote-debugging-pipe", f"--user-data-dir={self._profile.name}",
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=wire_fds, pass_fds=(3, 4))  # subprocess closes every other fd after wire_fds
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf = b""
        self._next_id = 0
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.send("Browser.close", timeout_s=5)
        except (CDPError, OSError):
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        self._profile.cleanup()

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError("no answer from chromium in time")
            ready, _, _ = select.select([self._from_child], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(self._from_child, 1 << 20)
                if not chunk:
                    raise CDPError(f"chromium closed its DevTools pipe (exit code {self._proc.poll()})")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout_s: float | None = None) -> dict:
        """Send one command and return its result; events that arrive meanwhile are kept in ``events``."""
        self._next_id += 1
        msg: dict = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise CDPError(f"{method}: {reply['error'].get('message', reply['error'])}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def drain(self, seconds: float) -> None:
        """Collect events for ``seconds`` (the page keeps loading and logging meanwhile)."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                self.events.append(self._read_message(deadline))
            except CDPError as err:
                if "in time" in str(err):
                    return
                raise

    def new_page(self, width: int, height: int) -> str:
        """Open a tab of the given viewport size with network, console and page events on; returns its session."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=session)
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
        return session

    def evaluate(self, session: str, expression: str, timeout_s: float | None = None):
        """Value of a JavaScript expression in the page (awaited if it is a promise, returned by value)."""
        res = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True},
                        session=session, timeout_s=timeout_s)
        if "exceptionDetails" in res:
            raise CDPError(f"evaluate failed: {res['exceptionDetails'].get('text')}")
        return res.get("result", {}).get("value")

    def full_page_png(self, session: str, width: int, max_height: int = 32000) -> bytes:
        """PNG of the whole page, not only the viewport (height capped at ``max_height`` CSS pixels)."""
        height = int(self.evaluate(session, "Math.ceil(Math.max(document.documentElement.scrollHeight,"
                                            " document.body ? document.body.scrollHeight : 0))") or 0)
        height = max(1, min(height, max_height))
        # a viewport as tall as the page, so sticky sidebars and lazily drawn figures are laid out as a reader sees
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
        self.drain(1.0)
        shot = self.send("Page.captureScreenshot", {"format": "png"}, session=session,
                         timeout_s=max(self.timeout_s, 120))
        return base64.b64decode(shot["data"])
