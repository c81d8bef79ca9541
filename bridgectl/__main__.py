"""martech-bridge: operator commands. `python -m bridgectl --help`."""

import argparse
import json
import sys

from bridgectl import resources


def _resources(args: argparse.Namespace) -> resources.StackResources:
    if args.stack_name:
        return resources.from_stack(args.stack_name)
    return resources.local(args.endpoint_url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="martech-bridge", description="Operate a Martech Bridge stack.")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--stack-name", help="a deployed stack (uses your AWS credentials)")
    where.add_argument("--endpoint-url", help="the embedded AWS of a local stack (default: the running `make run`)")
    sub = parser.add_subparsers(dest="command", required=True)

    rd = sub.add_parser("redrive", help="queue the deliveries in the DLQ again")
    rd.add_argument("--route", help="only deliveries of this route")
    rd.add_argument("--delivery-id", action="append", help="only these deliveries (repeatable)")
    rd.add_argument(
        "--attempts",
        type=int,
        default=None,
        help="attempts allowed after the redrive (default: the route's max_attempts)",
    )
    rd.add_argument("--dry-run", action="store_true", help="show what would be redriven, change nothing")
    rd.add_argument(
        "--include-outcome-unknown",
        action="store_true",
        help="also resend deliveries whose first call may have reached the target (check it first)",
    )

    show = sub.add_parser("delivery", help="show one delivery and its attempts")
    show.add_argument("delivery_id")

    found = sub.add_parser("find", help="a delivery or message by any id (ours or a provider's)")
    found.add_argument("id")

    subs = sub.add_parser("subscription", help="a recipient's subscription state and history")
    subs.add_argument("email")

    logs = sub.add_parser("logs", help="export message logs for a time range")
    logs.add_argument("--since", required=True, help="ISO 8601, e.g. 2026-11-22T00:00:00Z")
    logs.add_argument("--until", help="ISO 8601 (default: now)")
    logs.add_argument("--to", help="only this recipient")
    logs.add_argument("--format", choices=["csv", "json"], default="csv")

    setup = sub.add_parser("setup", help="list a stage's secrets and create the missing ones")
    setup.add_argument("--config-env", required=True, help="the samconfig.toml environment (dev, prod)")
    setup.add_argument("--check", action="store_true", help="only list; exit 1 if any is missing")
    setup.add_argument("--print-stage", action="store_true", help="print the environment's Stage and exit")
    setup.add_argument("--before-delete", action="store_true", help="empty the payload bucket, say what stays")

    args = parser.parse_args(argv)
    if args.command == "setup":
        from bridgectl import setup as setup_module

        if args.print_stage:
            print(setup_module.plan(args.config_env).stage)
            return 0
        if args.before_delete:
            return setup_module.before_delete(args.config_env)
        return setup_module.run(args.config_env, check_only=args.check)
    stack = _resources(args)
    if args.command == "redrive":
        from bridgectl.redrive import redrive

        summary = redrive(
            stack,
            route=args.route,
            delivery_ids=set(args.delivery_id or []) or None,
            attempts=args.attempts,
            dry_run=args.dry_run,
            include_outcome_unknown=args.include_outcome_unknown,
        )
        print(summary.render())
        return 1 if summary.counts["error"] else 0
    if args.command in ("find", "subscription", "logs"):
        from bridgectl import lookups

        if args.command == "logs":
            from datetime import UTC, datetime

            from martech_bridge.logic.event_parsing import iso

            until = iso(args.until) if args.until else datetime.now(UTC)
            print(lookups.export_logs(stack, since=iso(args.since), until=until, to=args.to, fmt=args.format), end="")
            return 0
        found_item = lookups.find(stack, args.id) if args.command == "find" else lookups.subscription(stack, args.email)
        if found_item is None:
            print("Not found", file=sys.stderr)
            return 1
        print(json.dumps(found_item, ensure_ascii=False, indent=2, default=str))
        return 0
    if args.command == "delivery":
        stack.apply_to_environment()
        from martech_bridge.adapters.delivery_store import DeliveryStore

        delivery = DeliveryStore(stack.deliveries_table, 30).get(args.delivery_id)
        if delivery is None:
            print(f"No delivery {args.delivery_id}", file=sys.stderr)
            return 1
        print(json.dumps(delivery.public(), ensure_ascii=False, indent=2))
        return 0
    return 2


def run() -> int:
    """main(), quiet when the reader of its output goes away (`bridgectl logs ... | head`)."""
    import os

    try:
        code = main()
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # Python would report the pipe again when flushing stdout at exit: point stdout at nothing first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # what a shell reports for a process ended by SIGPIPE


if __name__ == "__main__":
    sys.exit(run())
