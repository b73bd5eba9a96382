import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from orders.invariants import check_sale
from sales.models import Sale


class Command(BaseCommand):
    help = (
        "Check a sale's invariants (no oversell, one order per buyer, every 202 an order, "
        "Redis agrees with Postgres); print the report as JSON, exit 1 on a violation."
    )

    def add_arguments(self, parser):
        parser.add_argument("--sale", type=int, required=True)
        parser.add_argument(
            "--accepted",
            metavar="-|FILE",
            help="a JSON list of the order tokens answered 202 ('-': standard input)",
        )
        parser.add_argument(
            "--no-drain",
            dest="expect_drained",
            action="store_false",
            help="orders may still be pending",
        )

    def handle(self, *args, **opts):
        accepted = None
        if opts["accepted"]:
            source = opts["accepted"]
            text = sys.stdin.read() if source == "-" else Path(source).read_text()
            try:
                accepted = json.loads(text)
            except ValueError as exc:
                raise CommandError(f"--accepted: not JSON: {exc}") from exc
            if not isinstance(accepted, list):
                raise CommandError("--accepted: expected a JSON list of tokens")
        try:
            report = check_sale(opts["sale"], accepted, expect_drained=opts["expect_drained"])
        except Sale.DoesNotExist:
            raise CommandError(f"no sale {opts['sale']}") from None
        self.stdout.write(json.dumps(report.as_dict()))
        if report.violations:
            raise CommandError("; ".join(report.violations), returncode=1)
