"""Why a start failed: the error naming the component (its cause and redacted log tail), the
error relayed from another worker, and how a report words any failed start."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pytest_tria_deploy.provision.docker import DockerUnavailableError
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


class StartFailedElsewhere(RuntimeError):
    """The run's shared stack failed to start in another worker; str() is that worker's cause.

    Raised instead of a second attempt, so every worker reports the same failure at once.
    """


def failure_cause(exc: BaseException) -> str:
    """How a failed start reads in a report: errors that name the component and the fix (or a
    cause recorded by another worker) in their own words, anything else with its type."""
    if isinstance(exc, ComponentStartError | DockerUnavailableError | StartFailedElsewhere):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
