"""Command line: ``daisybot run | playground | simulator``."""

from __future__ import annotations

import sys

USAGE = """usage: daisybot {run,playground,simulator} [options]

  run         run the Telegram bot (settings from the environment / .env)
  playground  the whole bot locally in a browser: simulator + fake Telegram + bot
  simulator   a local DaisySim API simulator
  healthcheck exit 0 if the running bot's /healthz answers (for Docker's HEALTHCHECK)

'daisybot COMMAND --help' shows a command's options.
"""


# The wheel and the Docker image leave the test stand-ins (bot/sandbox) out.
SANDBOX_MISSING = (
    "daisybot {command}: the sandbox (bot/sandbox) is not in this install (the wheel and "
    "the Docker image leave it out); in a source checkout run: python3 -m venv .venv && "
    ".venv/bin/pip install -e . && .venv/bin/daisybot {command}"
)


def _sandbox_main(command: str, rest: list[str]) -> int:
    try:
        if command == "playground":
            from bot.sandbox.playground_cli import main as sandbox_main
        else:
            from bot.sandbox.simulator import main as sandbox_main
    except ModuleNotFoundError as exc:
        if exc.name != "bot.sandbox":
            raise
        print(SANDBOX_MISSING.format(command=command), file=sys.stderr)
        return 2
    return sandbox_main(rest)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "run":
        from bot.runner import main as run_main

        return run_main(rest)
    if command in ("playground", "simulator"):
        return _sandbox_main(command, rest)
    if command == "healthcheck":
        from bot.health import healthcheck_main

        return healthcheck_main(rest)
    print(f"unknown command: {command}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
