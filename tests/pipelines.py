"""Running a DVC pipeline's stages as written, without DVC: each stage's command, interpolated as DVC
interpolates it (``${a.b}`` over params.yaml and the matrix item), run through the CLI in a scratch
copy of the repository's layout, with its dependencies and outputs checked on the way."""

from __future__ import annotations

import itertools
import re
import shlex
from pathlib import Path

import yaml

from replication.cli import main


def lookup(context: dict, dotted: str):
    """``context[a][b]`` for ``a.b``: a name that names nothing raises KeyError."""
    node = context
    for key in dotted.split("."):
        node = node[key]
    return node


def resolve(text: str, context: dict) -> str:
    """DVC's ``${a.b}`` interpolation over ``context`` (params.yaml and the matrix item)."""
    return re.sub(r"\$\{([^}]+)\}", lambda match: str(lookup(context, match.group(1))), text)


def stages(pipeline: Path, params: dict) -> list[tuple[str, dict, dict]]:
    """(name, stage, interpolation context) of every stage of a dvc.yaml, matrices expanded (every
    combination of their axes, in order), in file order."""
    out = []
    for name, stage in yaml.safe_load(pipeline.read_text(encoding="utf-8"))["stages"].items():
        if "matrix" not in stage:
            out.append((name, stage, params))
            continue
        axes = {axis: lookup(params, re.fullmatch(r"\$\{([^}]+)\}", values).group(1)) if isinstance(values, str)
                else values for axis, values in stage["matrix"].items()}
        for combination in itertools.product(*axes.values()):
            item = dict(zip(axes, combination))
            out.append((f"{name}@{'-'.join(map(str, combination))}", stage, {**params, "item": item}))
    return out


def run_stages(pipeline: Path, params: dict) -> list[str]:
    """Run every stage of ``pipeline`` in the current directory (the scratch layout, whose
    params.yaml is ``params``): each dependency must exist before, each output after, each params
    entry must name something (in params.yaml, or in the file a ``FILE: [keys]`` entry names).
    Returns the stage names in the order run."""
    ran = []
    for stage_name, stage, context in stages(pipeline, params):
        assert stage["wdir"] == "../.."
        for dep in stage["deps"]:
            assert Path(resolve(dep, context)).exists(), f"{stage_name}: dependency {dep} is missing"
        for param in stage.get("params", []):
            if isinstance(param, dict):
                ((file, keys),) = param.items()
                other = yaml.safe_load(Path(file).read_text(encoding="utf-8"))
                for key in keys:
                    lookup(other, resolve(key, context))
            else:
                lookup(params, resolve(param, context))  # a params entry that names nothing fails here
        argv = shlex.split(resolve(stage["cmd"], context))
        assert argv[:3] == ["python", "-m", "replication"]
        assert main(argv[3:]) == 0, f"{stage_name}: {stage['cmd']}"
        for out in stage["outs"] + stage.get("metrics", []):
            path = out if isinstance(out, str) else next(iter(out))
            assert Path(resolve(path, context)).exists(), f"{stage_name} did not write {path}"
        ran.append(stage_name)
    return ran
