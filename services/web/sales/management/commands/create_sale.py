import json

from django.core.management.base import BaseCommand, CommandError

from sales import selectors, services


class Command(BaseCommand):
    help = "Create a sale (and its product) and print it as JSON."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--stock", type=int, required=True)
        parser.add_argument("--starts-in", type=int, default=0, help="seconds from now")
        parser.add_argument("--duration", type=int, default=3600, help="seconds")
        parser.add_argument("--per-buyer-limit", type=int, default=1)

    def handle(self, *args, **opts):
        try:
            sale = services.sale_create(
                name=opts["name"],
                stock=opts["stock"],
                starts_in=opts["starts_in"],
                duration=opts["duration"],
                per_buyer_limit=opts["per_buyer_limit"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(selectors.sale_payload(sale)))
