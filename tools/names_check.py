"""Every name a chapter's page uses is visible on that page (issue 29, item 1).

A reader of the rendered book sees the code cells that carry no ``remove-cell`` or ``remove-input``
tag (``hide-input``, ``hide-cell`` and ``hide-output`` cells are collapsed, one click away, so they
count as seen). For a notebook this module finds every name *read* in such a shown cell that is not

- defined or imported in a shown cell of the same notebook (assignment, annotated assignment,
  ``import``, ``def``/``class``, a ``for`` or ``with ... as`` target, an ``except ... as`` name,
  ``:=``, a ``match`` capture, a name declared ``global`` in a function and bound there), or
- bound in the scope that reads it (function and lambda parameters, a function's own assignments,
  comprehension variables, a class body's names), or
- a builtin (Python's, plus ``display`` and ``get_ipython``, which IPython kernels provide).

A name read at the top level of a cell must be defined in that cell or an earlier shown cell; a
name read inside a function body may be defined by any shown cell (the function runs later). Cells
tagged ``remove-cell`` or ``remove-input`` define nothing a reader can see, the install cell
(``bootstrap`` + ``remove-cell``) included. IPython lines (``%magic``, ``!shell``, a ``%%cell``
magic's first line) are blanked before parsing; a cell that still does not parse is reported.

Run it on chapters from the repository root::

    python tools/names_check.py book/02_expectile_value.ipynb [more.ipynb ...]

It prints each offending cell (its number counted over all cells from 1, as Jupyter shows them,
its tags and first line) with the names it reads but the page never defines, and exits 1 if any.
``tests/test_notebook_style.py`` runs it on every chapter.
"""

from __future__ import annotations

import ast
import builtins
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

HIDDEN_TAGS = frozenset({"remove-cell", "remove-input"})
IPYTHON_BUILTINS = frozenset({"display", "get_ipython", "In", "Out", "exit", "quit"})
BUILTINS = frozenset(dir(builtins)) | IPYTHON_BUILTINS | {"__name__", "__doc__", "__builtins__"}


@dataclass
class Finding:
    """Names read in one shown cell that the page never defines before it."""

    cell: int  # 1-based over all cells of the notebook
    tags: list[str]
    first_line: str
    names: list[str]

    def __str__(self) -> str:
        tags = f" [{', '.join(self.tags)}]" if self.tags else ""
        return f"cell {self.cell}{tags} ({self.first_line!r}): {', '.join(self.names)}"


def strip_ipython(source: str) -> str:
    """``source`` with IPython-only lines blanked (line numbers kept): ``%``/``!`` lines and a ``%%`` cell
    magic's first line."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


@dataclass
class _Scope:
    kind: str  # "module", "function", "class", "comprehension"
    parent: _Scope | None
    bound: set[str] = field(default_factory=set)
    globals_: set[str] = field(default_factory=set)
    nonlocals: set[str] = field(default_factory=set)
    # names read in this scope, resolved once every binding of every scope is known
    reads: list[str] = field(default_factory=list)
    children: list[_Scope] = field(default_factory=list)


class _CellNames(ast.NodeVisitor):
    """Bindings and reads of one cell, scope by scope (two passes: collect, then resolve)."""

    def __init__(self) -> None:
        self.module = _Scope("module", None)
        self.scope = self.module
        # names bound at module level by this cell, and names a function declares global and binds
        self.defined: set[str] = set()

    # --- scopes -----------------------------------------------------------------------------
    def _enter(self, kind: str) -> _Scope:
        scope = _Scope(kind, self.scope)
        self.scope.children.append(scope)
        self.scope = scope
        return scope

    def _leave(self, scope: _Scope) -> None:
        assert scope.parent is not None
        self.scope = scope.parent

    def _bind(self, name: str, scope: _Scope | None = None) -> None:
        scope = scope or self.scope
        scope.bound.add(name)

    def _bind_target(self, target: ast.AST) -> None:
        """Bind every name a store target (tuple/list/starred unpacking included) assigns."""
        for node in ast.walk(target):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                self._bind(node.id)
        # attributes and subscripts in a target read their base: visit them for their loads
        for node in ast.walk(target):
            if isinstance(node, (ast.Attribute, ast.Subscript)):
                self.visit(node)

    # --- bindings ---------------------------------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Store):
            self._bind(node.id)
        else:
            self.scope.reads.append(node.id)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self._bind_target(target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        self.visit(node.annotation)
        if node.value is not None or not isinstance(node.target, ast.Name):
            self._bind_target(node.target)
        elif self.scope.kind != "module":
            self._bind(node.target.id)  # `x: int` makes x local in a function

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        # `x += 1` reads x first: it defines nothing that was not defined before
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            self.scope.reads.append(node.target.id)
            if self.scope.kind != "module":
                self._bind(node.target.id)
        else:
            self.visit(node.target)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        scope = self.scope
        while scope.kind == "comprehension" and scope.parent is not None:
            scope = scope.parent  # := in a comprehension binds in the enclosing scope
        self._bind(node.target.id, scope)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._bind(alias.asname or alias.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self._bind(alias.asname or alias.name)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self._bind_target(node.target)
        for stmt in node.body + node.orelse:
            self.visit(stmt)

    visit_AsyncFor = visit_For

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self._bind_target(item.optional_vars)
        for stmt in node.body:
            self.visit(stmt)

    visit_AsyncWith = visit_With

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self._bind(node.name)
        for stmt in node.body:
            self.visit(stmt)

    def visit_Global(self, node: ast.Global) -> None:
        self.scope.globals_.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.scope.nonlocals.update(node.names)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.pattern is not None:
            self.visit(node.pattern)
        if node.name:
            self._bind(node.name)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self._bind(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        for key in node.keys:
            self.visit(key)
        for pattern in node.patterns:
            self.visit(pattern)
        if node.rest:
            self._bind(node.rest)

    # --- new scopes -------------------------------------------------------------------------
    def _arguments(self, args: ast.arguments) -> list[str]:
        """Visit defaults and annotations (read in the enclosing scope); return the parameter names."""
        for default in args.defaults + [d for d in args.kw_defaults if d is not None]:
            self.visit(default)
        params = args.posonlyargs + args.args + args.kwonlyargs
        params += [a for a in (args.vararg, args.kwarg) if a is not None]
        for arg in params:
            if arg.annotation is not None:
                self.visit(arg.annotation)
        return [arg.arg for arg in params]

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            self.visit(decorator)
        params = self._arguments(node.args)
        if node.returns is not None:
            self.visit(node.returns)
        self._bind(node.name)
        scope = self._enter("function")
        scope.bound.update(params)
        for stmt in node.body:
            self.visit(stmt)
        self._leave(scope)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        params = self._arguments(node.args)
        scope = self._enter("function")
        scope.bound.update(params)
        self.visit(node.body)
        self._leave(scope)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in node.decorator_list + node.bases + [k.value for k in node.keywords]:
            self.visit(expr)
        self._bind(node.name)
        scope = self._enter("class")
        for stmt in node.body:
            self.visit(stmt)
        self._leave(scope)

    def _comprehension(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp) -> None:
        # the first iterable is evaluated in the enclosing scope
        self.visit(node.generators[0].iter)
        scope = self._enter("comprehension")
        for i, gen in enumerate(node.generators):
            if i:
                self.visit(gen.iter)
            self._bind_target(gen.target)
            for cond in gen.ifs:
                self.visit(cond)
        if isinstance(node, ast.DictComp):
            self.visit(node.key)
            self.visit(node.value)
        else:
            self.visit(node.elt)
        self._leave(scope)

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _comprehension

    # --- resolution -------------------------------------------------------------------------
    def resolve(self) -> tuple[set[str], set[str], set[str]]:
        """(names this cell defines at module level, names read at module level that this cell's
        scopes do not bind, names read inside functions that no enclosing function binds)."""
        defined = set(self.module.bound)
        top_reads: set[str] = set()
        deferred: set[str] = set()

        def globals_bound(scope: _Scope) -> None:
            for child in scope.children:
                if child.kind == "function":
                    defined.update(child.globals_ & child.bound)
                globals_bound(child)

        globals_bound(self.module)

        def lookup(scope: _Scope, name: str) -> str:
            """'local' if a non-module scope binds ``name`` for this read, else where it runs:
            'module' (at cell execution time) or 'deferred' (inside a function body)."""
            in_function = False
            current: _Scope | None = scope
            first = True
            while current is not None and current.kind != "module":
                if name in current.globals_:
                    break
                # a class body's names are visible in the class body only, not in its methods
                if (first or current.kind != "class") and name in current.bound:
                    return "local"
                if current.kind == "function":
                    in_function = True
                current = current.parent
                first = False
            return "deferred" if in_function else "module"

        def walk(scope: _Scope) -> None:
            for name in scope.reads:
                where = lookup(scope, name)
                if where == "module":
                    top_reads.add(name)
                elif where == "deferred":
                    deferred.add(name)
            for child in scope.children:
                walk(child)

        walk(self.module)
        return defined, top_reads, deferred


def _tags(cell: dict) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def undefined_names(path: str | Path) -> list[Finding]:
    """The shown code cells of the notebook at ``path`` that read a name the page never defines (see the
    module docstring for the rules), in cell order; an empty list when every name is visible."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    shown: list[tuple[int, dict, set[str], set[str], set[str]]] = []
    findings: list[Finding] = []
    for number, cell in enumerate(nb.get("cells", []), start=1):
        if cell.get("cell_type") != "code" or HIDDEN_TAGS & set(_tags(cell)):
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        try:
            tree = ast.parse(strip_ipython(source))
        except SyntaxError as error:
            findings.append(
                Finding(number, _tags(cell), source.strip().split("\n")[0], [f"<syntax error: {error.msg}>"])
            )
            continue
        visitor = _CellNames()
        visitor.visit(tree)
        shown.append((number, cell, *visitor.resolve()))
    everywhere = set().union(*(defined for _, _, defined, _, _ in shown)) if shown else set()
    so_far: set[str] = set()
    for number, cell, defined, top_reads, deferred in shown:
        so_far |= defined
        missing = sorted((top_reads - so_far - BUILTINS) | (deferred - everywhere - BUILTINS))
        if missing:
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            first = next((line for line in source.splitlines() if line.strip()), "")
            findings.append(Finding(number, _tags(cell), first.strip()[:60], missing))
    return sorted(findings, key=lambda f: f.cell)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python tools/names_check.py NOTEBOOK.ipynb [...]", file=sys.stderr)
        return 2
    failed = False
    for arg in argv:
        findings = undefined_names(arg)
        if findings:
            failed = True
            print(f"{arg}: {len(findings)} shown cells read names the page never defines:")
            for finding in findings:
                print(f"  {finding}")
        else:
            print(f"{arg}: every name read in a shown cell is defined on the page")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
