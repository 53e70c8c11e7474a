"""The Docker image as its files describe it, read without Docker: the Dockerfile's stages
and instructions, the build context that .dockerignore lets through, and so the files
that land in the image."""

import json
import os
import posixpath
import re
import shlex
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


def exec_form(arguments: str) -> list[str]:
    parsed = json.loads(arguments)
    assert isinstance(parsed, list), f"expected the JSON (exec) form, got {arguments!r}"
    return [str(part) for part in parsed]


def flags(arguments: str) -> dict[str, str]:
    """An instruction's `--name=value` options (COPY --from=builder, FROM --platform=...)."""
    found: dict[str, str] = {}
    for word in shlex.split(arguments):
        if word.startswith("--"):
            name, _, value = word[2:].partition("=")
            found[name] = value
    return found


def strip_flags(arguments: str) -> list[str]:
    return [word for word in shlex.split(arguments) if not word.startswith("--")]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "Dockerfile ends in a line continuation"
    return instructions


@dataclass(frozen=True)
class Copy:
    """One source of a COPY: where it comes from (a stage, or the build context if None),
    and the absolute path it lands at (for a directory: the directory)."""

    stage: str | None
    source: str
    target: str


@dataclass(frozen=True)
class Stage:
    base: str
    name: str | None
    instructions: tuple[tuple[str, str], ...]

    def args(self, keyword: str) -> list[str]:
        return [arguments for name, arguments in self.instructions if name == keyword]

    def index(self, keyword: str, contains: str) -> int:
        """Where the first `keyword` instruction whose arguments contain `contains` is."""
        for position, (name, arguments) in enumerate(self.instructions):
            if name == keyword and contains in arguments:
                return position
        raise AssertionError(f"no {keyword} with {contains!r} in stage {self.name or self.base}")

    def workdir(self) -> str:
        path = "/"
        for directory in self.args("WORKDIR"):
            path = posixpath.normpath(posixpath.join(path, directory))
        return path

    def copies(self) -> list[Copy]:
        base = self.workdir()
        found: list[Copy] = []
        for arguments in self.args("COPY"):
            origin = flags(arguments).get("from") or None
            rest = re.sub(r"^(?:--\S+\s+)*", "", arguments)
            words = exec_form(rest) if rest.startswith("[") else shlex.split(rest)
            *sources, destination = words
            into_directory = destination.endswith("/") or destination == "." or len(sources) > 1
            target = posixpath.normpath(posixpath.join(base, destination))
            for source in sources:
                name = source.rstrip("/")
                # COPY copies a directory's *contents*: the destination is the directory.
                is_directory = origin is not None or (ROOT / name).is_dir()
                landing = target
                if into_directory and not is_directory:
                    landing = posixpath.join(target, posixpath.basename(name))
                found.append(Copy(origin, name, landing))
        return found

    def context_copies(self) -> dict[str, str]:
        """What this stage copies from the build context: source -> where it lands."""
        return {copy.source: copy.target for copy in self.copies() if copy.stage is None}


def dockerfile_stages() -> list[Stage]:
    stages: list[Stage] = []
    current: list[tuple[str, str]] = []
    header: tuple[str, str | None] | None = None
    for keyword, arguments in dockerfile_instructions():
        if keyword == "FROM":
            if header is not None:
                stages.append(Stage(header[0], header[1], tuple(current)))
            words = strip_flags(arguments)
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            header, current = (words[0], name), []
        else:
            assert header is not None, f"{keyword} before the first FROM"
            current.append((keyword, arguments))
    assert header is not None, "the Dockerfile has no FROM"
    stages.append(Stage(header[0], header[1], tuple(current)))
    return stages


def final_stage() -> Stage:
    return dockerfile_stages()[-1]


# --- .dockerignore ---------------------------------------------------------------------


def dockerignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax: `*` and `?` stay within one path element, `**` crosses them."""
    out = ""
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out, index = out + "(?:.*/)?", index + 3
        elif pattern.startswith("**", index):
            out, index = out + ".*", index + 2
        elif pattern[index] == "*":
            out, index = out + "[^/]*", index + 1
        elif pattern[index] == "?":
            out, index = out + "[^/]", index + 1
        else:
            out, index = out + re.escape(pattern[index]), index + 1
    return re.compile(out)


@cache
def _rules() -> tuple[tuple[bool, re.Pattern[str], str], ...]:
    rules = []
    for line in dockerignore_patterns():
        negated = line.startswith("!")
        cleaned = posixpath.normpath(line.lstrip("!").strip().lstrip("/"))
        rules.append((negated, _pattern_regex(cleaned), cleaned))
    return tuple(rules)


def dockerignored(path: str) -> bool:
    """Whether the build context leaves `path` out, as Docker decides it: a pattern that
    matches the path or one of its parent directories applies, and the last one wins."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: end + 1]) for end in range(len(parts))]
    excluded = False
    for negated, regex, _ in _rules():
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def _may_let_back_in(directory: str) -> bool:
    """Whether an exception (`!pattern`) could let back in something below `directory`."""
    return any(
        negated and (cleaned.startswith(directory + "/") or cleaned.startswith("**"))
        for negated, _, cleaned in _rules()
    )


def build_context() -> list[str]:
    """The files `docker build .` sends (paths relative to the repository, with `/`)."""
    files: list[str] = []
    for directory, subdirectories, names in os.walk(ROOT):
        relative = Path(directory).relative_to(ROOT).as_posix()
        prefix = "" if relative == "." else relative + "/"
        subdirectories[:] = sorted(
            name
            for name in subdirectories
            if not dockerignored(prefix + name) or _may_let_back_in(prefix + name)
        )
        files += [prefix + name for name in sorted(names) if not dockerignored(prefix + name)]
    return files


def image_files() -> dict[str, str]:
    """The files of the build context that the final stage copies: path in the repository
    -> path in the image."""
    landed: dict[str, str] = {}
    copies = final_stage().context_copies()
    for path in build_context():
        for source, target in copies.items():
            if path == source:
                landed[path] = target
            elif path.startswith(source + "/"):
                landed[path] = posixpath.join(target, path.removeprefix(source + "/"))
    return landed
