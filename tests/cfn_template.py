"""One walker over CloudFormation template values, for the tests that read synthesized templates.

A value is plain data (strings, numbers, lists, objects) or an intrinsic function: a one-key object whose key
is `Ref` or `Fn::...`. `transform` rebuilds a value bottom-up and hands each intrinsic to a callback, which
decides what it becomes. The readers built on it:

- `render`: values as readable strings (Ref X -> ${X}, Fn::GetAtt X.Y -> ${X.Y}), for assertions;
- `references`: the logical ids a value depends on, as CloudFormation orders creation and deletion;
- tests/deploy/test_step_contract.py resolves values as CloudFormation would pass them to EMR.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Recurse = Callable[[Any], Any]
OnIntrinsic = Callable[[str, Any, Recurse], Any]

# ${Name}, ${Resource.Attribute} in Fn::Sub text; ${!Literal} is the literal text ${Literal}.
_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


def intrinsic(node: Any) -> tuple[str, Any] | None:
    """(function, argument) when `node` is an intrinsic function, else None."""
    if isinstance(node, dict) and len(node) == 1:
        ((key, arg),) = node.items()
        if key == "Ref" or key.startswith("Fn::"):
            return key, arg
    return None


def transform(node: Any, on_intrinsic: OnIntrinsic) -> Any:
    """`node` rebuilt, each intrinsic replaced by on_intrinsic(function, argument, recurse)."""

    def recurse(value: Any) -> Any:
        if isinstance(value, list):
            return [recurse(item) for item in value]
        found = intrinsic(value)
        if found is not None:
            return on_intrinsic(found[0], found[1], recurse)
        if isinstance(value, dict):
            return {key: recurse(item) for key, item in value.items()}
        return value

    return recurse(node)


def get_att_parts(arg: Any) -> tuple[str, str]:
    """Fn::GetAtt's (logical id, attribute), from [id, attr] or "id.attr"."""
    logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
    return logical_id, attribute


def sub_parts(arg: Any) -> tuple[str, dict[str, Any]]:
    """Fn::Sub's (text, variables), from "text" or [text, {variables}]."""
    return (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])


def sub_names(text: str) -> list[str]:
    """The names Fn::Sub text refers to (Name or Resource.Attribute), literals left out."""
    return [name for name in _SUB_VARIABLE.findall(text) if not name.startswith("!")]


def substitute(text: str, lookup: Callable[[str], str]) -> str:
    """Fn::Sub text with each ${name} replaced by lookup(name); ${!Literal} becomes ${Literal}."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        return "${" + name[1:] + "}" if name.startswith("!") else lookup(name)

    return _SUB_VARIABLE.sub(replace, text)


def render(value: Any) -> Any:
    """CloudFormation values as readable strings: Ref X -> ${X}, GetAtt X.Y -> ${X.Y}, the data bucket's
    name from FruitsData -> ${FruitsData.BucketName}, Fn::Sub kept as its text, Fn::Join joined."""

    def on(function: str, arg: Any, recurse: Recurse) -> Any:
        if function == "Ref":
            return f"${{{arg}}}"
        if function == "Fn::GetAtt":
            return "${" + ".".join(get_att_parts(arg)) + "}"
        if function == "Fn::Sub" and isinstance(arg, str):
            return arg
        if function == "Fn::Join":
            separator, parts = arg
            return separator.join(str(recurse(p)) for p in parts)
        if function == "Fn::GetStackOutput":
            output = arg["OutputName"]
            if output.startswith("PublishOutputRefDataBucket"):
                return "${FruitsData.BucketName}"
            if output.startswith("PublishOutputFnGetAttDataBucket"):
                return "${FruitsData.BucketArn}"
            return f"${{{arg['StackName']}.{output}}}"
        return {function: recurse(arg)}

    return transform(value, on)


def references(value: Any) -> set[str]:
    """Names a value refers to through Ref, Fn::GetAtt and Fn::Sub (logical ids, and pseudo parameters)."""
    found: set[str] = set()

    def on(function: str, arg: Any, recurse: Recurse) -> Any:
        if function == "Ref" and isinstance(arg, str):
            found.add(arg)
        elif function == "Fn::GetAtt":
            found.add(get_att_parts(arg)[0])
        elif function == "Fn::Sub":
            text, variables = sub_parts(arg)
            found.update(name.split(".")[0] for name in sub_names(text))
            recurse(variables)
        else:
            recurse(arg)
        return None

    transform(value, on)
    return found
