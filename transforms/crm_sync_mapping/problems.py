"""What is wrong with a mapping file, said so a person can fix it without reading code."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One mistake at a place in the file (line and column are 1-based; 0 = whole file)."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.column}: {self.message}"
        return f"{self.file}: {self.message}"


class MappingError(ValueError):
    """A mapping file that cannot be used; carries every problem found, not just the first.

    `str(error)` is one line per problem, ready to print at start-up.
    """

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(set(problems))
        super().__init__("\n".join(str(problem) for problem in self.problems))
