"""The buy endpoint's body and the orders API's answers."""

from typing import Literal
from uuid import UUID

from ninja import Schema
from pydantic import BaseModel, ConfigDict, Field

from common.pagination import PageOut
from sales.schemas import DateTime


class BuyIn(BaseModel):
    # pydantic's BaseModel, not ninja's Schema: a Schema wraps each input in a DjangoGetter (to
    # read ORM objects, which only answers are), a third of ninja's cost on the buy endpoint.
    # Strict: "2", 1.5 and true are not quantities (invalid_quantity).
    model_config = ConfigDict(strict=True, populate_by_name=True)
    quantity: int = Field(1, ge=1, description="at most the sale's per_buyer_limit")
    pass_: str | None = Field(
        None,
        alias="pass",
        max_length=200,
        description="the waiting room's pass (GET /api/sales/{id}/room/me), for a sale that"
        " has a room",
    )


class BuyAccepted(Schema):
    order: UUID
    status: Literal["pending", "confirmed"] = Field(
        description="pending: poll GET /api/orders/{order}; confirmed: the row lock confirmed it"
    )


class OrderOut(Schema):
    order: UUID
    sale: int
    quantity: int
    status: Literal["pending", "confirmed", "failed"]
    reason: str | None = Field(None, description="why it failed (absent otherwise)")
    created_at: DateTime


class OrderPageOut(Schema):
    results: list[OrderOut]
    page: PageOut
