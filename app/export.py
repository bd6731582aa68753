"""A conversation as Markdown or JSON, for the Export menu."""

from __future__ import annotations

import json
from typing import Any

from app.store import ChatStore


def to_json(store: ChatStore, conversation_id: int) -> str:
    conv = store.get(conversation_id)
    body: dict[str, Any] = {
        "title": conv.title,
        "system_prompt": conv.system_prompt,
        "thinking": conv.thinking,
        "reasoning_budget": conv.budget,
        "messages": [{"role": m.role, "content": m.content, **({"reasoning": m.reasoning} if m.reasoning else {}),
                      "state": m.state, **({"figures": m.figures} if m.figures else {})}
                     for m in store.path(conversation_id)],
    }
    return json.dumps(body, ensure_ascii=False, indent=2)


def to_markdown(store: ChatStore, conversation_id: int) -> str:
    conv = store.get(conversation_id)
    out = [f"# {conv.title}", ""]
    if conv.system_prompt:
        out += ["**System:** " + conv.system_prompt, ""]
    for m in store.path(conversation_id):
        if m.role == "user":
            out += ["## You", "", m.content, ""]
        else:
            out += ["## Nemotron", ""]
            if m.reasoning:
                quoted = "\n".join("> " + line for line in m.reasoning.splitlines())
                out += ["<details><summary>Reasoning</summary>", "", quoted, "", "</details>", ""]
            out += [m.content, ""]
            if m.state == "interrupted":
                out += ["*(interrupted)*", ""]
    return "\n".join(out)
