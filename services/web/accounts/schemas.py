"""The auth API's bodies. Strict: a phone or a code given as a number is a wrong_type, not a
string pydantic made up."""

from ninja import Schema
from pydantic import BaseModel, ConfigDict, Field


# Bodies are pydantic's BaseModel, not ninja's Schema (orders/schemas.py BuyIn says why).
class PhoneIn(BaseModel):
    model_config = ConfigDict(strict=True)
    phone: str = Field(examples=["+12015550123"])


class LoginIn(BaseModel):
    model_config = ConfigDict(strict=True)
    phone: str = Field(examples=["+12015550123"])
    code: str = Field(examples=["123456"])


class CsrfOut(Schema):
    csrf_token: str = Field(description="send it back in the X-CSRFToken header")


class CodeSentOut(Schema):
    sent: bool
    expires_in: int = Field(description="seconds the code stays valid (SMS_CODE_TTL)")


class UserOut(Schema):
    id: int
    phone: str


class UserAnswer(Schema):
    user: UserOut
