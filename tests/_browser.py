"""A small headless-Chromium driver over the DevTools protocol, for the HTML report's browser tests.

``Browser`` starts ``chromium --headless=new`` on a temporary profile, attaches to its one page and
records what a page does while it loads and runs: console messages, uncaught exceptions, log entries
(Content-Security-Policy violations arrive there), network requests and JavaScript dialogs (which it
dismisses, so an ``alert()`` cannot hang a test). Every wait has a timeout; leaving the ``with``
block ends the browser and removes its profile, however the block ends.

``decode_png`` reads the browser's screenshots (8-bit RGB/RGBA, not interlaced) without an image
library. As a script it writes a screenshot, e.g. for the documentation:

    python -m tests._browser shot runs/x/report.html docs/report.png --width 1280 --height 900
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import queue
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import websocket

CHROMIUM_ENV = "LM_AUDIT_CHROMIUM"
CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
INSTALL_HINT = (f"install Chromium (apt-get install chromium) or set {CHROMIUM_ENV} to a Chromium or Chrome "
                "binary")
FLAGS = ("--headless=new", "--remote-debugging-port=0", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--metrics-recording-only")


class BrowserError(RuntimeError):
    """The browser did not start, answer or load in time, or refused a command."""


def find_chromium() -> str | None:
    """The browser to drive: ``$LM_AUDIT_CHROMIUM`` when set (a path or a name on PATH), else the first
    of chromium, chromium-browser, google-chrome on PATH; None when there is none."""
    wanted = os.environ.get(CHROMIUM_ENV)
    for name in [wanted] if wanted else CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass(frozen=True)
class Rect:
    """An element's box in CSS pixels, relative to the viewport (getBoundingClientRect)."""

    x: float
    y: float
    width: float
    height: float

    def clipped(self, width: int, height: int) -> tuple[int, int, int, int] | None:
        """(left, top, right, bottom) of the part inside a ``width`` x ``height`` screen, or None."""
        left, top = max(0, int(self.x)), max(0, int(self.y))
        right, bottom = min(width, int(self.x + self.width)), min(height, int(self.y + self.height))
        return (left, top, right, bottom) if right > left and bottom > top else None


@dataclass
class PageEvents:
    """What the page did since it was opened; each entry is one line of text, for assertion messages."""

    console: list[str] = field(default_factory=list)  # "TYPE: text" (log, warning, error ...)
    exceptions: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)  # "LEVEL SOURCE: text" (CSP violations: "error security: ...")
    requests: list[str] = field(default_factory=list)  # URLs
    dialogs: list[str] = field(default_factory=list)  # "TYPE: message" (alert, confirm, prompt ...)

    def problems(self) -> list[str]:
        """Console errors and warnings, exceptions, log warnings and errors, and dialogs."""
        return ([c for c in self.console if c.split(":", 1)[0] in ("error", "warning", "assert")]
                + [f"exception: {e}" for e in self.exceptions]
                + [e for e in self.log if e.split(" ", 1)[0] in ("error", "warning")]
                + [f"dialog {d}" for d in self.dialogs])


class Browser:
    """Headless Chromium with one page. Use as a context manager:

        with Browser() as browser:
            browser.open(path)
            title = browser.evaluate("document.title")
    """

    def __init__(self, binary: str | None = None, *, width: int = 1280, height: int = 900,
                 timeout: float = 20.0) -> None:
        found = binary or find_chromium()
        if found is None:
            raise BrowserError(f"no browser found: {INSTALL_HINT}")
        self.binary, self.width, self.height, self.timeout = found, width, height, timeout
        self.events = PageEvents()
        self._proc: subprocess.Popen[str] | None = None
        self._profile: str | None = None
        self._ws: websocket.WebSocket | None = None
        self._session: str | None = None
        self._next_id = 0
        self._loaded = False
        self._stderr: list[str] = []

    def __enter__(self) -> Browser:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- the process ---------------------------------------------------------------------------

    def _start(self) -> None:
        self._profile = tempfile.mkdtemp(prefix="lm-audit-chromium-")
        args = [self.binary, *FLAGS, f"--user-data-dir={self._profile}",
                f"--window-size={self.width},{self.height}", "about:blank"]
        # Its own process group, so that closing reaches the renderer and helper processes too.
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True)
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read_stderr, args=(lines,), daemon=True).start()
        url = self._devtools_url(lines)
        self._ws = websocket.create_connection(url, timeout=self.timeout, suppress_origin=True,
                                               enable_multithread=False)
        targets = self._call("Target.getTargets", session=False)["targetInfos"]
        page = next((t for t in targets if t["type"] == "page"), None)
        if page is None:  # about:blank should have made one; make one if not
            page = {"targetId": self._call("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]}
        self._session = self._call("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True},
                                   session=False)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self._call(f"{domain}.enable")
        self._call("Emulation.setDeviceMetricsOverride",
                   {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})

    def _read_stderr(self, lines: queue.Queue[str | None]) -> None:
        # Drains stderr for the browser's whole life (a full pipe would block it); keeps the tail for errors.
        assert self._proc is not None and self._proc.stderr is not None
        for line in self._proc.stderr:
            self._stderr = (self._stderr + [line.rstrip()])[-20:]
            if line.startswith("DevTools listening on "):
                lines.put(line.split(" on ", 1)[1].strip())
        lines.put(None)

    def _devtools_url(self, lines: queue.Queue[str | None]) -> str:
        try:
            url = lines.get(timeout=self.timeout)
        except queue.Empty:
            raise BrowserError(f"{self.binary} printed no DevTools address in {self.timeout:g} s: "
                               + " | ".join(self._stderr)) from None
        if url is None:
            raise BrowserError(f"{self.binary} exited before it listened (exit code {self._proc_code()}): "
                               + " | ".join(self._stderr))
        return url

    def _proc_code(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def close(self) -> None:
        """End the browser and its helper processes and remove the profile; safe to call twice."""
        asked = False
        if self._ws is not None:
            try:
                self._ws.send(json.dumps({"id": 0, "method": "Browser.close"}))
                asked = True
            except (OSError, websocket.WebSocketException):
                pass
            self._ws.close()
            self._ws = None
        proc, self._proc = self._proc, None
        if proc is not None:
            # Asked to close, it gets 5 s; then its process group is terminated, then killed.
            for sig in ([None] if asked else []) + [signal.SIGTERM, signal.SIGKILL]:
                if sig is not None and proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, sig)
                try:
                    proc.wait(timeout=5)
                    break
                except subprocess.TimeoutExpired:
                    pass
            if proc.stderr is not None:
                proc.stderr.close()
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None

    # -- the protocol --------------------------------------------------------------------------

    def _send(self, method: str, params: dict[str, Any] | None = None, *, session: bool = True) -> int:
        if self._ws is None:
            raise BrowserError("the browser is not running")
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self._session
        self._ws.send(json.dumps(message))
        return self._next_id

    def _call(self, method: str, params: dict[str, Any] | None = None, *, session: bool = True,
              timeout: float | None = None) -> dict[str, Any]:
        ident = self._send(method, params, session=session)
        reply = self._pump(lambda m: m.get("id") == ident, f"reply to {method}", timeout)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error'].get('message', reply['error'])}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    def _pump(self, done: Callable[[dict[str, Any]], bool], what: str, timeout: float | None = None) -> dict[str, Any]:
        """Read messages, recording events, until ``done`` accepts one; BrowserError after the timeout."""
        assert self._ws is not None
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"no {what} within {timeout or self.timeout:g} s")
            self._ws.settimeout(left)
            try:
                message: dict[str, Any] = json.loads(self._ws.recv())
            except websocket.WebSocketTimeoutException:
                raise BrowserError(f"no {what} within {timeout or self.timeout:g} s") from None
            except (OSError, websocket.WebSocketException) as exc:
                raise BrowserError(f"the browser went away while waiting for {what} "
                                   f"(exit code {self._proc_code()}): {exc}") from exc
            if "method" in message:
                self._record(message["method"], message.get("params", {}))
            if done(message):
                return message

    def _record(self, method: str, params: dict[str, Any]) -> None:
        ev = self.events
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", a.get("type")))) for a in params.get("args", []))
            ev.console.append(f"{params.get('type')}: {text}")
        elif method == "Runtime.exceptionThrown":
            d = params.get("exceptionDetails", {})
            ev.exceptions.append(d.get("exception", {}).get("description") or d.get("text", "?"))
        elif method == "Log.entryAdded":
            e = params.get("entry", {})
            ev.log.append(f"{e.get('level')} {e.get('source')}: {e.get('text')}")
        elif method == "Network.requestWillBeSent":
            ev.requests.append(params.get("request", {}).get("url", "?"))
        elif method == "Page.javascriptDialogOpening":
            ev.dialogs.append(f"{params.get('type')}: {params.get('message')}")
            self._send("Page.handleJavaScriptDialog", {"accept": False})  # an open dialog would block the page
        elif method == "Page.loadEventFired":
            self._loaded = True

    # -- the page ------------------------------------------------------------------------------

    def open(self, target: str | Path) -> PageEvents:
        """Load a file (a path) or URL, wait for its load event and return the events recorded from
        the start of the navigation (reset at each ``open``)."""
        url = Path(target).resolve().as_uri() if isinstance(target, Path) or "://" not in target else target
        self.events, self._loaded = PageEvents(), False
        result = self._call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"{url}: {result['errorText']}")
        if not self._loaded:
            self._pump(lambda m: self._loaded, f"load event from {url}")
        self.evaluate("0")  # events the page sent before this reply have been recorded
        return self.events

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (a JSON value; awaited when a promise).
        An exception in it raises BrowserError (it is not one of the page's own exceptions)."""
        result = self._call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                  "awaitPromise": True})
        if "exceptionDetails" in result:
            d = result["exceptionDetails"]
            raise BrowserError(f"{expression[:80]!r} threw: "
                               + (d.get("exception", {}).get("description") or d.get("text", "?")))
        return result.get("result", {}).get("value")

    def rect(self, selector: str) -> Rect | None:
        """The first element matching ``selector``: its box relative to the viewport; None when absent."""
        box = self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
                            " const r = e.getBoundingClientRect();"
                            " return {x: r.x, y: r.y, width: r.width, height: r.height}; })()")
        return None if box is None else Rect(**box)

    def type_into(self, selector: str, text: str, index: int = 0) -> None:
        """Replace the text of the ``index``-th input matching ``selector`` with ``text`` as typing would:
        its value changes and it gets an ``input`` event (the page's listeners run before this returns)."""
        found = self.evaluate(f"(() => {{ const e = document.querySelectorAll({json.dumps(selector)})[{index:d}];"
                              f" if (!e) return false; e.focus(); e.value = {json.dumps(text)};"
                              " e.dispatchEvent(new Event('input', {bubbles: true})); return true; })()")
        if not found:
            raise BrowserError(f"no element {index} matches {selector!r}")

    def screenshot(self) -> bytes:
        """The viewport (``width`` x ``height`` CSS pixels at scale 1) as PNG bytes."""
        data = self._call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False})["data"]
        return base64.b64decode(data)


# -- PNG ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    """Decoded pixels: ``pixels[y, x]`` is (R, G, B) or (R, G, B, A), 8 bits each."""

    pixels: np.ndarray

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    def ink(self, box: tuple[int, int, int, int], background: Sequence[int] = (255, 255, 255),
            tolerance: int = 16) -> float:
        """The fraction of pixels in ``box`` (left, top, right, bottom) whose colour differs from
        ``background`` by more than ``tolerance`` in some channel (anti-aliasing stays background)."""
        left, top, right, bottom = box
        part = self.pixels[top:bottom, left:right, :3].astype(np.int16)
        if part.size == 0:
            return 0.0
        differs = (np.abs(part - np.asarray(background[:3], dtype=np.int16)) > tolerance).any(axis=2)
        return float(differs.mean())


def decode_png(data: bytes) -> Image:
    """Decode an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium's screenshots are); other kinds
    raise ValueError."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    pos, idat, header = 8, [], None
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("PNG without an IHDR chunk")
    width, height, depth, colour, _, _, interlace = header
    channels = {2: 3, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace:
        raise ValueError(f"unsupported PNG: bit depth {depth}, colour type {colour}, interlace {interlace}")
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    if len(raw) != height * (stride + 1):
        raise ValueError(f"PNG data is {len(raw)} bytes, expected {height * (stride + 1)}")
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.uint8)
    prior = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        out[y] = prior = _unfilter(int(rows[y, 0]), rows[y, 1:], prior, channels)
    return Image(out.reshape(height, width, channels))


def _unfilter(kind: int, line: np.ndarray, prior: np.ndarray, bpp: int) -> np.ndarray:
    if kind == 0:  # None
        return line.copy()
    if kind == 1:  # Sub: a running sum along the row, per channel, modulo 256
        return (np.cumsum(line.reshape(-1, bpp), axis=0, dtype=np.uint64) % 256).astype(np.uint8).reshape(-1)
    if kind == 2:  # Up
        return line + prior  # uint8 arithmetic wraps modulo 256
    if kind not in (3, 4):
        raise ValueError(f"PNG filter type {kind} is not defined")
    # Average and Paeth depend on the byte just decoded to the left: a plain loop.
    cur, up, raw = bytearray(len(line)), prior.tobytes(), line.tobytes()
    for i in range(len(raw)):
        a = cur[i - bpp] if i >= bpp else 0
        b = up[i]
        if kind == 3:
            cur[i] = (raw[i] + ((a + b) >> 1)) & 0xFF
        else:
            c = up[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            cur[i] = (raw[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
    return np.frombuffer(bytes(cur), dtype=np.uint8)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests._browser", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    shot = sub.add_parser("shot", help="write a PNG screenshot of an HTML file's first screen")
    shot.add_argument("page", type=Path)
    shot.add_argument("out", type=Path)
    shot.add_argument("--width", type=int, default=1280)
    shot.add_argument("--height", type=int, default=900)
    args = parser.parse_args(argv)
    if not args.page.is_file():
        parser.error(f"{args.page}: no such file")
    with Browser(width=args.width, height=args.height) as browser:
        events = browser.open(args.page)
        args.out.write_bytes(browser.screenshot())
    for problem in events.problems():
        print(f"warning: the page reported {problem}")
    print(f"wrote {args.out} ({args.width}x{args.height})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
