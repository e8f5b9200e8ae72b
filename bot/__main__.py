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


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "run":
        from bot.runner import main as run_main

        return run_main(rest)
    if command == "playground":
        from bot.sandbox.playground import main as playground_main

        return playground_main(rest)
    if command == "simulator":
        from bot.sandbox.simulator import main as simulator_main

        return simulator_main(rest)
    if command == "healthcheck":
        from bot.health import healthcheck_main

        return healthcheck_main(rest)
    print(f"unknown command: {command}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
