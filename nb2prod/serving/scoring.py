"""Score rows through one bento's own service path: validate, lifted features, model.

This module imports nothing of nb2prod, and nothing of the bento at import time: it runs
with a bento's ``src/`` first on ``sys.path`` (one bento per process: its modules have
plain names, ``lifted``, ``nb2prod_validation``, ``nb2prod_runtime``). Import it as
``nb2prod.serving.scoring``, or load the file by path where nb2prod is not installed
(``serving/replay_worker.py`` does; a Spark job may ship it with ``addPyFile``).

``Scorer(src, model_file, proba=, id_column=)`` loads what the service's process loads:
``nb2prod_validation`` (the fast path, then Pandera, words each 422), ``lifted.schema``,
``lifted.features`` (the entry point), the model (``model.pkl``; wrapped by
``nb2prod_compiled`` when the bento serves compiled), ``nb2prod_runtime``'s
``check_features``, ``call_model`` and ``check_outputs``, and the thread setting
(``MODEL_THREADS`` of the generated ``service.py``, read, not imported: it needs the store).

``score_arrow(batch, first_row)`` (pyarrow in, pyarrow out: the local engine, Spark's
``mapInArrow``) and ``score(frame, first_row)`` (pandas: ``mapInPandas``) return two tables:

- scored, one row per accepted input row, in input order: the ``id_column`` or every input
  column (values and types as read), then :func:`output_schema`: ``prediction`` (the
  notebook's prediction type), ``proba_<class>`` (float64, with ``proba``) and
  ``model_version`` (string);
- rejects, :func:`rejects_schema`: ``row`` (int64: ``first_row`` + position in the batch),
  the id column when given, ``status`` (int64: 422 for a schema or non-finite failure, 500
  when the notebook's code raised), ``failures`` (string: the JSON list of the 422 body's
  ``failures`` for that row sent alone, each ``{"row": 0, "column", "check", "value"}``) and
  ``error`` (string: the 500's exception, else null).

Each batch is judged by the bento's own validation (:meth:`Scorer.columnar`), as one frame
of the rows whose JSON would be exactly their arrow values. Where the fast path compiles the
schema (every value decided on its own), that frame is accepted by the fast path's plan over
its columns (``FastPath.accepts``, which passes only what Pandera would), else Pandera judges
it. Where the schema has checks the plan does not model (custom, frame-wide: a verdict may
depend on the company), each request of ``REQUEST_ROWS`` is accepted whole when its rows pass
the plan and those checks pass, by Pandera's own ``Check``, on that request's frame. The other
rows, and any a failure names, are sent as requests of at most ``REQUEST_ROWS`` rows, and a
request that fails is split so that only the rows at fault are rejected, each with the 422 it
gets alone. The accepted frames go into one features and model call, as the service's batcher
concatenates requests; a non-finite row, or one that raises, is answered alone, as the
batcher answers only the culprit. Pandas frames from ``mapInPandas`` hold an int column with
nulls as floats (3.0), which the schema may refuse: prefer ``score_arrow``.
"""

from __future__ import annotations

import ast
import copy
import importlib
import json
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

REQUEST_ROWS = 1000  # rows per validated request: the fast path takes up to this many
MODEL_VERSION = "model_version"
PREDICTION = "prediction"
REJECT_COLUMNS = ("row", "status", "failures", "error")  # the id column goes after ``row``


_PARSED: dict[tuple, dict[str, Any]] = {}  # (path, mtime, size) -> its constants


def constants(service: Path) -> dict[str, Any]:
    """The literal module-level constants of a generated ``service.py`` (INPUT_COLUMNS, ...)."""
    found: dict[str, Any] = {}
    try:  # parsed once per version of the file (tens of ms: a batch's worth of rows)
        stat = service.stat()
        key = (str(service), stat.st_mtime_ns, stat.st_size)
        if key in _PARSED:
            return copy.deepcopy(_PARSED[key])
        tree = ast.parse(service.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return found
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id.isupper():
                try:
                    found[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    continue  # computed at import (INPUT_SCHEMA, ...)
    _PARSED[key] = copy.deepcopy(found)
    return found


def output_schema(src: Path, proba: bool) -> list[tuple[str, pa.DataType]]:
    """The columns the scorer adds after the id or input columns, with their arrow types.

    ``prediction`` has the type of the notebook's own predictions (``monitoring/
    predictions.parquet``); float64 for a regressor, the classes' type otherwise when that
    file is missing.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = Path(src)
    known = constants(src / "service.py")
    kind: pa.DataType | None = None
    written = src / "monitoring" / "predictions.parquet"
    if written.is_file():
        names = pq.read_schema(written)
        kind = names.field(PREDICTION).type if PREDICTION in names.names else None
    if kind is None:
        config = src / "monitoring" / "config.json"
        found = json.loads(config.read_text(encoding="utf-8")) if config.is_file() else {}
        classes = found.get("classes") or []
        kind = pa.array(classes).type if classes else pa.float64()
    columns = [(PREDICTION, kind)]
    outputs = known.get("OUTPUT_COLUMNS") or {}
    if proba:
        columns += [(name, pa.float64()) for name in outputs.get("predict_proba", [])]
    return [*columns, (MODEL_VERSION, pa.string())]


def rejects_schema(id_field: pa.Field | None = None) -> pa.Schema:
    """The rejects table's schema: ``row``, the id column (as the input has it), ``status``,
    ``failures``, ``error``."""
    import pyarrow as pa

    fields = [pa.field("row", pa.int64())]
    fields += [id_field] if id_field is not None else []
    fields += [pa.field("status", pa.int64()), pa.field("failures", pa.string())]
    return pa.schema([*fields, pa.field("error", pa.string())])


class Scorer:
    """One bento's path as its service runs it: validate, features, model."""

    def __init__(
        self,
        src: Path,
        model_file: Path | None = None,
        *,
        proba: bool = False,
        id_column: str | None = None,
    ) -> None:
        src = Path(src)
        self.validation = importlib.import_module("nb2prod_validation")
        self.runtime = importlib.import_module("nb2prod_runtime")
        self.manifest = json.loads((src / "nb2prod.json").read_text(encoding="utf-8"))
        known = constants(src / "service.py")
        self.version = str(known.get("MODEL_VERSION", self.manifest.get("version")))
        self.columns = list(known.get("INPUT_COLUMNS") or self.manifest["reference"]["columns"])
        self.lenient = bool(known.get("LENIENT", False))
        self.outputs = known.get("OUTPUT_COLUMNS") or {"predict": [PREDICTION]}
        self.threads = int(known.get("MODEL_THREADS", 1))
        self.proba = proba and "predict_proba" in self.outputs
        self.id_column = id_column
        self.added = output_schema(src, self.proba)
        model = getattr(importlib.import_module("lifted.schema"), self.manifest["input_schema"])
        self.schema = model.to_schema()
        entry = self.manifest.get("entrypoint")
        features = importlib.import_module("lifted.features") if entry else None
        self.entrypoint = getattr(features, entry) if features else None
        self.model = self._load(model_file or self._stored_model())
        # The service's setting for its model thread; after loading, so that the model's
        # OpenMP (loaded with it) is limited too. OpenMP's limit is the calling thread's:
        # score in the thread that made the Scorer.
        limit = getattr(self.runtime, "_limit_threads", None)
        if limit is not None:
            limit(self.threads)

    def _stored_model(self) -> Path:
        import bentoml  # only when no model file is given: the store's copy

        return Path(bentoml.models.get(self.manifest["model_tag"]).path_of("model.pkl"))

    def _load(self, path: Path | str) -> Any:
        with open(path, "rb") as fh:
            model = pickle.load(fh)
        if (self.manifest.get("serving") or {}).get("runtime") != "compiled":
            return model
        compiled = importlib.import_module("nb2prod_compiled")
        return compiled.load(path, model, threads=self.threads)

    # -- the service's steps -------------------------------------------------------------

    def validate(self, rows: list[dict[str, Any]]) -> tuple[Any, list]:
        """One request's rows: the validated frame, or the 422 body's failures."""
        return self.validation.validate(self.schema, rows, self.columns, lenient=self.lenient)

    def predict(self, frame: Any, proba: bool) -> dict[str, Any]:
        """The model's outputs for a validated frame, as the service's model runner gives them."""
        import numpy as np

        features = self.entrypoint(frame) if self.entrypoint else frame
        self.runtime.check_features(features)
        out = {}
        methods = ["predict", *(["predict_proba"] if proba and self.proba else [])]
        for method in methods:
            values = np.asarray(self.runtime.call_model(self.model, method, features))
            self.runtime.check_outputs(values, self.outputs[method])
            out[method] = values
        return out

    def judge(self, rows: list[dict], positions: list[int], rejects: list) -> list:
        """Validate ``rows`` as one request; when it fails, split it as if each row came alone.

        Rows the failures name are sent alone (their 422 is the one they get alone), the rest
        together again; a failure with no row (a column) splits the request in halves.
        Returns ``[(frame, positions)]`` of the accepted parts; appends the rejected rows.
        """
        accepted, todo = [], [(rows, positions)]
        while todo:
            part, where = todo.pop()
            frame, failures = self.validate(part)
            if not failures:
                if len(frame):
                    accepted.append((frame, where))
                continue
            if len(part) == 1:
                rejects.append({"row": where[0], "status": 422, "failures": list(failures)})
                continue
            named = {f["row"] for f in failures}
            if None in named or not named <= set(range(len(part))):
                half = len(part) // 2
                todo += [(part[:half], where[:half]), (part[half:], where[half:])]
                continue
            rest = [i for i in range(len(part)) if i not in named]
            todo += [([part[i]], [where[i]]) for i in sorted(named)]
            if rest:
                todo.append(([part[i] for i in rest], [where[i] for i in rest]))
        return accepted

    def run(self, frame: Any, where: list[int], proba: bool, rejects: list) -> list:
        """The model on a validated frame; a row whose features or output is not finite (or
        that raises) is answered alone, as the service's batcher answers only the culprit.
        Returns ``[(outputs, positions)]``; appends the rejected rows."""
        done, todo = [], [(frame, where)]
        while todo:
            part, rows = todo.pop()
            try:
                done.append((self.predict(part, proba), rows))
                continue
            except self.runtime.NonFinite as exc:
                if len(rows) == 1:
                    rejects.append({"row": rows[0], "status": 422, "failures": [exc.failure]})
                    continue
                bad = exc.row if 0 <= exc.row < len(rows) else None
            except Exception as exc:  # noqa: BLE001 - the service answers 500 to that request
                if len(rows) == 1:
                    error = f"{type(exc).__name__}: {exc}"
                    rejects.append({"row": rows[0], "status": 500, "error": error, "failures": []})
                    continue
                bad = None
            if bad is None:
                half = len(rows) // 2
                todo += [(part.iloc[:half].reset_index(drop=True), rows[:half])]
                todo += [(part.iloc[half:].reset_index(drop=True), rows[half:])]
                continue
            keep = [i for i in range(len(rows)) if i != bad]
            todo.append((part.iloc[[bad]].reset_index(drop=True), [rows[bad]]))
            todo.append((part.iloc[keep].reset_index(drop=True), [rows[i] for i in keep]))
        return done

    def answer(
        self, rows: list[dict], positions: list[int], proba: bool, rejects: list, accepted=()
    ) -> list:
        """``rows`` as requests of ``REQUEST_ROWS``, their accepted frames (and ``accepted``,
        ``[(frame, positions)]`` validated already) in one model call: ``[(outputs,
        positions)]``, rejected rows appended to ``rejects``."""
        import pandas as pd

        accepted = list(accepted)
        for start in range(0, len(rows), REQUEST_ROWS):
            end = start + REQUEST_ROWS
            accepted += self.judge(rows[start:end], positions[start:end], rejects)
        if not accepted:
            return []
        frames = [frame for frame, _ in accepted]
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        where = [p for _, part in accepted for p in part]
        return self.run(frame, where, proba, rejects)

    def columnar(self, table: pa.Table) -> tuple[list, list[int]]:
        """The rows of ``table`` judged as frames: ``([(frame, positions)], positions of the
        rest)``; the rest go the request's way (``judge``). Only for int64, float64 and str
        columns (the fast path's), and only rows whose JSON would be exactly their arrow
        values: columns of that very type, no null or NaN where the schema allows none, no
        null in an int column, ints within 2**53. Rows named by a failure, and all of them
        at any doubt, go the request's way, so every 422 is worded there (module docstring).
        """
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc
        from pandera.errors import SchemaError, SchemaErrors

        everything = list(range(table.num_rows))
        fastpath = getattr(self.validation, "fastpath", None)
        if fastpath is None or not table.num_rows:
            return [], everything
        plan, batch = fastpath.fast_path(self.schema, self.columns), None
        coerced = self.schema.coerce or any(c.coerce for c in self.schema.columns.values())
        if plan is None and hasattr(fastpath, "batch_path") and not coerced:
            plan = batch = fastpath.batch_path(self.schema, self.columns)
        if plan is None:
            return [], everything
        accepts = getattr(plan, "accepts", None)  # a bento built before it: Pandera alone
        types = {"int64": (pa.int64(),), "float64": (pa.float64(),)}
        types["str"] = (pa.string(), pa.large_string())
        sure = np.ones(table.num_rows, dtype=bool)
        for name in self.columns:
            column, values = self.schema.columns[name], table.column(name)
            if values.type not in types.get(str(column.dtype), ()):
                return [], everything
            bad = pc.is_null(values, nan_is_null=True) if not column.nullable else None
            if pa.types.is_integer(values.type):  # a null would make the column float
                bad = pc.or_(pc.is_null(values), pc.greater(pc.abs(values), 2**53))
            elif pa.types.is_floating(values.type) and column.nullable:
                bad = pc.and_(pc.is_nan(values), pc.invert(pc.is_null(values)))
            if bad is not None:
                sure &= ~np.asarray(pc.fill_null(bad, False), dtype=bool)
        if batch is not None:  # checks set aside: whole requests, cut as ``answer`` cuts them
            found = self.validation.requests(batch, self._frame(table), sure, REQUEST_ROWS)
            return found or ([], everything)
        where = np.flatnonzero(sure)
        for _ in range(2):
            if not len(where):
                break
            frame = self._frame(table if len(where) == table.num_rows else table.take(where))
            try:  # the plan accepts only what Pandera would, as the same frame
                passed = accepts is not None and accepts(frame)
                valid = frame if passed else self.schema.validate(frame, lazy=True)
            except (SchemaError, SchemaErrors) as exc:
                named = getattr(exc, "failure_cases", None)
                named = None if named is None else named.get("index")
                if named is None or named.isna().any():
                    break
                where = np.delete(where, np.unique(named.astype("int64").to_numpy()))
                continue
            rest = np.ones(table.num_rows, dtype=bool)
            rest[where] = False
            valid = valid if list(valid.columns) == self.columns else valid[self.columns]
            return [(valid, where.tolist())], np.flatnonzero(rest).tolist()
        return [], everything

    def _frame(self, table: pa.Table) -> pd.DataFrame:
        """``table`` as the frame a request of its rows makes (str columns of objects)."""
        frame = table.to_pandas()
        for name in self.columns:
            if str(self.schema.columns[name].dtype) == "str" and frame[name].dtype != object:
                frame[name] = frame[name].astype(object)
        return frame

    # -- tables in, tables out -----------------------------------------------------------

    def score_arrow(self, batch: Any, first_row: int = 0) -> tuple[pa.Table, pa.Table]:
        """Score a pyarrow ``RecordBatch`` or ``Table``: (scored, rejects), as the module says.

        Raises:
            KeyError: the batch lacks an input column (or the id column).
        """
        import numpy as np
        import pyarrow as pa

        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        wanted = [*self.columns, *([self.id_column] if self.id_column else [])]
        missing = [c for c in wanted if c not in table.column_names]
        if missing:
            raise KeyError(f"the rows lack column(s) {', '.join(missing)}")
        inputs = table.select(self.columns)
        accepted, rest = self.columnar(inputs)
        if len(rest) != len(inputs):
            inputs = inputs.take(pa.array(rest, type=pa.int64()))
        rows = inputs.to_pylist()
        rejects: list[dict] = []
        done = self.answer(rows, rest, self.proba, rejects, accepted)
        if done:
            where = np.concatenate([np.asarray(p, dtype=np.int64) for _, p in done])
            order = np.argsort(where, kind="stable")
            where = where[order]
            outputs = {
                m: np.concatenate([o[m].reshape(len(p), -1) for o, p in done])[order]
                for m in done[0][0]
            }
        else:
            where, outputs = np.zeros(0, dtype=np.int64), {}
        kept = table.select([self.id_column]) if self.id_column else table
        scored = kept.take(pa.array(where, type=pa.int64()))
        for name, kind in self.added:
            if name == PREDICTION:
                values = outputs["predict"][:, 0] if outputs else []
            elif name == MODEL_VERSION:
                values = pa.repeat(pa.scalar(self.version, kind), len(where))
            else:
                i = self.outputs["predict_proba"].index(name)
                values = outputs["predict_proba"][:, i] if outputs else []
            values = values if isinstance(values, pa.Array) else pa.array(values)
            scored = scored.append_column(pa.field(name, kind), values.cast(kind))
        return scored, self._rejects(rejects, table, first_row)

    def _rejects(self, rejects: list[dict], table: pa.Table, first_row: int) -> pa.Table:
        import pyarrow as pa
        import pyarrow.compute as pc

        rejects.sort(key=lambda r: r["row"])
        at = pa.array([r["row"] for r in rejects], type=pa.int64())
        field = table.schema.field(self.id_column) if self.id_column else None
        columns = {"row": pc.add(at, first_row)}
        if field is not None:
            columns[field.name] = table.column(field.name).take(at)
        columns["status"] = pa.array([r["status"] for r in rejects], type=pa.int64())
        failures = [json.dumps(r["failures"], default=str) for r in rejects]
        columns["failures"] = pa.array(failures, type=pa.string())
        columns["error"] = pa.array([r.get("error") for r in rejects], type=pa.string())
        return pa.Table.from_pydict(columns, schema=rejects_schema(field))

    def score(self, frame: pd.DataFrame, first_row: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Score a pandas frame (``mapInPandas``): :meth:`score_arrow` through arrow."""
        import pyarrow as pa

        scored, rejects = self.score_arrow(
            pa.Table.from_pandas(frame, preserve_index=False), first_row
        )
        return scored.to_pandas(), rejects.to_pandas()
