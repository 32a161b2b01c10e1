"""Screenshot `ccx-tui web` in headless Chromium: python tools/web_screenshot.py [OUT.png]."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's ccx_tui and tests, installed or not

from ccx_tui.engine.server.daemon_client import stop_engine  # noqa: E402
from tests.browser import WebProcess, chrome, closing, type_keys, wait_screen  # noqa: E402

SIZE = (1200, 700)
# Demo sessions: the same output on every run (no clocks, no pids).
CONFIG = """
[[session]]
name = "build"
command = '''
for step in "resolving dependencies" "compiling ccx_tui (42 modules)" "linking" \\
    "writing dist/ccx_tui-0.1.0-py3-none-any.whl"; do
  echo "  $step"
done
echo "build finished: 1 artefact, 0 warnings"
sleep 600
'''

[[session]]
name = "loadtest"
command = '''
i=0
while [ $i -lt 40 ]; do
  i=$((i + 1))
  echo "batch $i: 50 requests, p50 $((11 + i % 5))ms, p99 $((40 + i % 13))ms, 0 errors"
done
sleep 600
'''

[[session]]
name = "tests"
command = "printf 'collected 212 items\\n\\n212 passed in 41.3s\\n'; sleep 600"
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", nargs="?", default=str(ROOT / "screenshots" / "web.png"))
    out = Path(parser.parse_args().out)
    with tempfile.TemporaryDirectory(prefix="ccx-web-shot-") as tmp:
        base = Path(tmp)
        home = base / "home"
        home.mkdir()
        config = base / "ccx.toml"
        config.write_text(CONFIG)
        data_dir = base / "data"
        server = WebProcess(["--data-dir", str(data_dir), "--config", str(config)], home)
        try:
            with closing(chrome(*SIZE)) as driver:
                driver.get(server.login_url())
                wait_screen(driver, "build finished", timeout=30)  # the first tab
                type_keys(driver, "2")  # the loadtest tab
                wait_screen(driver, "batch 40:")
                out.parent.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(out))
        finally:
            server.stop()
            stop_engine(data_dir)  # the sessions live on in the engine: end them too
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
