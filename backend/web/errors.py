"""Turning validation errors into messages a person can act on."""

from pydantic import ValidationError

_MESSAGES = {
    "string_too_short": "Must be at least {min_length} characters",
    "string_too_long": "Must be at most {max_length} characters",
    "missing": "This field is required",
}


def field_messages(exc: ValidationError) -> dict[str, str]:
    """The first problem of each field, keyed by field name."""
    messages: dict[str, str] = {}
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "form"
        if field in messages:
            continue
        template = _MESSAGES.get(error["type"])
        if template is not None:
            messages[field] = template.format(**error.get("ctx", {}))
        elif field == "email":
            messages[field] = "Enter a valid email address, like name@example.com"
        else:
            messages[field] = error["msg"].removeprefix("Value error, ")
    return messages
