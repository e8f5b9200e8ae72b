"""Run the whole test suite: ``python -m tests [pytest args]``.

This is the README's test command (and what ``.ci/run`` runs). It makes sure the
one system package the browser test needs (Debian's ``chromium``) is present,
installing it with apt when running as root, then runs pytest on both cores.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys


def _ensure_chromium() -> None:
    if shutil.which("chromium") or os.environ.get("DAISYBOT_SKIP_BROWSER"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print("tests: chromium not found and cannot apt-get it; the browser test will skip")
        return
    print("tests: installing Debian's chromium for the browser test (apt-get)...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    quiet = {"stdout": subprocess.DEVNULL, "env": env, "check": False}
    subprocess.run(["apt-get", "update", "-qq"], **quiet)  # type: ignore[call-overload]
    subprocess.run(  # type: ignore[call-overload]
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"], **quiet
    )
    if not shutil.which("chromium"):
        print("tests: chromium install failed; the browser test will skip")


def main(argv: list[str]) -> int:
    _ensure_chromium()
    args = ["-n", "2", "-q", *argv] if "-n" not in argv else ["-q", *argv]
    code = subprocess.call([sys.executable, "-m", "pytest", *args])
    if code == 5:
        print("tests: pytest collected no tests (exit 5)")
        return 0
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
