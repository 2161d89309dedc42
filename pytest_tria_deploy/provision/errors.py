"""The one error a failed start raises: which component, why, and what its log said (redacted)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pytest_tria_deploy.redact import redact, register_secrets


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """The project's one redaction, after registering this component's secrets process-wide."""
    register_secrets(list(secrets))
    return redact(text)


class ComponentStartError(RuntimeError):
    """A throwaway server did not become ready; the message is safe to print and to log."""

    def __init__(
        self,
        component: str,
        cause: str,
        log_tail: Sequence[str] = (),
        *,
        log_path: str | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        known = list(secrets)
        self.component = component
        self.cause = redact_text(cause, known)
        self.log_tail = [redact_text(line, known) for line in log_tail]
        self.log_path = log_path
        super().__init__(self._render())

    def _render(self) -> str:
        lines = [f"{self.component} failed to start: {self.cause}"]
        if self.log_tail:
            where = f" ({self.log_path})" if self.log_path else ""
            lines.append(f"last {len(self.log_tail)} log lines{where}:")
            lines.extend(f"  | {line}" for line in self.log_tail)
        return "\n".join(lines)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (self.component, self.cause, self.log_tail, self.log_path))


def _rebuild(
    component: str, cause: str, log_tail: list[str], log_path: str | None
) -> ComponentStartError:
    """Pickle support (pytest-xdist ships exceptions between processes)."""
    return ComponentStartError(component, cause, log_tail, log_path=log_path)
