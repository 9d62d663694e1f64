"""Jupyter server routes under ``/nb2prod/``: thin skins over ``check``, ``build``, the tag
import and the suggestion."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from nb2prod.builder.pipeline import STAGES
from nb2prod.builder.training import parse_params
from nb2prod.errors import Nb2ProdError, RequestError
from nb2prod.lab.jobs import Job, JobRegistry
from nb2prod.notebook.check import check, check_params
from nb2prod.notebook.read import parse_content, read

if TYPE_CHECKING:
    from nb2prod.notebook.read import Notebook

AUTH_RESOURCE = "nb2prod"
_PATHS = ("bento_path", "build_dir", "service_py")
TAG_SOURCES = ("kale", "nbdev", "auto")


class _Handler(APIHandler):
    """Shared body parsing, path checks and the one error-to-JSON mapping."""

    auth_resource = AUTH_RESOURCE

    @property
    def root(self) -> Path:
        return Path(self.settings["server_root_dir"]).expanduser().resolve()

    @property
    def registry(self) -> JobRegistry:
        return self.settings["nb2prod_jobs"]

    def body(self) -> dict[str, Any]:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise RequestError("The request body is not JSON.") from None
        except RecursionError:
            raise RequestError("The request body is JSON nested too deeply to read.") from None
        if not isinstance(data, dict):
            raise RequestError("The request body must be a JSON object.")
        return data

    def notebook_path(self, data: dict[str, Any]) -> tuple[Path, str]:
        """The notebook ``data['path']`` names, resolved inside the server root.

        Nothing is read before the path is known to be a notebook inside the root.
        """
        raw = data.get("path")
        if not isinstance(raw, str) or not raw.strip():
            raise RequestError('The request needs "path", the notebook path relative to the root.')
        root, shown = self.root, _shorten(raw)
        unusable = RequestError(f"{shown!r} is not a usable notebook path.")
        try:
            path = Path(root, raw.lstrip("/")).resolve()
        except (OSError, ValueError, RuntimeError):  # a NUL byte; 3.11: a symlink loop
            raise unusable from None
        if not path.is_relative_to(root):
            raise RequestError(f"{shown} is outside the Jupyter server root.", http_status=403)
        rel = path.relative_to(root).as_posix()
        if path.suffix not in (".ipynb", ".py"):
            raise RequestError(f"{shown} is not a notebook (.ipynb, or a .py percent script).")
        allow_hidden = getattr(self.contents_manager, "allow_hidden", False)
        if not allow_hidden and any(part.startswith(".") for part in Path(rel).parts):
            raise RequestError(f"{shown} is a hidden file.", http_status=403)
        try:
            is_file = path.is_file()
        except OSError:  # a name too long for the file system (ENAMETOOLONG)
            raise unusable from None
        if not is_file:
            raise RequestError(f"No notebook at {_shorten(rel)}.", http_status=404)
        return path, rel

    def read_notebook(self, data: dict[str, Any]) -> Notebook:
        """The notebook the request names: ``data['content']`` (the editor's copy) when
        given, else the file, read only once its path is known to be a notebook in the root."""
        path, _ = self.notebook_path(data)
        content = _object(data, "content", "the notebook", required=False)
        return read(path) if content is None else parse_content(content, path)

    def relative(self, value: Any) -> Any:
        """A path inside the root as root-relative (for links), anything else unchanged."""
        if not isinstance(value, str) or not value:
            return value
        path = Path(value)
        if path.is_absolute() and path.resolve().is_relative_to(self.root):
            return path.resolve().relative_to(self.root).as_posix()
        return value

    def job_json(self, job: Job, since: int = 0) -> dict[str, Any]:
        data = job.to_dict(since)
        if data["result"]:
            result = dict(data["result"])
            config = Path(result.get("build_dir") or "", "src", "monitoring", "config.json")
            result["monitoring_config"] = str(config) if config.is_file() else None
            for key in (*_PATHS, "monitoring_config"):
                result[key] = self.relative(result.get(key))
            data["result"] = result
        return data

    def fail(self, exc: Nb2ProdError) -> None:
        self.set_status(exc.http_status)
        self.finish(json.dumps(exc.to_dict()))


class CheckHandler(_Handler):
    """``POST /nb2prod/check {"path", "content"?}``: what ``nb2prod check --json`` prints.

    With ``content`` (the notebook JSON as the editor holds it, saved or not) that is
    checked instead of the file, so the panel's findings follow the user's edits.
    """

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        try:
            data = self.body()
            path, rel = self.notebook_path(data)
            content = _object(data, "content", "the notebook", required=False)
            checked = await asyncio.to_thread(check, path, content)
        except Nb2ProdError as exc:
            return self.fail(exc)
        answer = checked.to_dict()
        answer["notebook"] = rel
        self.finish(json.dumps(answer))


class BuildHandler(_Handler):
    """``POST /nb2prod/build {"path", "params"}``: start a build job, answer its id.

    A notebook that cannot be read, or a parameter it does not set, is a 400 at once; the
    findings of ``check`` are the job's first stage, as in the CLI.
    """

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        try:
            data = self.body()
            path, rel = self.notebook_path(data)
            params = _params(data.get("params"))
            check_params(await asyncio.to_thread(check, path), params)
            job = self.registry.submit(path, rel, params, out_dir=self.root / "bentos")
        except Nb2ProdError as exc:
            return self.fail(exc)
        self.set_status(202)
        self.finish(json.dumps({"id": job.id, "job": self.job_json(job)}))


class JobsHandler(_Handler):
    """``GET /nb2prod/jobs``: recent jobs, newest first (``?path=`` for one notebook), and the
    build's stages with their labels, so the panel can show the pipeline before any build."""

    @tornado.web.authenticated
    @authorized
    def get(self) -> None:
        wanted = self.get_query_argument("path", None)
        jobs = [j for j in self.registry.jobs() if wanted is None or j.notebook == wanted]
        self.finish(
            json.dumps(
                {
                    "jobs": [self.job_json(j, len(j.log)) for j in jobs],
                    "stages": {s.name: s.label for s in STAGES},
                }
            )
        )


class JobHandler(_Handler):
    """``GET /nb2prod/jobs/<id>[?since=n]``: a job's state, stage and log so far."""

    @tornado.web.authenticated
    @authorized
    def get(self, job_id: str) -> None:
        job = self.registry.get(job_id)
        if job is None:
            return self.fail(RequestError(f"No build job {job_id}.", http_status=404))
        try:
            since = max(0, int(self.get_query_argument("since", "0")))
        except ValueError:
            return self.fail(RequestError('"since" must be a whole number.'))
        self.finish(json.dumps(self.job_json(job, since)))


class TagHandler(_Handler):
    """``POST /nb2prod/tag {"path", "content"?, "source"}``: import Kale or nbdev tags.

    Answers ``{"content", "report"}``: the notebook with nb2prod roles, which the panel puts
    in the editor (nothing is written here), and what was mapped and what was not.
    """

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        from nb2prod.notebook.tagging import import_tags

        try:
            data = self.body()
            source = data.get("source", "auto")
            if source not in TAG_SOURCES:
                raise RequestError('"source" must be "kale", "nbdev" or "auto".')
            _, rel = self.notebook_path(data)
            nb = await asyncio.to_thread(self.read_notebook, data)
            content, report = await asyncio.to_thread(import_tags, nb, source)
        except Nb2ProdError as exc:
            return self.fail(exc)
        answer = {"content": content, "report": {**report.to_dict(), "notebook": rel}}
        self.finish(json.dumps(answer))


class SuggestHandler(_Handler):
    """``POST /nb2prod/suggest {"path", "content"?}``: start a suggest job, answer its id.

    The job runs the notebook in a kernel (tens of seconds); ``GET /nb2prod/jobs/<id>``
    follows it and, once it succeeded, carries the ``suggestion``.
    """

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        try:
            data = self.body()
            path, rel = self.notebook_path(data)
            # An unreadable notebook is refused now, with a 400, rather than by the job.
            await asyncio.to_thread(self.read_notebook, data)
            content = data.get("content")
            job = self.registry.submit_suggest(path, rel, content)
        except Nb2ProdError as exc:
            return self.fail(exc)
        self.set_status(202)
        self.finish(json.dumps({"id": job.id, "job": self.job_json(job)}))


class ApplyHandler(_Handler):
    """``POST /nb2prod/suggest/apply {"content", "suggestion"}``: the notebook with the
    suggestion accepted (the cells it replaces kept as skip cells), as ``{"content"}``."""

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        from nb2prod.suggest import apply

        try:
            data = self.body()
            content = _object(data, "content", "the notebook", required=True)
            suggestion = _object(data, "suggestion", "the suggestion", required=True)
            try:
                applied = await asyncio.to_thread(apply, content, suggestion)
            except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
                # Both come from the client: a suggestion made for other cells, or edited.
                raise RequestError(
                    "The suggestion does not fit this notebook "
                    f"({type(exc).__name__}: {_shorten(str(exc))}); suggest again."
                ) from None
        except Nb2ProdError as exc:
            return self.fail(exc)
        self.finish(json.dumps({"content": applied}))


ROUTES = [
    ("check", CheckHandler),
    ("build", BuildHandler),
    ("tag", TagHandler),
    ("suggest", SuggestHandler),
    ("suggest/apply", ApplyHandler),
    ("jobs", JobsHandler),
    (r"jobs/(?P<job_id>[0-9a-f]+)", JobHandler),
]


def _params(raw: Any) -> dict[str, Any]:
    """Parameter values; strings are read as ``-p NAME VALUE`` reads them (YAML scalars)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise RequestError('"params" must be an object of parameter names to values.')
    texts = [(str(k), v) for k, v in raw.items() if isinstance(v, str)]
    return {**{str(k): v for k, v in raw.items()}, **parse_params(texts, None)}


def _object(data: dict[str, Any], key: str, what: str, *, required: bool) -> Any:
    """``data[key]``, which must be a JSON object (or absent, unless ``required``)."""
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, dict):
        raise RequestError(f'"{key}" must be {what} as a JSON object.')
    return value


def _shorten(text: str) -> str:
    """A request's text for a message: a 5,000-character path is cut in the middle."""
    return text if len(text) <= 120 else f"{text[:60]}…{text[-40:]}"


def setup_handlers(web_app: tornado.web.Application) -> None:
    """Register the routes under ``<base_url>/nb2prod/`` on the server's web app."""
    web_app.settings.setdefault("nb2prod_jobs", JobRegistry())
    base_url = web_app.settings["base_url"]
    handlers = [(url_path_join(base_url, "nb2prod", pattern), cls) for pattern, cls in ROUTES]
    web_app.add_handlers(".*$", handlers)
