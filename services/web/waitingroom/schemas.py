"""The waiting room's answers."""

from typing import Literal

from ninja import Schema
from pydantic import Field

from sales.schemas import DateTime


class RoomOut(Schema):
    sale: int
    state: Literal["not_open", "drawing", "admitting", "sold_out", "ended"] = Field(
        description="drawing: open, and everyone in it is put in a random order at draws_at;"
        " admitting: letting places in, in order, at `rate` a second"
    )
    opens_at: DateTime
    draws_at: DateTime
    ends_at: DateTime
    admitted: int = Field(description="places let in so far: place <= admitted is in")
    admitted_key: float | None = Field(
        None,
        description="the place key of the last place let in: a buyer whose place_key is at most"
        " this is in (then GET room/me for the pass); null before the first",
    )
    waiting: int = Field(description="places not let in yet")
    rate: int = Field(description="places let in per second, at most")
    stock_left: int = Field(description="items not reserved yet")
    server_time: DateTime


class PlaceOut(Schema):
    state: Literal[
        "out", "not_open", "drawing", "waiting", "admitted", "passed", "sold_out", "ended"
    ] = Field(
        description="out: not in the room (POST to join); drawing: in, places drawn at"
        " draws_at; waiting: `ahead` places before this one; admitted: buy with `pass` before"
        " pass_expires_at; passed: admitted before, the pass spent or expired; sold_out:"
        " nothing left to wait for"
    )
    place: int | None = Field(None, description="1-based, from draws_at on")
    place_key: float | None = Field(
        None,
        description="this place's key, never changed: the places are the keys' order (a random"
        " number in [0, 1) joining before the draw, 1 + arrival number after it); compare it"
        " with the room's admitted_key to know when it is in",
    )
    ahead: int | None = Field(None, description="places still to be let in before this one")
    wait_seconds: int | None = Field(None, description="an estimate at the room's rate")
    pass_: str | None = Field(
        None, alias="pass", description="POST it with the buy (body field `pass`)"
    )
    pass_expires_at: DateTime | None = None
    draws_at: DateTime
    server_time: DateTime
