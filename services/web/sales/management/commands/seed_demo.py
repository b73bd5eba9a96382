import random
import sys
from decimal import Decimal

from django.core.management.base import BaseCommand
from tqdm import tqdm

from sales import services
from sales.models import Product

ADJECTIVES = ["Swift", "Quiet", "Bright", "Tiny", "Grand", "Bold", "Calm", "Neat"]
NOUNS = ["Kettle", "Lamp", "Backpack", "Headphones", "Watch", "Blender", "Camera", "Scooter"]


class Command(BaseCommand):
    help = "Fill a demo catalogue: products and sales spread over past, current and future windows."

    def add_arguments(self, parser):
        parser.add_argument("--sales", type=int, default=50)
        parser.add_argument("--seed", type=int, default=1, help="random seed, for repeatable demos")

    def handle(self, *args, **opts):
        rng = random.Random(opts["seed"])
        for _ in tqdm(
            range(opts["sales"]), desc="sales", file=sys.stderr, disable=opts["verbosity"] == 0
        ):
            name = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}"
            product = Product.objects.create(
                name=name, price=Decimal(rng.randrange(500, 50000)) / 100
            )
            services.sale_create(
                name=f"{name} flash sale",
                product=product,
                stock=rng.choice([10, 50, 100, 500]),
                starts_in=rng.randrange(-3600, 7200),
                duration=rng.choice([600, 3600, 86400]),
            )
        self.stdout.write(self.style.SUCCESS(f"Created {opts['sales']} sales."))
