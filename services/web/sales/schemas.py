"""The sales API's answers. Timestamps stay the strings sale_payload writes (isoformat, with
microseconds and +00:00), documented as date-time."""

from typing import Annotated, Literal

from ninja import Schema
from pydantic import Field, WithJsonSchema

from common.pagination import PageOut

DateTime = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


class ProductOut(Schema):
    id: int
    name: str
    price: str  # a decimal, as a string: no float rounding


class SaleOut(Schema):
    id: int
    name: str
    product: ProductOut
    starts_at: DateTime
    ends_at: DateTime
    stock: int
    remaining: int
    per_buyer_limit: int
    waiting_room: bool = Field(
        description="buyers wait in the sale's room (GET /api/sales/{id}/room) for a pass"
    )
    state: Literal["upcoming", "open", "sold_out", "ended"]
    url: str


class SaleDetailOut(SaleOut):
    server_time: DateTime = Field(
        description="the server's clock when it answered: count down to starts_at from it"
    )


class SalePageOut(Schema):
    results: list[SaleOut]
    page: PageOut
