"""The operator page in tests: its password, and reading its table and forms (the jobs to
show on it are seeded by `backend.devstack.sample_jobs`)."""

import re
from typing import Any

# At least 16 characters: outside development a shorter OPS_PASSWORD stops the app.
OPS_PASSWORD = "ops-password-for-the-test-suite"
OPS_AUTH = ("ops", OPS_PASSWORD)


def table_ids(html: str) -> list[int]:
    """The ids of every row of the job table, in its order."""
    return [int(found) for found in re.findall(r'<tr>\s*<td class="num">(\d+)</td>', html)]


def form_fields(html: str, action: str, **match: Any) -> dict[str, str]:
    """The hidden fields of the first form posting to `action` whose fields include `match`
    (a None in `match`: without that field, e.g. job_id=None for the filter's form)."""
    forms = re.findall(rf'<form method="post" action="{re.escape(action)}".*?</form>', html, re.S)
    for form in forms:
        fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form))
        if all(
            name not in fields if value is None else fields.get(name) == str(value)
            for name, value in match.items()
        ):
            return fields
    raise AssertionError(f"no form posting to {action} with {match}")
