"""Reading `turnout.yaml` into a `Config`: YAML, `${ENV}` expansion, and errors that say where and how to fix.

Every mistake becomes a `ConfigError` naming the file, the dotted field path, the problem and the fix,
e.g. `turnout.yaml: routes.frontier.targets[2]: unknown target 'acme/x'; known: ...`. Every mistake of a file is
reported at once (a `ConfigProblems` when there are several: all unset variables, all unknown targets...), so
one `turnout config check` run lists what to fix. A secret that came from the environment is never quoted back.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from controlplane.config import Config, FieldProblem, FieldProblems, route_problems_of_raw
from controlplane.errors import ConfigError, config_problems

__all__ = ["load_config", "parse_config", "config_hash"]

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_env(node: Any, path: str, file: str, env: dict[str, str], missing: list[ConfigError]) -> Any:
    """Replace `${VAR}` in every string. A missing variable is appended to `missing` (naming it and the field)
    and left empty, so the rest of the file is still checked and every mistake is reported in one run."""
    if isinstance(node, dict):
        return {k: _expand_env(v, _join(path, str(k)), file, env, missing) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_env(v, _item_path(path, i, v), file, env, missing) for i, v in enumerate(node)]
    if isinstance(node, str):

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in env:
                missing.append(
                    ConfigError(
                        file, path, f"environment variable {name} is not set", f"export {name}=… before starting"
                    )
                )
                return ""
            return env[name]

        return _ENV.sub(sub, node)
    return node


def _item_path(path: str, i: int, item: Any) -> str:
    """`providers[0]` → `providers.openai` when the item has an id/name (same paths as validation errors)."""
    label = (item.get("id") or item.get("name")) if isinstance(item, dict) else None
    if isinstance(label, str) and path.rsplit(".", 1)[-1] in ("providers", "routes", "models"):
        return f"{path}.{label}"
    return f"{path}[{i}]"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _friendly_path(loc: tuple[int | str, ...], raw: Any) -> str:
    """('providers', 0, 'adapter') → 'providers.openai.adapter' when the item has an id/name."""
    out: list[str] = []
    node = raw
    for part in loc:
        if isinstance(part, int):
            item = node[part] if isinstance(node, list) and part < len(node) else None
            label = item.get("id") or item.get("name") if isinstance(item, dict) else None
            if isinstance(label, str) and out and out[-1] in ("providers", "routes", "models"):
                out.append(f".{label}")
            else:
                out.append(f"[{part}]")
            node = item
        else:
            out.append(f".{part}" if out else str(part))
            node = node.get(part) if isinstance(node, dict) else None
    return "".join(out)


def _fix_for(err_type: str, field: str) -> str:
    if err_type == "extra_forbidden":
        return "remove it or check the spelling against the configuration reference"
    if err_type == "missing":
        return "add this required field"
    if "duration" in field or err_type == "value_error" and "duration" in field:
        return "use e.g. '500ms', '15s', '5m', '1h'"
    return ""


def parse_config(text: str, source: str = "<memory>", env: dict[str, str] | None = None) -> Config:
    """Parse and validate YAML text; raise ConfigError (file, field, problem, fix) on any mistake."""
    try:
        raw = yaml.safe_load(text)
    except RecursionError:  # e.g. "[[[[…" thousands deep: PyYAML recurses once per level
        raise ConfigError(
            source, "", "the YAML is nested too deeply", "a config is a few levels deep; check the brackets"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            source, where, f"not valid YAML: {getattr(exc, 'problem', exc)}", "fix the YAML syntax"
        ) from None
    except ValueError:  # PyYAML converts scalars itself: e.g. an integer of more than 4300 digits
        raise ConfigError(source, "", "not valid YAML: a number too large to read", "use a reasonable number") from None
    if raw is None:
        raise ConfigError(source, "", "the file is empty", "start from examples/turnout.yaml")
    if not isinstance(raw, dict):
        raise ConfigError(source, "", "the top level must be a mapping of sections", "start from examples/turnout.yaml")
    env = dict(os.environ) if env is None else env
    missing: list[ConfigError] = []
    try:
        expanded = _expand_env(raw, "", source, env, missing)
    except RecursionError:  # an alias that contains itself (`a: &a [*a]`) is an endless structure
        raise ConfigError(
            source, "", "the YAML refers to itself (a recursive alias) or is nested too deeply", "remove the alias loop"
        ) from None
    try:
        cfg = Config.model_validate(expanded)
    except ValidationError as exc:
        unset = {m.field for m in missing}  # an emptied ${VAR} may fail its field's check: the cause is reported
        found = _problems(exc, source, raw)
        seen = {(p.field, p.problem) for p in found}
        found += [  # cross-checks pydantic skipped because a field failed
            ConfigError(source, f.field, f.problem, f.fix)
            for f in route_problems_of_raw(expanded)
            if (f.field, f.problem) not in seen
        ]
        found = [p for p in found if p.field not in unset]
        raise config_problems([*missing, *(_redacted(p, raw, env) for p in found)]) from None
    if missing:
        raise config_problems(missing)
    digest = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return cfg.model_copy(update={"source": source, "hash": digest})


def _redacted(err: ConfigError, raw: Any, env: dict[str, str]) -> ConfigError:
    """Replace every `${VAR}` value the file used with the reference itself: a key put in the wrong field (say
    `base_url: ${OPENAI_API_KEY}`) must not be printed by the error that field's check raises."""
    names: set[str] = set()
    stack = [raw]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str):
            names.update(_ENV.findall(node))
    problem = err.problem
    for name in sorted(names, key=lambda n: -len(env.get(n, ""))):
        value = env.get(name, "")
        if len(value) >= 4:  # shorter values are not secrets, and replacing them would garble the message
            problem = problem.replace(value, f"${{{name}}}")
    return err if problem == err.problem else ConfigError(err.file, err.field, problem, err.fix)


def _problems(exc: ValidationError, source: str, raw: Any) -> list[ConfigError]:
    """Every validation error as a ConfigError with a friendly dotted path, in pydantic's (file) order."""
    problems: list[ConfigError] = []
    for e in exc.errors(include_url=False):
        ctx_err = (e.get("ctx") or {}).get("error")
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        if isinstance(ctx_err, FieldProblem):
            # A nested model's own check names its field; the location says whose (providers.bedrock-eu.region).
            # A check that found several problems reports them all (FieldProblems).
            where = _friendly_path(loc, raw) if loc else ""
            found = ctx_err.problems if isinstance(ctx_err, FieldProblems) else [ctx_err]
            problems.extend(
                ConfigError(source, f"{where}.{f.field}" if where else f.field, f.problem, f.fix) for f in found
            )
            continue
        field = _friendly_path(loc, raw)
        msg = str(e["msg"]).removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = f"unknown field {str(loc[-1])!r}"
        elif "input" in e and e["type"] not in ("missing",) and not isinstance(e["input"], dict | list):
            msg = f"{msg} (got {e['input']!r})" if "got" not in msg else msg
        problems.append(ConfigError(source, field, msg, _fix_for(e["type"], field)))
    return problems


def load_config(path: str | Path, env: dict[str, str] | None = None) -> Config:
    """Read and validate a config file; raise ConfigError naming the file on any mistake."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "", "file not found", "pass -c path/to/turnout.yaml") from None
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror}", "") from None
    return parse_config(text, source=p.name if p.parent == Path(".") else str(path), env=env)


def config_hash(cfg: Config) -> str:
    return cfg.hash
