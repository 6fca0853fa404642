"""``oaicompat servers up|down|status|env``.

``up`` prints shell lines on stdout for the caller to eval (the key and the URLs); every other
message goes to stderr::

    eval "$(oaicompat servers up)"
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Mapping

from ..errors import OaicompatError
from . import manager, paths
from .specs import KEY_ENV, SPECS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oaicompat servers",
        description="Install, start and stop the real local OpenAI-compatible servers "
        f"({', '.join(SPECS)}); cache: {paths.cache_root()}",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser(
        "up",
        help="install if needed and start servers (by default llama-server, llama-cpp-python, vllm and litellm; "
        "transformers-serve, which wants the machine to itself, the capable-model servers and the vision servers "
        "(random weights) start by name); "
        "prints eval-able exports on stdout",
    )
    p_up.add_argument("names", nargs="*", metavar="NAME", help=f"servers: {', '.join(SPECS)}")
    p_up.add_argument("--install-only", action="store_true",
                      help="install into the cache (all servers when none is named), start nothing")
    p_down = sub.add_parser("down", help="stop servers recorded in run/servers.json (all by default)")
    p_down.add_argument("names", nargs="*", metavar="NAME")
    sub.add_parser("status", help="list the running servers")
    sub.add_parser("env", help="print exports of the running servers' URLs (not the key)")
    return parser


def export_lines(state: Mapping[str, manager.RunningServer], key: str | None = None) -> list[str]:
    """``export …`` lines: the key (when given) and one URL variable per running server."""
    lines = [f"export {KEY_ENV}={shlex.quote(key)}"] if key else []
    lines += [
        f"export {line.split('=', 1)[0]}={shlex.quote(line.split('=', 1)[1])}"
        for line in manager.env_lines(state)
    ]
    return lines


def _check_names(names: list[str]) -> None:
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        raise SystemExit(f"unknown server(s): {', '.join(unknown)}; known: {', '.join(SPECS)}")


def _status_table(state: Mapping[str, manager.RunningServer]) -> str:
    if not state:
        return "no servers running"
    rows = [("NAME", "PID", "PORT", "RSS_MB", "READY_S", "VERSION", "URL", "LOG")]
    for name, s in state.items():
        rows.append(
            (
                name,
                str(s.pid),
                str(s.port),
                f"{manager.rss_kib(s) / 1024:.0f}",
                "-" if s.ready_seconds is None else f"{s.ready_seconds:.1f}",
                s.version,
                s.base_url,
                s.log,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "up":
            _check_names(args.names)
            if args.install_only:
                started = time.monotonic()
                manager.install(args.names or None)
                print(
                    f"installed in {time.monotonic() - started:.0f} s (cache: {paths.cache_root()})",
                    file=sys.stderr,
                )
                return 0
            key = manager.resolve_key(manager.status())
            try:
                state = manager.up(args.names or None, key=key)
            except manager.ServersUpError as exc:
                print("\n".join(export_lines(exc.started, key)))
                print(f"error: {exc}", file=sys.stderr)
                return 1
            print("\n".join(export_lines(state, key)))
            print(f"# {len(state)} server(s) running; state: {paths.state_file()}", file=sys.stderr)
            return 0
        if args.command == "down":
            _check_names(args.names)
            stopped = manager.down(args.names or None)
            print(f"stopped: {', '.join(stopped) or '(nothing recorded)'}", file=sys.stderr)
            return 0
        if args.command == "status":
            print(_status_table(manager.status()))
            return 0
        if args.command == "env":
            lines = export_lines(manager.status())
            if lines:
                print("\n".join(lines))
            return 0
    except OaicompatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
