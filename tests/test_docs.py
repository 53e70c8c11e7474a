"""The documentation holds together: links reach their files and headings, every setting
is documented, and the README stays a front door.

Files only: no database, no network, no fixture."""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import AliasChoices, AliasPath

from backend.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", ROOT / "SECURITY.md", ROOT / "bench" / "RESULTS.md", *DOCS]
CONFIGURATION = ROOT / "docs" / "configuration.md"

# The settings table of the contract (the fixed interfaces, kept outside this repository).
# Those the app reads must be documented; the others belong to features not built yet.
CONTRACT_SETTINGS = (
    "DATABASE_URL",
    "MAIL_SERVER",
    "MAIL_PORT",
    "MAIL_FROM",
    "MAIL_FROM_NAME",
    "APP_BASE_URL",
    "SECRET_KEY",
    "REGISTER_RATE_LIMIT",
    "ENVIRONMENT",
    "MAIL_SEND_RATE",
    "SIGNIN_REQUIRES_VERIFIED_EMAIL",
    "SIGNIN_RATE_LIMIT",
    "PASSWORD_RESET_TOKEN_TTL",
    "PASSWORD_RESET_RATE_LIMIT",
    "JOB_RETENTION_DAYS",
    "JOB_FAILED_RETENTION_DAYS",
    "AUDIT_PERSONAL_DATA_DAYS",
    "REGISTRATION_ENUMERATION_SAFE",
    "METRICS_TOKEN",
    "ALLOWED_HOSTS",
    "OPS_PASSWORD",
)

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+).+?\1", re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def prose(text: str) -> str:
    """The text without code blocks and code spans, where a `[x](y)` is not a link."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text, lower-cased, without punctuation but `-`
    and `_`, spaces as `-`."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading's anchor, a repeated one also with GitHub's `-1`, `-2`... suffix."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for heading in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        base = slug(heading)
        count = seen.get(base, 0)
        found.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return found


def relative_links() -> Iterator[tuple[Path, str]]:
    for page in PAGES:
        for target in LINK.findall(prose(page.read_text(encoding="utf-8"))):
            if not re.match(r"(https?|mailto):", target):
                yield page, target


LINKS = sorted(set(relative_links()))


@pytest.mark.parametrize(
    ("page", "target"), LINKS, ids=[f"{p.relative_to(ROOT)}->{t}" for p, t in LINKS]
)
def test_a_relative_link_reaches_its_file_and_heading(page: Path, target: str) -> None:
    path, _, anchor = target.partition("#")
    file = (page.parent / path).resolve() if path else page
    assert file.exists(), f"{page.relative_to(ROOT)}: {target} points to no file"
    if anchor and file.suffix == ".md":
        assert anchor in anchors(file), f"{page.relative_to(ROOT)}: {target}: no such heading"


def env_names(name: str) -> list[str]:
    """The variables a field is read from: its name in upper case, or its aliases."""
    field = Settings.model_fields[name]
    alias = field.validation_alias or field.alias
    if alias is None:
        return [name.upper()]
    choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
    return [str(c.path[0] if isinstance(c, AliasPath) else c).upper() for c in choices]


SETTINGS = sorted({env for name in Settings.model_fields for env in env_names(name)})
CONTRACTED = sorted(name for name in CONTRACT_SETTINGS if name in SETTINGS)


def test_the_links_and_the_settings_are_found() -> None:
    assert DOCS and len(LINKS) > 50 and len(SETTINGS) > 40
    assert {"SECRET_KEY", "OPS_PASSWORD", "REGISTER_RATE_LIMIT"} <= set(CONTRACTED)


@pytest.mark.parametrize("name", SETTINGS)
def test_every_setting_is_in_the_configuration_page(name: str) -> None:
    assert f"`{name}`" in CONFIGURATION.read_text(encoding="utf-8"), f"{name} is not documented"


@pytest.mark.parametrize("name", CONTRACTED)
def test_every_contract_setting_the_app_reads_is_documented(name: str) -> None:
    assert f"`{name}`" in CONFIGURATION.read_text(encoding="utf-8"), f"{name} is not documented"


def test_the_readme_is_a_front_door() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines"
    # CI runs "the README's test command".
    assert any("make test" in line for line in lines)


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("How background work survives failures", "how-background-work-survives-failures"),
        ("`/docs` under its own policy", "docs-under-its-own-policy"),
        ("The dev inbox's headers", "the-dev-inboxs-headers"),
        ("Mail to [one](x.md) address", "mail-to-one-address"),
        ("Wake-ups across processes: NOTIFY", "wake-ups-across-processes-notify"),
    ],
)
def test_slugs_follow_github(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor
