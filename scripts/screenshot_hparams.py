"""Screenshots for docs/reports.md: TensorBoard's HParams view of a study (the live Time Series is
scripts/screenshot_tensorboard.py's, index.html scripts/screenshots.py's),
taken with headless Chromium driven over the DevTools protocol on a pipe (no extra packages).

    .venv/bin/python scripts/screenshot_hparams.py STUDY_DIR [OUT_DIR=docs/img]

Needs `chromium` on PATH. Starts TensorBoard on 127.0.0.1 on a free port and stops it after.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _tensorboard_server import start_tensorboard

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--hide-scrollbars",
]

# Finds an element by its visible text through every shadow root (TensorBoard's HParams is Polymer).
_DEEP_FIND = """
(function (text) {
  function walk(root) {
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) { const hit = walk(el.shadowRoot); if (hit) return hit; }
      if (el.children.length === 0 && el.textContent.trim().toUpperCase() === text) return el;
    }
    return null;
  }
  const el = walk(document);
  if (el) { el.click(); return true; }
  return false;
})(%s)
"""


class Browser:
    """Headless Chromium driven over --remote-debugging-pipe (fd 3 in, fd 4 out; messages end in NUL)."""

    def __init__(self, width: int = 1800, height: int = 1000):
        exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
        if exe is None:
            raise RuntimeError("chromium is not installed (apt-get install -y chromium)")
        self.profile = tempfile.mkdtemp(prefix="tt-chromium-")
        to_child_r, self._w = os.pipe()
        self._r, from_child_w = os.pipe()
        os.set_inheritable(to_child_r, True)
        os.set_inheritable(from_child_w, True)

        def fds():  # the child's fd 3 reads our commands, fd 4 writes its replies
            a, b = os.dup(to_child_r), os.dup(from_child_w)  # out of the way of 3 and 4 first
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [
                exe,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            preexec_fn=fds,
            pass_fds=(3, 4, to_child_r, from_child_w),  # kept open past preexec_fn
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._id, self._buf = 0, b""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable", session=True)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            session=True,
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def call(self, method: str, session: bool = False, timeout: float = 60, **params):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buf += chunk
        raise TimeoutError(method)

    def goto(self, url: str, settle: float = 6.0) -> None:
        self.call("Page.navigate", session=True, url=url)
        time.sleep(settle)  # TensorBoard fetches its data after load; let the charts draw

    def evaluate(self, js: str):
        return self.call("Runtime.evaluate", session=True, expression=js, returnByValue=True)["result"].get(
            "value"
        )

    def click_text(self, text: str, settle: float = 3.0) -> bool:
        ok = bool(self.evaluate(_DEEP_FIND % json.dumps(text.upper())))
        time.sleep(settle)
        return ok

    def screenshot(self, path: Path, full_page: bool = False) -> None:
        params = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            size = self.call("Page.getLayoutMetrics", session=True)["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        data = self.call("Page.captureScreenshot", session=True, **params)["data"]
        Path(path).write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._w)
        os.close(self._r)
        shutil.rmtree(self.profile, ignore_errors=True)


def main(study: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tb, url = start_tensorboard(study / "tb")
    browser = Browser()
    try:
        browser.goto(f"{url}/#hparams", settle=6)
        browser.screenshot(out / "tb_hparams_table.png")
        browser.click_text("Parallel Coordinates View", settle=4)
        browser.screenshot(out / "tb_hparams_parallel.png")
    finally:
        browser.close()
        tb.terminate()
        tb.wait(timeout=10)


if __name__ == "__main__":
    DOCS_IMG = Path(__file__).resolve().parents[1] / "docs" / "img"
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else DOCS_IMG)
