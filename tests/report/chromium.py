"""Open an HTML file in headless Chromium over the DevTools protocol (stdlib only).

Chromium is started with ``--remote-debugging-pipe``: it reads NUL-terminated JSON
messages on file descriptor 3 and writes its replies and events on descriptor 4. That
needs no port, no websocket library and no Playwright. The page is loaded with the
Network, Runtime and Log domains enabled, so every request, console message, uncaught
exception and browser log entry (including Content-Security-Policy violations) is seen.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--mute-audio",
    "--hide-scrollbars",
)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageLoad:
    """What happened while a page loaded."""

    requests: list[str] = field(default_factory=list)
    console: list[dict[str, Any]] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    log_entries: list[dict[str, Any]] = field(default_factory=list)
    screenshot: bytes = b""
    title: str = ""
    values: dict[str, Any] = field(default_factory=dict)  # the ``evaluate`` expressions

    @property
    def errors(self) -> list[str]:
        out = [
            f"console {m.get('type')}: {m.get('text')}"
            for m in self.console
            if m.get("type") in {"error", "assert", "warning"}
        ]
        out += [f"exception: {e}" for e in self.exceptions]
        out += [
            f"log {e.get('level')}: {e.get('text')}"
            for e in self.log_entries
            if e.get("level") in {"error", "warning"}
        ]
        return out

    @property
    def network_requests(self) -> list[str]:
        """Requests that would leave the machine (anything not file: or data:)."""
        return [u for u in self.requests if not u.startswith(("file:", "data:", "about:"))]


class _Pipe:
    def __init__(self, binary: str, user_data_dir: str, width: int, height: int) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        # Move the child's ends above 3/4 first so the dup2 calls below cannot clobber them.
        hi_r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 64)
        hi_w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 64)
        os.close(to_child_r)
        os.close(from_child_w)

        def wire() -> None:  # runs in the child between fork and exec
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        self.proc = subprocess.Popen(
            [
                binary,
                *FLAGS,
                "--remote-debugging-pipe",
                f"--user-data-dir={user_data_dir}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=wire,
            close_fds=False,
        )
        os.close(hi_r)
        os.close(hi_w)
        self.write_fd = to_child_w
        self.read_fd = from_child_r
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> int:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        return self.next_id

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("chromium did not answer in time")
            ready, _, _ = select.select([self.read_fd], [], [], remaining)
            if ready:
                chunk = os.read(self.read_fd, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = 30,
    ) -> dict[str, Any]:
        call_id = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_message(deadline)
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_event(self, method: str, timeout: float = 30) -> dict[str, Any]:
        for index, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(index)
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_message(deadline)
            if message.get("method") == method:
                return message
            self.events.append(message)

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        try:
            while True:
                self.events.append(self._read_message(deadline))
        except TimeoutError:
            pass

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.send("Browser.close")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self.write_fd, self.read_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def load_page(
    html_path: Path,
    *,
    binary: str | None = None,
    width: int = 1280,
    height: int = 900,
    mobile: bool = False,
    evaluate: dict[str, str] | None = None,
) -> PageLoad:
    """Open ``html_path`` headless, record requests/console/errors, take a full-page PNG.

    ``mobile`` emulates a phone viewport (``width`` CSS pixels, touch, scale factor 2);
    ``evaluate`` maps names to JavaScript expressions whose values land in ``values``.
    """
    binary = binary or find_chromium()
    if binary is None:
        raise FileNotFoundError("chromium is not installed")
    result = PageLoad()
    with tempfile.TemporaryDirectory(prefix="abkit-chromium-") as profile:
        pipe = _Pipe(binary, profile, width, height)
        try:
            target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
                "sessionId"
            ]
            for domain in ("Page", "Network", "Runtime", "Log"):
                pipe.call(f"{domain}.enable", session=session)
            pipe.call(
                "Emulation.setDeviceMetricsOverride",
                {
                    "width": width,
                    "height": height,
                    "deviceScaleFactor": 2 if mobile else 1,
                    "mobile": mobile,
                },
                session=session,
            )
            pipe.call("Page.navigate", {"url": Path(html_path).resolve().as_uri()}, session=session)
            pipe.wait_event("Page.loadEventFired", timeout=30)
            pipe.drain(0.3)  # late console/log events
            title = pipe.call(
                "Runtime.evaluate",
                {"expression": "document.title", "returnByValue": True},
                session=session,
            )
            result.title = title.get("result", {}).get("value", "")
            for name, expression in (evaluate or {}).items():
                value = pipe.call(
                    "Runtime.evaluate",
                    {"expression": expression, "returnByValue": True},
                    session=session,
                )
                result.values[name] = value.get("result", {}).get("value")
            shot = pipe.call(
                "Page.captureScreenshot",
                {"format": "png", "captureBeyondViewport": True, "fromSurface": True},
                session=session,
                timeout=60,
            )
            result.screenshot = base64.b64decode(shot["data"])
            for event in pipe.events:
                method = event.get("method")
                params = event.get("params", {})
                if method == "Network.requestWillBeSent":
                    result.requests.append(params["request"]["url"])
                elif method == "Runtime.consoleAPICalled":
                    text = " ".join(
                        str(a.get("value", a.get("description", "")))
                        for a in params.get("args", [])
                    )
                    result.console.append({"type": params.get("type"), "text": text})
                elif method == "Runtime.exceptionThrown":
                    result.exceptions.append(str(params.get("exceptionDetails", {}).get("text")))
                elif method == "Log.entryAdded":
                    entry = params.get("entry", {})
                    result.log_entries.append(
                        {
                            "level": entry.get("level"),
                            "text": entry.get("text"),
                            "url": entry.get("url"),
                        }
                    )
        finally:
            pipe.close()
    return result


def screenshot_stats(png: bytes) -> dict[str, float]:
    """Size and non-blankness of a screenshot: pixel standard deviation, ink fraction."""
    import io

    from PIL import Image, ImageStat

    image = Image.open(io.BytesIO(png)).convert("L")
    stat = ImageStat.Stat(image)
    histogram = image.histogram()
    total = sum(histogram)
    non_white = sum(histogram[:245]) / total
    return {
        "width": image.width,
        "height": image.height,
        "stddev": stat.stddev[0],
        "non_white": non_white,
        "bytes": len(png),
    }
