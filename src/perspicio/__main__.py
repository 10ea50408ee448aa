"""The ``perspicio`` command line: ``perspicio insights --demo [digits|text|multimodal]``,
``perspicio insights --result FILE``, ``perspicio explain ...``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one subcommand per tool."""
    parser = argparse.ArgumentParser(prog="perspicio", description="perspicio command line")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    insights = commands.add_parser(
        "insights", help="the interactive attribution explorer (web app)"
    )
    from perspicio.insights.example import add_arguments
    from perspicio.result.command import add_parser as add_explain

    add_arguments(insights)
    insights.add_argument(
        "--result",
        metavar="FILE",
        help="show a result file written by 'perspicio explain' (read-only, no model needed)",
    )
    add_explain(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "insights":
        if args.demo and args.result:
            parser.error("insights: give --demo or --result, not both")
        if args.result:
            from perspicio.insights.viewer import serve_result

            return serve_result(
                args.result, args.port, args.bind_all, args.debug, "perspicio insights"
            )
        if not args.demo:
            parser.error(
                "insights: give --demo, or --result FILE to show a saved result; for your own "
                "model build an AttributionVisualizer in Python and call .serve()"
            )
        from perspicio.insights.example import serve_demo

        return serve_demo(args, "perspicio insights")
    if args.command == "explain":
        from perspicio._core.validate import ArgumentError
        from perspicio.result.command import run

        try:
            return run(args)
        except ArgumentError as e:
            parser.exit(2, f"perspicio explain: {e}\n")
    parser.print_help()
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
