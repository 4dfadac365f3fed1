"""The step graph: which step waits for which, checked for unknown steps and cycles.

A file where no step says ``depends_on`` runs its steps in file order (the
shape of the first pipelines). As soon as one step declares ``depends_on``,
the graph is exactly what the file declares, and steps with no path between
them may run at the same time. A parameter referencing
``${steps.X.outputs.Y}`` always makes its step wait for ``X``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mlfactor.names import did_you_mean
from mlfactor.pipeline.parameters import references
from mlfactor.pipeline.spec import PipelineSpec


@dataclass(frozen=True)
class StepGraph:
    """Each step's prerequisites, in file order."""

    order: tuple[str, ...]
    needs: Mapping[str, frozenset[str]]

    def ready(self, done: Iterable[str], started: Iterable[str]) -> list[str]:
        """List the steps whose prerequisites are all done and that have not started, in file order."""
        finished, begun = set(done), set(started)
        return [s for s in self.order if s not in begun and self.needs[s] <= finished]

    def downstream(self, step: str) -> set[str]:
        """Every step that (transitively) waits for ``step``."""
        found: set[str] = set()
        frontier = {step}
        while frontier:
            nxt = {s for s, needs in self.needs.items() if needs & frontier and s not in found}
            found |= nxt
            frontier = nxt
        return found

    def ancestors(self, step: str) -> set[str]:
        """Every step ``step`` (transitively) waits for."""
        found: set[str] = set()
        frontier = set(self.needs[step])
        while frontier:
            found |= frontier
            frontier = {n for s in frontier for n in self.needs[s]} - found
        return found


def build_graph(
    spec: PipelineSpec, parameters: Mapping[str, Mapping[str, object]] | None = None
) -> tuple[StepGraph, list[str]]:
    """Build the graph of ``spec``; return it with every problem (unknown steps, self-references, cycles)."""
    names = spec.step_names
    problems: list[str] = []
    needs: dict[str, set[str]] = {name: set() for name in names}
    for index, step in enumerate(spec.steps):
        if spec.explicit_dependencies:
            for dep in step.depends_on:
                if dep == step.name:
                    problems.append(f"step {step.name!r}: depends_on names the step itself.")
                elif dep not in needs:
                    problems.append(
                        f"step {step.name!r}: depends_on names unknown step {dep!r}."
                        f"{did_you_mean(dep, names)}"
                    )
                else:
                    needs[step.name].add(dep)
        elif index > 0:
            needs[step.name].add(names[index - 1])
        given = (parameters or {}).get(step.name, step.parameters)
        for ref_step, output in references(dict(given)):
            if ref_step == step.name:
                problems.append(
                    f"step {step.name!r}: a parameter references the step's own output {output!r}."
                )
            elif ref_step not in needs:
                problems.append(
                    f"step {step.name!r}: a parameter references ${{steps.{ref_step}.outputs.{output}}} but "
                    f"there is no step {ref_step!r}.{did_you_mean(ref_step, names)}"
                )
            else:
                needs[step.name].add(ref_step)
    cycle = find_cycle(names, needs)
    if cycle:
        problems.append(f"steps form a cycle: {' -> '.join(cycle)}; remove one of these depends_on entries.")
    graph = StepGraph(order=tuple(names), needs={k: frozenset(v) for k, v in needs.items()})
    return graph, problems


def find_cycle(names: list[str], needs: Mapping[str, set[str]]) -> list[str]:
    """One cycle as ``[a, b, a]`` if the prerequisites contain one, else an empty list.

    Iterative depth-first search: a chain of thousands of steps, in any file
    order, needs no recursion.
    """
    done: set[str] = set()
    for start in names:
        if start in done:
            continue
        path: list[str] = [start]
        on_path = {start}
        pending: list[list[str]] = [sorted(needs[start])]
        while path:
            if not pending[-1]:
                node = path.pop()
                on_path.discard(node)
                pending.pop()
                done.add(node)
                continue
            dep = pending[-1].pop()
            if dep in on_path:
                return [*path[path.index(dep) :], dep]
            if dep not in done:
                path.append(dep)
                on_path.add(dep)
                pending.append(sorted(needs[dep]))
    return []
