"""A minimal Chrome DevTools Protocol client over `--remote-debugging-pipe` (stdlib only, no websocket).

Chromium reads commands from its fd 3 and writes replies and events to its
fd 4, each a JSON object ended by a NUL byte. `Browser` starts headless
chromium with those two pipes, attaches to its page and sends commands to it
(`call`), which is all the screenshot script needs: pre-set the page's local
storage, navigate, wait for the DOM, click, and capture a PNG.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any


class CdpError(RuntimeError):
    pass


class Browser:
    """Headless chromium driven over its DevTools pipe; use as a context manager."""

    def __init__(self, binary: str, profile: Path, size: tuple[int, int], *, timeout_s: float = 60.0) -> None:
        self.timeout_s = timeout_s
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def as_fds_3_and_4() -> None:  # in the child, before exec: chromium's pipe ends where it expects them
            reads = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 100)
            writes = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 100)
            os.dup2(reads, 3)
            os.dup2(writes, 4)

        flags = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--hide-scrollbars", "--remote-debugging-pipe", f"--user-data-dir={profile}",
                 f"--window-size={size[0]},{size[1]}", "about:blank"]
        self._proc = subprocess.Popen(flags, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, pass_fds=(3, 4), preexec_fn=as_fds_3_and_4)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.session: str | None = None
        try:
            page = next((t for t in self.call("Target.getTargets", session=False)["targetInfos"]
                         if t["type"] == "page"), None)
            target = page["targetId"] if page else self.call("Target.createTarget", {"url": "about:blank"},
                                                             session=False)["targetId"]
            self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                                     session=False)["sessionId"]
            self.call("Emulation.setDeviceMetricsOverride",
                      {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": False})
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------------------- protocol
    def call(self, method: str, params: dict[str, Any] | None = None, *, session: bool = True) -> dict[str, Any]:
        """Send one command (to the attached page unless session=False) and return its result."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout_s
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise CdpError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise CdpError(f"chromium did not answer within {self.timeout_s:.0f}s")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise CdpError(f"chromium closed its DevTools pipe (exit code {self._proc.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    # ------------------------------------------------------------------------------- page helpers
    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise CdpError(f"{expression[:80]}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 60.0, poll_s: float = 0.5) -> Any:
        """Poll a JavaScript expression until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise CdpError(f"timed out after {timeout_s:.0f}s waiting for: {expression[:120]}")
            time.sleep(poll_s)

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", {"url": url})

    def before_every_page(self, script: str) -> None:
        """Run `script` in every new document before the page's own scripts (e.g. pre-set local storage)."""
        self.call("Page.addScriptToEvaluateOnNewDocument", {"source": script})

    def screenshot(self, out: Path) -> Path:
        import base64

        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        out.write_bytes(base64.b64decode(data))
        return out

    def close(self) -> None:
        for fd in (self._to_chrome, self._from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
