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
        parser.add_argument(
            "--waiting-room", action="store_true", help="buyers wait in a room for a pass"
        )
        parser.add_argument("--admission-rate", type=int, help="buyers the room lets in a second")

    def handle(self, *args, **opts):
        try:
            sale = services.sale_create(
                name=opts["name"],
                stock=opts["stock"],
                starts_in=opts["starts_in"],
                duration=opts["duration"],
                per_buyer_limit=opts["per_buyer_limit"],
                waiting_room=opts["waiting_room"],
                admission_rate=opts["admission_rate"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(selectors.sale_payload(sale)))
