"""The entry-point checks: the ``features`` function, its schemas, and its use in training."""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import TYPE_CHECKING

from nb2prod.notebook.scope import frame_schema, top_level

if TYPE_CHECKING:
    from nb2prod.notebook.read import Notebook
    from nb2prod.notebook.scope import ParsedCell


class EntrypointChecks:
    """Mixed into the analysis checker, which supplies the notebook, parsed cells and ``add``."""

    nb: Notebook
    parsed: dict[int, ParsedCell]

    add: Callable[..., None]  # the checker's: add(code, severity, text, cell=None, **fields)

    def entrypoint(self, schema_classes: set[str]) -> tuple[str | None, str | None, str | None]:
        settings, features = self.nb.settings, self.nb.with_role("features")
        if not features:
            return None, self._default_schema(schema_classes), None
        entry = settings.entrypoint
        defined = [
            (cell, node)
            for cell in features
            for node in getattr(self.parsed[cell.index].tree, "body", [])
            if isinstance(node, ast.FunctionDef) and node.name == entry
        ]
        for cell, node in defined[1:]:
            self.add(
                "duplicate-entrypoint",
                "error",
                f"defines the entry point `{entry}` again, after {defined[0][0].where}; "
                "keep one definition, so that training and the service run the same code.",
                cell,
                line=node.lineno,
                name=entry,
            )
        found = defined[-1] if defined else None
        if not found and any(self.parsed[c.index].tree is None for c in features):
            return None, None, None  # the cell that cannot be parsed is the finding
        if not found:
            self.add(
                "missing-entrypoint",
                "error",
                f"no nb2prod:features cell defines the entry point `def {entry}(df)`; "
                "define it or set nb2prod.entrypoint in the notebook metadata.",
                features[0],
                name=entry,
            )
            return None, None, None
        cell, fn = found
        args = fn.args
        required = len(args.posonlyargs) + len(args.args) - len(args.defaults)
        kw_required = any(d is None for d in args.kw_defaults)
        if required != 1 or kw_required or args.vararg is not None:
            self.add(
                "bad-entrypoint",
                "error",
                f"entry point `{entry}` must be a function of one data frame, "
                f"but it takes {required} required argument(s).",
                cell,
                line=fn.lineno,
                name=entry,
            )
            return entry, None, None
        first = (args.posonlyargs + args.args)[0]
        in_schema, out_schema = frame_schema(first.annotation), frame_schema(fn.returns)
        if not in_schema or not out_schema:
            arg = f"`{first.arg}`"
            missing = {
                (False, True): f"its argument {arg} has no `DataFrame[Schema]` annotation",
                (True, False): "its return has no `-> DataFrame[Schema]` annotation",
                (False, False): f"neither its argument {arg} nor its return has a "
                "`DataFrame[Schema]` annotation",
            }[(bool(in_schema), bool(out_schema))]
            self.add(
                "unannotated-entrypoint",
                "warning",
                f"entry point `{entry}` lacks a Pandera annotation: {missing}; write "
                f"`def {entry}({first.arg}: DataFrame[{in_schema or 'Raw'}]) -> "
                f"DataFrame[{out_schema or 'Features'}]` so inputs and outputs are validated "
                "and property-tested.",
                cell,
                line=fn.lineno,
                name=entry,
            )
        for schema in (in_schema, out_schema):
            if schema and schema not in schema_classes:
                self.add(
                    "unknown-schema",
                    "error",
                    f"entry point `{entry}` names `{schema}`, which no nb2prod:schema cell "
                    "defines as a Pandera DataFrameModel.",
                    cell,
                    line=fn.lineno,
                    name=schema,
                )
        in_schema = in_schema or self._default_schema(schema_classes)
        self._called_in_training(entry)
        return entry, in_schema, out_schema if out_schema in schema_classes else None

    def _default_schema(self, schema_classes: set[str]) -> str | None:
        chosen = self.nb.settings.input_schema
        schema_cells = self.nb.with_role("schema")
        if chosen:
            if chosen not in schema_classes:
                self.add(
                    "unknown-schema",
                    "error",
                    f"setting nb2prod.input_schema names `{chosen}`, which no nb2prod:schema "
                    "cell defines.",
                    name=chosen,
                )
            return chosen
        if not schema_classes:
            self.add(
                "no-schema",
                "error",
                "has no nb2prod:schema cell with a Pandera DataFrameModel, so requests "
                f"cannot be validated; `nb2prod suggest {self.nb.path.name}` infers one from "
                "the training frame.",
                schema_cells[0] if schema_cells else None,
            )
            return None
        if len(schema_classes) > 1 and not self.nb.with_role("features"):
            self.add(
                "ambiguous-schema",
                "error",
                f"defines several schemas ({', '.join(sorted(schema_classes))}) and no "
                "entry point; set nb2prod.input_schema in the notebook metadata.",
                schema_cells[0],
            )
            return None
        return min(schema_classes)

    def _called_in_training(self, entry: str) -> None:
        for cell in self.nb.with_role("train"):
            parsed = self.parsed[cell.index]
            if parsed.tree is not None and parsed.first_use(entry):
                return
        train = self.nb.with_role("train")
        if train and self._fed_by(entry, train[0].index):
            return
        if train:
            self.add(
                "entrypoint-not-called",
                "warning",
                f"no nb2prod:train cell calls `{entry}`, so the model may be trained on "
                "different features than it is served (training-serving skew).",
                train[0],
                name=entry,
            )

    def _fed_by(self, entry: str, train: int) -> bool:
        """Whether a train cell reads a name assigned, in a cell that runs before the first
        train cell, from a call of ``entry`` (``X_train = features(X_raw)``), directly or
        through later assignments (``X_tr, X_val, ... = train_test_split(X, y)``)."""
        fed = {entry}
        for cell in self.nb.cells:
            tree = self.parsed[cell.index].tree
            if cell.index >= train or cell.role == "skip" or tree is None:
                continue
            for node in top_level(tree):
                value = getattr(node, "value", None)
                if not isinstance(node, (ast.Assign, ast.AnnAssign)) or value is None:
                    continue
                if {n.id for n in ast.walk(value) if isinstance(n, ast.Name)} & fed:
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    fed |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        fed.discard(entry)
        for cell in self.nb.with_role("train"):
            tree = self.parsed[cell.index].tree
            if tree is not None and any(
                isinstance(n, ast.Name) and n.id in fed for n in ast.walk(tree)
            ):
                return True
        return False
