"""Start order: when a session that depends on others may start (pure, no I/O).

A session's `depends_on` maps other sessions' names to a condition:

- "started": the dependency has been started (it runs, or ran);
- "ready": it is ready: its `ready_when` probe passed (without a probe, once started);
- "succeeded": it exited 0.

A dependency that can no longer meet its condition (it ended without getting there,
and no automatic restart is due) fails its dependents, with the reason.  A name no
session has yet is waited for (a declared session may start after its dependents).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from ccx_tui.engine.sessions.session import SessionInfo, State


@dataclass(frozen=True, slots=True)
class Verdict:
    """`go`: start it now; else `failed` says it never can, or it waits; `reason` for
    the user either way ("waiting for db (ready)", "dependency db exited 1")."""

    go: bool
    failed: bool = False
    reason: str | None = None


GO = Verdict(True)


def verdict(depends_on: Mapping[str, str], find: Callable[[str], SessionInfo | None]) -> Verdict:
    """Whether a session with `depends_on` may start, given `find(name)`: the latest
    session of that name, or None."""
    waiting: list[str] = []
    for name, condition in depends_on.items():
        dep = find(name)
        if dep is None:
            waiting.append(f"{name} (not started yet)")
            continue
        met, why_not = _met(dep, condition)
        if met:
            continue
        if why_not is not None:
            return Verdict(False, failed=True, reason=f"dependency {name} {why_not}")
        waiting.append(f"{name} ({condition})")
    if waiting:
        return Verdict(False, reason="waiting for " + ", ".join(waiting))
    return GO


def _met(dep: SessionInfo, condition: str) -> tuple[bool, str | None]:
    """(met, why it never will be: None while it still may)."""
    state = dep.state
    ran = dep.run >= 1 and state not in (State.QUEUED, State.CREATED)
    over = state.final and dep.restart_at is None and state is not State.CREATED
    if condition == "started":
        if ran:
            return True, None
        return False, _ended(dep) if over else None
    if condition == "succeeded":
        if state is State.EXITED and dep.exit_code == 0:
            return True, None
        return False, _ended(dep) if over else None
    # "ready"
    if dep.ready_at is not None:
        return True, None
    return False, (_ended(dep) + " before it was ready") if over else None


def _ended(dep: SessionInfo) -> str:
    if dep.state is State.EXITED:
        return f"exited {dep.exit_code}"
    return f"was {dep.state.value}" + (f" ({dep.reason})" if dep.reason else "")


def stop_order(sessions: Iterable[SessionInfo]) -> list[list[SessionInfo]]:
    """Waves to stop `sessions` in: dependents before what they depend on (by name);
    sessions in a cycle or unrelated stop in the last wave."""
    pending = {info.id: info for info in sessions}
    by_name = {info.spec.name: info.id for info in pending.values() if info.spec.name}
    waves: list[list[SessionInfo]] = []
    while pending:
        # Still needed by someone pending: not yet.
        needed = {
            by_name[name]
            for info in pending.values()
            for name in info.spec.depends_on
            if name in by_name and by_name[name] in pending and by_name[name] != info.id
        }
        wave = [info for sid, info in pending.items() if sid not in needed]
        if not wave:  # a cycle: the rest together
            wave = list(pending.values())
        waves.append(wave)
        for info in wave:
            del pending[info.id]
    return waves


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A cycle in `graph` (name -> names it depends on) as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and nxt in graph:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None
