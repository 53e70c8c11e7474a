"""What a registration looks like on the way in and on the way out (both faces share it)."""

import re
import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")


def _username_chars(value: str) -> str:
    if not USERNAME_PATTERN.fullmatch(value):
        raise ValueError("Use only letters, digits, '.', '_' and '-'")
    return value


Username = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=32),
    AfterValidator(_username_chars),
    # Documented for clients (and Schemathesis); checked by _username_chars, whose message
    # a person can act on, unlike a pattern's.
    Field(json_schema_extra={"pattern": USERNAME_PATTERN.pattern}),
]
Password = Annotated[str, Field(min_length=8, max_length=128)]
Email = Annotated[EmailStr, Field(max_length=254)]


class RegistrationIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"username": "ada", "email": "ada@example.com", "password": "correct horse"}
            ]
        }
    )

    username: Username
    email: Email
    password: Password


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    username: str
    email: str
    created_at: datetime
    email_verified_at: datetime | None


class ResendIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"email": "ada@example.com"}]})

    # Normalised as at registration, so the lookup finds the address as it was stored.
    email: Email


class ResendAccepted(BaseModel):
    detail: str


class PasswordForgotIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"email": "ada@example.com"}]})

    email: Email


class PasswordForgotAccepted(BaseModel):
    detail: str


class PasswordResetIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"token": "from-the-email", "password": "new horse"}]}
    )

    # The token from the link; a real one is 43 characters.
    token: Annotated[str, Field(min_length=1, max_length=256)]
    # The same rules as at registration.
    password: Password


class EmailChangeIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"email": "ada@new.example.com", "password": "correct horse"}]
        }
    )

    # The new address, normalised (IDNA, letter case of the domain) as at registration.
    email: Email
    # The current password; any length a password could have (a wrong one is a 401).
    password: Annotated[str, Field(min_length=1, max_length=128)]


class EmailChangeAccepted(BaseModel):
    detail: str
