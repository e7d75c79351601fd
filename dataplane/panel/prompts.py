"""The panel's prompt templates: the default judge and synthesizer prompts, and how a template is filled.

A template is plain text with named placeholders: `{question}` (the client's conversation as a transcript),
`{answers}` (the surviving members' answers, numbered), `{analysis}` (the judge's analysis; synthesizer only)
and `{count}` (how many answers). Only these names are replaced: any other brace in a template, or in the
conversation and answers pasted into it, stays as written (so `str.format` and its `KeyError`s are avoided).
A route overrides a default with `panel.judge_template` / `panel.synthesizer_template`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "DEFAULT_JUDGE_TEMPLATE",
    "DEFAULT_SYNTHESIZER_TEMPLATE",
    "PLACEHOLDERS",
    "TemplateError",
    "check_template",
    "render",
    "transcript",
    "numbered_answers",
]

PLACEHOLDERS = ("question", "answers", "analysis", "count")

DEFAULT_JUDGE_TEMPLATE = """\
You are the judge of a panel of {count} independent assistants who each answered the same request.
Do not answer the request yourself. Compare the answers and report, concisely:
1. Agreements: the points the answers share.
2. Contradictions: where they disagree, and which side is better supported and why.
3. Gaps and errors: what any answer misses or gets wrong.
4. Ranking: the answers from most to least reliable, with one line each.

The request:
<request>
{question}
</request>

The panel's answers:
{answers}
"""

DEFAULT_SYNTHESIZER_TEMPLATE = """\
Write the single best final answer to the request below. A panel of {count} assistants answered it
independently and a judge compared their answers. Keep what they agree on, settle contradictions the way
the judge's analysis supports, fill the gaps it found and drop the errors. Answer the request directly, in
the format it asks for; do not mention the panel, the judge or the individual answers.

The request:
<request>
{question}
</request>

The panel's answers:
{answers}

The judge's analysis:
<analysis>
{analysis}
</analysis>
"""

_NAME = re.compile(r"\{([a-z_]+)\}")


class TemplateError(ValueError):
    """A template that cannot serve its stage; `field` names the config field (`routes.x.panel.judge_template`)."""

    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem
        super().__init__(f"{field}: {problem}")


def check_template(text: str, field: str, required: Sequence[str] = ("answers",)) -> None:
    """Raise TemplateError when `text` misses a required placeholder or names an unknown one."""
    names = set(_NAME.findall(text))
    unknown = sorted(n for n in names if n not in PLACEHOLDERS)
    if unknown:
        raise TemplateError(
            field, f"unknown placeholder {{{unknown[0]}}}; known: " + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
        )
    missing = [r for r in required if r not in names]
    if missing:
        raise TemplateError(
            field, f"the template must contain {{{missing[0]}}} (the stage would not see the panel's work)"
        )


def render(text: str, values: Mapping[str, str]) -> str:
    """Fill the known placeholders in one pass (a value containing `{answers}` is never expanded again)."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        return values[name] if name in values else m.group(0)

    return _NAME.sub(sub, text)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones, name the others
        out: list[str] = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                out.append(part["text"])
            elif isinstance(part, dict) and isinstance(part.get("type"), str):
                out.append(f"[{part['type']}]")
        return "\n".join(out)
    return ""


def transcript(messages: Sequence[Any]) -> str:
    """The client's conversation as plain text; a single user message is given as is."""
    msgs = [m for m in messages if isinstance(m, dict)]
    if len(msgs) == 1 and msgs[0].get("role") == "user":
        return _content_text(msgs[0].get("content"))
    lines = []
    for m in msgs:
        role = m.get("role") if isinstance(m.get("role"), str) else "user"
        lines.append(f"{role}: {_content_text(m.get('content'))}")
    return "\n\n".join(lines)


def numbered_answers(answers: Sequence[str]) -> str:
    """Answers as `<answer n="1">…</answer>` blocks: anonymous, so the judge weighs content, not a brand."""
    return "\n\n".join(f'<answer n="{i}">\n{a.strip()}\n</answer>' for i, a in enumerate(answers, 1))
