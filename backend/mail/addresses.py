"""Addresses as SMTP needs them.

Domains go to ASCII with IDNA 2008 (the `idna` package, UTS #46 non-transitional):
Python's own "idna" codec is IDNA 2003, which maps `straße.de` to `strasse.de`, a
different domain. A non-ASCII local part can only travel over SMTPUTF8 (RFC 6531).
"""

import contextlib
import unicodedata

import idna


class UndeliverableAddress(ValueError):
    """No relay we are configured for could ever deliver to this address."""


def smtp_address(address: str) -> str:
    """The address with its domain in ASCII: `bücher.example` → `xn--bcher-kva.example`."""
    local, _, domain = address.rpartition("@")
    if domain.isascii():
        return address
    try:
        return f"{local}@{idna.encode(domain, uts46=True).decode('ascii')}"
    except idna.IDNAError as exc:
        raise UndeliverableAddress(f"the domain {domain!r} is not a valid IDNA 2008 name") from exc


# Scripts a label may combine (UTS #39 "highly restrictive", which Chrome and Firefox
# apply before they show a domain in Unicode): Japanese, Chinese and Korean writing mix
# Han with their own scripts and Latin. Any other mix is refused.
_ALLOWED_MIXES = (
    frozenset({"LATIN", "CJK", "HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA"}),
    frozenset({"LATIN", "CJK", "BOPOMOFO"}),
    frozenset({"LATIN", "CJK", "HANGUL"}),
)


def _scripts(label: str) -> set[str]:
    """The scripts of a label's letters, from their Unicode names (`CYRILLIC SMALL LETTER
    IE`): the standard library has no script property, and names start with the script."""
    return {unicodedata.name(char, "?").split()[0] for char in label if char.isalpha()}


def mixed_script_label(domain: str) -> str | None:
    """The first label of `domain` whose letters mix scripts (`example` spelled with a
    Cyrillic e and x among the Latin letters): a lookalike of another domain, which a
    browser would show as punycode. None when every label is of one script (or an
    allowed mix)."""
    for label in unicodedata.normalize("NFC", domain).split("."):
        if label.lower().startswith("xn--"):
            # Typed as punycode, checked as the Unicode it stands for.
            with contextlib.suppress(idna.IDNAError, UnicodeError):
                label = idna.decode(label)
        scripts = _scripts(label)
        if len(scripts) > 1 and not any(scripts <= mix for mix in _ALLOWED_MIXES):
            return label
    return None


def check_deliverable(address: str, *, smtputf8: bool) -> None:
    """Raise UndeliverableAddress when no message to `address` could be sent, or when its
    domain is a lookalike (a label mixing scripts, as phishing domains do)."""
    if label := mixed_script_label(address.rpartition("@")[2]):
        raise UndeliverableAddress(
            f"the domain label {label!r} mixes letters of different alphabets"
        )
    local = smtp_address(address).rpartition("@")[0]
    if not local.isascii() and not smtputf8:
        raise UndeliverableAddress(
            "the mail server cannot deliver to addresses with non-ASCII characters "
            "before the @ (it lacks SMTPUTF8)"
        )


def is_tagged(address: str) -> bool:
    """Whether the address carries a `+tag` (`ada+news@…`): another spelling of a mailbox
    that has one without it (see `mailbox_key`)."""
    local = address.rpartition("@")[0]
    return "+" in local.lstrip("+")


def mailbox_key(address: str) -> str:
    """One spelling per mailbox, for counting what it is sent: `Ada@Bücher.Example`,
    `ada+news@bücher.example` and `ada@xn--bcher-kva.example` are the same. The local part
    is lower-cased: it is case-sensitive in theory only, and users.email is unique
    regardless of case. A `+tag` is cut off: Gmail, Outlook, Fastmail, iCloud and Postfix
    (recipient_delimiter) all deliver `ada+anything@` to `ada@`, so without the cut
    `ada+1@` … `ada+9@` would be nine budgets for one mailbox."""
    local, _, domain = unicodedata.normalize("NFC", address.strip()).rpartition("@")
    # "+ada@": nothing before the delimiter, so no mailbox to fold it into.
    local = local.split("+", 1)[0] or local
    # Not a valid IDNA name: no mail will reach it, but asking for one still counts.
    with contextlib.suppress(idna.IDNAError):
        domain = idna.encode(domain, uts46=True).decode("ascii")
    return f"{local.lower()}@{domain.lower()}"
