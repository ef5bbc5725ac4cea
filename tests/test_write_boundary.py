"""The codebase's own rules, read from the source with ``ast``, so that they hold without anyone remembering.

Four rules, over every module of the app packages (each top-level package of the repository except
``tests`` and the tooling outside the site: ``bench``, ``deploy``, ``loadtest``):

``write``: database writes happen in services. A write is recognised by its method, as far as ``ast`` can
tell without types:

- ``get_or_create``, ``update_or_create`` and every ``bulk_*`` method: always (only the ORM has them here);
- ``.save()``, ``.delete()`` and ``.create()`` with no positional argument: a model instance's, queryset's,
  manager's or model form's never takes one, while the same names on storages, caches, Redis clients, PIL
  images and files always do (``storage.save(name, content)``, ``cache.delete(key)``,
  ``image.save(out, format=...)``);
- ``.update()`` with keyword arguments only (``QuerySet.update(field=value)``), unless its receiver is known
  to be a dict: a name assigned a dict display, a dict comprehension or ``dict(...)``, or annotated ``dict``, in
  the same function or at module level. ``dict.update(other)``, ``set.update(items)``, ``hashlib``'s
  ``update(data)`` and a progress bar's ``update(n)`` take a positional argument and are never flagged;
- raw SQL: ``.execute()`` or ``.executemany()`` of a statement (a literal, an f-string, a concatenation, or
  a name assigned one in the same function or at module level) that starts with INSERT, UPDATE, DELETE,
  TRUNCATE or MERGE.

``super().save(...)`` inside a ``save`` method (a model defining its own save) is not a write site.
Related managers' ``add``/``remove``/``set``/``clear`` are not recognised: those names are too common.

``invalidation``: cache generation bumps and CDN purges happen in services: any function of
``sigma_playground.caching.invalidate``, ``caching.service.bump``, ``cdn.purge.purge_soon``/``send``, the
``cdn.tasks.purge_*`` tasks, and any ``.purge_keys()``/``.purge_url()`` (the CDN backends' methods), resolved
through each module's imports. ``sigma_playground/caching/`` and ``sigma_playground/cdn/`` are the machinery
itself and are not checked.

Services are modules named ``services.py`` or inside a ``services`` package. Neither rule applies to
migrations or to the seeders (bulk loaders of demo and scale data: modules named ``demo.py`` or inside a
``demo`` package, and ``management/commands/seed_*.py``), which write in bulk on purpose. Anything else is an
``ALLOWED`` entry below, named by module, function and rule, with its reason.

``environment``: only ``sigma_playground/settings.py`` reads the environment (``os.environ``,
``os.environb``, ``os.getenv``, and those names imported from ``os``). The one statement allowed elsewhere is
Django's bootstrap, ``os.environ.setdefault("DJANGO_SETTINGS_MODULE", ...)`` (wsgi.py, celery.py): it says
where the settings are, so it cannot go through them. Outside the app packages, ``manage.py``,
``deploy/gunicorn.conf.py`` (which runs in gunicorn's master, without Django), the ``deploy/`` scripts, the
load generator and the benchmarks read the environment to start or drive the site, as tools do.

``cache key``: every cache key is built in ``sigma_playground/caching/keys.py``. A key given to a cache or
Redis call (``get``, ``set``, ``add``, ``incr``, ``delete``, ``hincrby``, ``sadd``, ``expire``, ... on a
receiver named like a cache or a Redis client: ``cache``, ``*_cache``, ``caches[...]``, ``client``,
``pipe``, ``backend()``, ...) must not be built in place: not a string literal, an f-string, a
concatenation or ``%``/``.format()``, nor a name assigned or imported one. Keys that arrive as parameters or
from ``keys.*`` calls pass.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_APP_PACKAGES = {"tests", "bench", "deploy", "loadtest"}

WRITE, INVALIDATION, ENVIRONMENT, CACHE_KEY = "write", "invalidation", "environment", "cache key"


@dataclass(frozen=True)
class Allowed:
    module: str  # path from the repository root
    function: str  # qualified name within the module ("Command.handle", "<module>")
    rule: str
    reason: str


ALLOWED = (
    Allowed(
        "accounts/loadtest.py",
        "create_users",
        WRITE,
        "the load-test accounts' bulk loader (manage.py loadtest_users): thousands of users with one shared "
        "password hash, in one transaction; a tool, like the seeders",
    ),
    Allowed(
        "workbooks/management/commands/loadtest_cleanup.py",
        "Command.handle",
        WRITE,
        "removes the load-test users in bulk (--users) after their workbooks and favorites went through the "
        "services; load-test users have no cached pages anyone reads",
    ),
    Allowed(
        "monitoring/management/commands/cdn.py",
        "Command._purge",
        INVALIDATION,
        "an operator's manual purge (manage.py cdn purge --key/--url), sent at once through the backend; it "
        "follows no write, so there is no service to own it",
    ),
)


@dataclass(frozen=True)
class Violation:
    module: str
    function: str
    rule: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} in {self.function}: {self.rule}: {self.what}"


# --- Which modules -------------------------------------------------------------------------------------


def app_modules() -> list[str]:
    packages = sorted(
        p.name for p in ROOT.iterdir() if (p / "__init__.py").exists() and p.name not in NOT_APP_PACKAGES
    )
    return sorted(
        path.relative_to(ROOT).as_posix() for package in packages for path in (ROOT / package).rglob("*.py")
    )


def is_service(module: str) -> bool:
    parts = module.split("/")
    return parts[-1] == "services.py" or "services" in parts[:-1]


def is_migration(module: str) -> bool:
    return "migrations" in module.split("/")[:-1]


def is_seeder(module: str) -> bool:
    parts = module.split("/")
    return (
        parts[-1] == "demo.py"
        or "demo" in parts[:-1]
        or (parts[-3:-1] == ["management", "commands"] and parts[-1].startswith("seed_"))
    )


def is_invalidation_machinery(module: str) -> bool:
    return module.startswith(("sigma_playground/caching/", "sigma_playground/cdn/"))


def module_name(module: str) -> str:
    return module.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


# --- Reading a module ----------------------------------------------------------------------------------

STRING_BUILDERS = (ast.JoinedStr,)
SQL_WRITE = re.compile(r"^\s*\(?\s*(INSERT|UPDATE|DELETE|TRUNCATE|MERGE)\b", re.IGNORECASE)
CACHE_METHODS = frozenset(
    {
        "get", "set", "add", "incr", "decr", "delete", "get_many", "set_many", "delete_many", "touch",
        "get_or_set", "has_key", "hget", "hset", "hincrby", "hgetall", "hvals", "hdel", "sadd", "srem",
        "smembers", "sismember", "zadd", "zrem", "zrange", "zrangebyscore", "zscore", "expire", "pexpire",
        "rename", "exists", "setex", "psetex", "getdel", "getset", "mget", "lpush", "rpush", "lrange", "ttl",
        "pttl", "incrby",
    }
)  # fmt: skip
MULTI_KEY_METHODS = frozenset({"get_many", "delete_many", "mget"})
CACHE_RECEIVER = re.compile(r"(^|_)cache$|^(client|pipe|pipeline|redis|conn)$", re.IGNORECASE)
BACKEND_CALLS = frozenset({"backend", "durable", "get_redis_connection"})
INVALIDATORS_PREFIXES = ("sigma_playground.caching.invalidate.", "sigma_playground.cdn.tasks.purge_")
INVALIDATORS = frozenset(
    {
        "sigma_playground.caching.service.bump",
        "sigma_playground.cdn.purge.purge_soon",
        "sigma_playground.cdn.purge.send",
    }
)
PURGE_METHODS = frozenset({"purge_keys", "purge_url"})


def _imports(tree: ast.Module, module: str) -> dict[str, str]:
    """Local name -> what it refers to, dotted ("os.environ", "sigma_playground.caching.invalidate")."""
    package = module_name(module).split(".")
    if not module.endswith("__init__.py"):
        package = package[:-1]
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    names[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], *([base] if base else [])])
            for alias in node.names:
                names[alias.asname or alias.name] = f"{base}.{alias.name}"
    return names


def _assignments(body: list[ast.stmt]) -> dict[str, list[ast.expr]]:
    """Name -> the expressions assigned to it (and annotations) in these statements, not entering nested
    functions or classes."""
    found: dict[str, list[ast.expr]] = {}
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found.setdefault(target.id, []).append(node.value)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            found.setdefault(node.target.id, []).append(node.annotation)
            if node.value is not None:
                found[node.target.id].append(node.value)
        stack.extend(ast.iter_child_nodes(node))
    return found


def _dotted(node: ast.expr) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _literal_text(node: ast.expr) -> str | None:
    """The constant text of a string expression built in place (f-string parts as "{}"), or None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _literal_text(node.left), _literal_text(node.right)
        if left is None and right is None:
            return None
        return (left or "{}") + (right or "{}")
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return _literal_text(node.left)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in {"format", "join"}
        and isinstance(node.func.value, ast.Constant)
        and isinstance(node.func.value.value, str)
    ):
        return node.func.value.value
    return None


def _is_dict(node: ast.expr) -> bool:
    if isinstance(node, ast.Dict | ast.DictComp):
        return True
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        return True
    annotation = node.value if isinstance(node, ast.Subscript) else node
    return isinstance(annotation, ast.Name) and annotation.id in {"dict", "Dict"}


class _Checker(ast.NodeVisitor):
    def __init__(self, module: str, tree: ast.Module, constants: ConstantIndex) -> None:
        self.module = module
        self.imports = _imports(tree, module)
        self.module_assigns = _assignments(tree.body)
        self.constants = constants
        self.scopes: list[tuple[str, dict[str, list[ast.expr]]]] = []
        self.violations: list[Violation] = []
        self.check_writes = not (is_service(module) or is_migration(module) or is_seeder(module))
        self.check_invalidation = self.check_writes and not is_invalidation_machinery(module)
        self.check_environment = module != "sigma_playground/settings.py"
        self.check_keys = module != "sigma_playground/caching/keys.py"
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                child.parent = node  # type: ignore[attr-defined]

    # Scopes -----------------------------------------------------------------------------------------------

    def _function(self) -> str:
        return ".".join(name for name, _ in self.scopes) or "<module>"

    def _enter(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        body = node.body if not isinstance(node, ast.ClassDef) else []
        self.scopes.append((node.name, _assignments(body)))
        self.generic_visit(node)
        self.scopes.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _enter

    def _assigned(self, name: str) -> list[ast.expr]:
        for _, assigns in reversed(self.scopes):
            if name in assigns:
                return assigns[name]
        return self.module_assigns.get(name, [])

    def _report(self, node: ast.AST, rule: str, what: str) -> None:
        self.violations.append(Violation(self.module, self._function(), rule, node.lineno, what))  # type: ignore[attr-defined]

    # Calls ------------------------------------------------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Attribute):
            method, receiver = node.func.attr, node.func.value
            if self.check_writes:
                self._write(node, method, receiver)
            if self.check_invalidation and method in PURGE_METHODS:
                self._report(node, INVALIDATION, f".{method}()")
            if self.check_keys and method in CACHE_METHODS and self._cache_receiver(receiver):
                self._key(node, method)
        if self.check_invalidation:
            target = self._resolve(node.func)
            if target and (target in INVALIDATORS or target.startswith(INVALIDATORS_PREFIXES)):
                self._report(node, INVALIDATION, f"{target}()")
        self.generic_visit(node)

    def _resolve(self, func: ast.expr) -> str | None:
        dotted = _dotted(func)
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        if head not in self.imports:
            return None
        return f"{self.imports[head]}.{rest}" if rest else self.imports[head]

    def _write(self, node: ast.Call, method: str, receiver: ast.expr) -> None:
        positional = bool(node.args)
        if method in {"get_or_create", "update_or_create"} or method.startswith("bulk_"):
            self._report(node, WRITE, f".{method}()")
        elif method in {"save", "delete", "create"} and not positional:
            if self._super_in_own_method(node, method, receiver):
                return
            self._report(node, WRITE, f".{method}()")
        elif method == "update" and not positional and node.keywords and not self._known_dict(receiver):
            self._report(node, WRITE, ".update(...)")
        elif method in {"execute", "executemany"} and node.args:
            text = self._text(node.args[0])
            if text is not None and SQL_WRITE.match(text):
                self._report(node, WRITE, f"raw SQL {text.split()[0].upper()}")

    def _super_in_own_method(self, node: ast.Call, method: str, receiver: ast.expr) -> bool:
        is_super = (
            isinstance(receiver, ast.Call)
            and isinstance(receiver.func, ast.Name)
            and receiver.func.id == "super"
        )
        return is_super and bool(self.scopes) and self.scopes[-1][0] == method

    def _known_dict(self, receiver: ast.expr) -> bool:
        return isinstance(receiver, ast.Name) and any(_is_dict(v) for v in self._assigned(receiver.id))

    def _text(self, node: ast.expr) -> str | None:
        text = _literal_text(node)
        if text is None and isinstance(node, ast.Name):
            for value in self._assigned(node.id):
                text = _literal_text(value)
                if text is not None:
                    break
        return text

    def _cache_receiver(self, receiver: ast.expr) -> bool:
        if isinstance(receiver, ast.Subscript):
            return _dotted(receiver.value) in {"caches"}
        if isinstance(receiver, ast.Call):
            called = _dotted(receiver.func) or ""
            return called.rsplit(".", 1)[-1] in BACKEND_CALLS
        dotted = _dotted(receiver)
        if dotted is None:
            return False
        last = dotted.rsplit(".", 1)[-1]
        return bool(CACHE_RECEIVER.search(last))

    def _key(self, node: ast.Call, method: str) -> None:
        if not node.args:
            return
        first = node.args[0]
        candidates = (
            first.elts if method in MULTI_KEY_METHODS and isinstance(first, ast.List | ast.Tuple) else [first]
        )
        for key in candidates:
            if self._built_key(key):
                self._report(node, CACHE_KEY, f".{method}() of a key built outside caching/keys.py")
                return

    def _built_key(self, key: ast.expr) -> bool:
        if _literal_text(key) is not None:
            return True
        if not isinstance(key, ast.Name):
            return False
        if any(_literal_text(value) is not None for value in self._assigned(key.id)):
            return True
        imported = self.imports.get(key.id)
        return imported is not None and self.constants.is_string(imported)

    # The environment --------------------------------------------------------------------------------------

    def visit_Attribute(self, node: ast.Attribute) -> None:
        reads = self._resolve(node) in {"os.environ", "os.environb", "os.getenv"}
        if self.check_environment and reads and not self._bootstrap(node):
            self._report(node, ENVIRONMENT, _dotted(node) or "os.environ")
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if self.check_environment and self.imports.get(node.id) in {"os.environ", "os.environb", "os.getenv"}:
            self._report(node, ENVIRONMENT, f"{node.id} (from os)")

    @staticmethod
    def _bootstrap(node: ast.Attribute) -> bool:
        """``os.environ.setdefault("DJANGO_SETTINGS_MODULE", ...)``: Django's bootstrap."""
        method = getattr(node, "parent", None)
        call = getattr(method, "parent", None)
        return (
            isinstance(method, ast.Attribute)
            and method.attr == "setdefault"
            and isinstance(call, ast.Call)
            and bool(call.args)
            and isinstance(call.args[0], ast.Constant)
            and call.args[0].value == "DJANGO_SETTINGS_MODULE"
        )


class ConstantIndex:
    """Whether an imported name is a module-level string constant of an app module (a key built there)."""

    def __init__(self, sources: dict[str, str]) -> None:
        self.sources = {module_name(path): source for path, source in sources.items()}
        self._assigns: dict[str, dict[str, list[ast.expr]]] = {}

    def is_string(self, dotted: str) -> bool:
        module, _, name = dotted.rpartition(".")
        if module == "sigma_playground.caching.keys" or module not in self.sources:
            return False
        if module not in self._assigns:
            self._assigns[module] = _assignments(ast.parse(self.sources[module]).body)
        return any(_literal_text(value) is not None for value in self._assigns[module].get(name, []))


def check(module: str, source: str, constants: ConstantIndex | None = None) -> list[Violation]:
    """The violations of every rule in one module's source (``module``: its path from the repository root,
    which decides the exemptions)."""
    tree = ast.parse(source)
    checker = _Checker(module, tree, constants or ConstantIndex({}))
    checker.visit(tree)
    return checker.violations


def all_violations() -> Iterator[Violation]:
    sources = {module: (ROOT / module).read_text() for module in app_modules()}
    constants = ConstantIndex(sources)
    for module, source in sources.items():
        yield from check(module, source, constants)


def _allowed(violation: Violation) -> bool:
    return any(
        (a.module, a.function, a.rule) == (violation.module, violation.function, violation.rule)
        for a in ALLOWED
    )


def test_the_app_packages_keep_the_rules():
    found = [v for v in all_violations() if not _allowed(v)]
    assert not found, "\n".join(
        ["Outside the rules (see this module's docstring; move the code, or allow it with a reason):"]
        + [str(v) for v in found]
    )


def test_every_allowed_exception_is_still_needed():
    found = {(v.module, v.function, v.rule) for v in all_violations()}
    stale = [a for a in ALLOWED if (a.module, a.function, a.rule) not in found]
    assert not stale, f"no longer needed, remove from ALLOWED: {stale}"


def test_the_checker_sees_the_services_tasks_and_packages_it_should():
    modules = app_modules()
    assert {"workbooks/services.py", "workbooks/tasks.py", "monitoring/capacity/services.py"} <= set(modules)
    assert not any(m.startswith(("tests/", "bench/", "deploy/", "loadtest/")) for m in modules)
    assert is_service("monitoring/capacity/services.py") and is_service("workbooks/services/views.py")
    assert is_seeder("workbooks/demo.py") and is_seeder("workbooks/demo/loader.py")
    assert is_seeder("workbooks/management/commands/seed_demo.py") and not is_seeder("workbooks/tasks.py")


WRITES = """
import os
from django.core.cache import cache
from django.db import connection
from sigma_playground.caching import invalidate, service
from sigma_playground.cdn import purge
from workbooks.models import Tag, Workbook

PREFIX_KEY = "gallery:prefix"
INSERT = "INSERT INTO workbooks_tag (name) VALUES (%s)"


def rename(tag, name, form):
    tag.name = name
    tag.save(update_fields=["name"])
    Workbook.objects.filter(tags=tag).update(tag_names=name)
    qs = Workbook.objects.filter(pk__in=[1, 2])
    qs.update(is_featured=True)
    Tag.objects.create(name="new", slug="new")
    Tag.objects.get_or_create(slug="x")
    Tag.objects.update_or_create(slug="y", defaults={})
    Tag.objects.bulk_update([tag], ["name"])
    form.save()
    tag.delete()
    with connection.cursor() as cursor:
        cursor.execute(INSERT, ["z"])
        cursor.execute(f"DELETE FROM workbooks_tag WHERE id = {tag.pk}")
    invalidate.lists_changed()
    service.bump("lists")
    purge.purge_soon(["lists"])


def settings_by_hand():
    return os.environ.get("DEBUG"), os.getenv("HOME")


def keys_by_hand(user_id, visitor):
    cache.set(f"profile:{user_id}", 1)
    key = "views:" + visitor
    cache.add(key, 1)
    cache.get(PREFIX_KEY)
"""


def test_the_checker_reports_each_kind_of_violation():
    found = check("workbooks/views.py", WRITES)
    by_rule = {
        rule: [v.what for v in found if v.rule == rule]
        for rule in (WRITE, INVALIDATION, ENVIRONMENT, CACHE_KEY)
    }
    assert by_rule[WRITE] == [
        ".save()", ".update(...)", ".update(...)", ".create()", ".get_or_create()", ".update_or_create()",
        ".bulk_update()", ".save()", ".delete()", "raw SQL INSERT", "raw SQL DELETE",
    ]  # fmt: skip
    assert by_rule[INVALIDATION] == [
        "sigma_playground.caching.invalidate.lists_changed()",
        "sigma_playground.caching.service.bump()",
        "sigma_playground.cdn.purge.purge_soon()",
    ]
    assert by_rule[ENVIRONMENT] == ["os.environ", "os.getenv"]
    assert len(by_rule[CACHE_KEY]) == 3
    assert {v.function for v in found} == {"rename", "settings_by_hand", "keys_by_hand"}


def test_an_imported_string_key_is_seen_across_modules():
    constants = ConstantIndex({"monitoring/tasks.py": 'HEARTBEAT = "monitoring:heartbeat"\n'})
    source = (
        "from django.core.cache import cache\nfrom monitoring.tasks import HEARTBEAT\ncache.get(HEARTBEAT)\n"
    )
    assert [v.rule for v in check("monitoring/diagnosis.py", source, constants)] == [CACHE_KEY]


def test_services_migrations_and_seeders_may_write_and_invalidate():
    for module in (
        "workbooks/services.py",
        "monitoring/capacity/services.py",
        "workbooks/migrations/0002_search.py",
        "workbooks/demo.py",
        "workbooks/demo/loader.py",
        "workbooks/management/commands/seed_demo.py",
    ):
        found = {v.rule for v in check(module, WRITES)}
        assert found == {ENVIRONMENT, CACHE_KEY}, module


def test_the_environment_and_the_keys_have_their_one_module():
    assert {v.rule for v in check("sigma_playground/settings.py", WRITES)} == {WRITE, INVALIDATION, CACHE_KEY}
    # keys.py is also part of the invalidation machinery (sigma_playground/caching/).
    assert {v.rule for v in check("sigma_playground/caching/keys.py", WRITES)} == {WRITE, ENVIRONMENT}


NOT_WRITES = """
import hashlib
import os
from os import environ
from django.core.cache import cache
from django.core.files.storage import default_storage
from sigma_playground.caching import keys


class Workbook:
    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)


def harmless(image, out, progress, names, key, pk):
    params: dict[str, object] = {"quality": 80}
    params.update(optimize=True)
    data = {"a": 1}
    data.update(b=2)
    seen = set()
    seen.update(names)
    digest = hashlib.sha256()
    digest.update(b"x")
    progress.update(3)
    image.save(out, format="PNG")
    default_storage.save("thumbs/x.webp", out)
    default_storage.delete("thumbs/x.webp")
    cache.delete(key)
    cache.set(keys.rate_limit("signup", "addr", 1), 1)
    lock = keys.linkcheck_lock()
    cache.add(lock, "1")
    row = {"id": pk}
    row.get("id")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sigma_playground.settings")
    cursor.execute("SELECT 1 FROM workbooks_workbook WHERE id = %s", [pk])
"""


def test_the_checker_leaves_non_orm_calls_alone():
    found = check("workbooks/thumbnails.py", NOT_WRITES)
    assert [str(v) for v in found] == [], "false positives"


def test_a_name_imported_from_os_is_an_environment_read():
    found = check("monitoring/exposition.py", "from os import environ\nDIR = environ.get('X')\n")
    assert [(v.rule, v.function) for v in found] == [(ENVIRONMENT, "<module>")]
