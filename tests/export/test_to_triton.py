"""export.to_triton: the generated config.pbtxt parses and matches the ONNX graphs."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from export.to_triton import preferred_batch_sizes, write_repository
from tests.export.factory import exported_bundle, make_tiny_bundle

REPO = Path(__file__).resolve().parents[2]
TOKEN = re.compile(r'\s*(?:(#[^\n]*)|("(?:[^"\\]|\\.)*")|([{}\[\]:,])|([^\s{}\[\]:,"]+))')


def parse_pbtxt(text):
    """Tiny parser for the protobuf text-format subset Triton configs use: ``key: value``,
    ``key { ... }``, ``key [ v, ... ]`` and ``key [ { ... }, ... ]``. Repeated keys and lists
    become Python lists; strings are unquoted; numbers become ints."""
    tokens = []
    pos = 0
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise ValueError(f"bad token at {pos}: {text[pos:pos + 20]!r}")
        pos = m.end()
        if m.group(1):
            continue
        tokens.append(m.group(2) or m.group(3) or m.group(4))
    it = iter(tokens + [None])
    tok = [next(it)]

    def peek():
        return tok[0]

    def take(expected=None):
        t = tok[0]
        if expected is not None and t != expected:
            raise ValueError(f"expected {expected!r}, got {t!r}")
        tok[0] = next(it)
        return t

    def scalar(t):
        if t.startswith('"'):
            return t[1:-1]
        return int(t) if re.fullmatch(r"-?\d+", t) else t

    def message(end):
        out = {}
        while peek() != end:
            key = take()
            if peek() == ":":
                take(":")
            if peek() == "{":
                take("{")
                val = message("}")
                take("}")
            elif peek() == "[":
                take("[")
                val = []
                while peek() != "]":
                    if peek() == "{":
                        take("{")
                        val.append(message("}"))
                        take("}")
                    else:
                        val.append(scalar(take()))
                    if peek() == ",":
                        take(",")
                take("]")
            else:
                val = scalar(take())
            if key in out:
                out[key] = (out[key] if isinstance(out[key], list) else [out[key]]) + [val]
            else:
                out[key] = val
        return out

    return message(None)


def onnx_io(path):
    import onnx

    m = onnx.load(str(path))
    types = {1: "TYPE_FP32", 2: "TYPE_UINT8"}

    def conv(values):
        return {v.name: (types[v.type.tensor_type.elem_type],
                         [d.dim_value for d in v.type.tensor_type.shape.dim][1:])
                for v in values}
    return conv(m.graph.input), conv(m.graph.output)


def test_parser_itself():
    cfg = parse_pbtxt('name: "x"  # comment\nmax_batch_size: 4\ninput [ { name: "a" dims: [ 1, 2 ] } ]\n'
                      "dynamic_batching { preferred_batch_size: [ 2, 4 ] }")
    assert cfg == {"name": "x", "max_batch_size": 4, "input": [{"name": "a", "dims": [1, 2]}],
                   "dynamic_batching": {"preferred_batch_size": [2, 4]}}


@pytest.mark.parametrize("arch", ["unet", "apnet"])
def test_repository_matches_onnx_graphs(tmp_path, arch):
    bundle, _, _ = exported_bundle(arch)
    repo = write_repository(bundle.path, tmp_path / "repo", max_batch=16, instances=2, gpus=[0, 1])
    for graph, model_name in (("visual", "streambin_visual"), ("audio", "streambin_audio")):
        mdir = repo / model_name
        cfg = parse_pbtxt((mdir / "config.pbtxt").read_text())
        assert cfg["name"] == model_name
        assert cfg["platform"] == "onnxruntime_onnx"
        assert cfg["max_batch_size"] == 16
        assert (mdir / "1" / "model.onnx").read_bytes() == bundle.graphs[graph].read_bytes()
        ins, outs = onnx_io(mdir / "1" / "model.onnx")
        got_in = {t["name"]: (t["data_type"], t["dims"]) for t in cfg["input"]}
        got_out = {t["name"]: (t["data_type"], t["dims"]) for t in cfg["output"]}
        assert got_in == ins and got_out == outs
        assert cfg["dynamic_batching"]["preferred_batch_size"] == [2, 4, 8, 16]
        assert cfg["dynamic_batching"]["max_queue_delay_microseconds"] == 200
        group = cfg["instance_group"]
        assert group == [{"count": 2, "kind": "KIND_GPU", "gpus": [0, 1]}]
    # the contract's shapes, spelled out once
    audio = parse_pbtxt((repo / "streambin_audio" / "config.pbtxt").read_text())
    spec = next(t for t in audio["input"] if t["name"] == "spec")
    assert spec["dims"] == [2, 257, 64] and spec["data_type"] == "TYPE_FP32"
    mask = audio["output"][0] if isinstance(audio["output"], list) else audio["output"]
    assert mask["dims"] == [bundle.n_masks, 2, 257, 64]
    visual = parse_pbtxt((repo / "streambin_visual" / "config.pbtxt").read_text())
    assert visual["input"][0]["data_type"] == "TYPE_UINT8"
    assert visual["input"][0]["dims"] == [32, 64, 3]
    assert (repo / "streambin_audio" / "streambin_config.json").is_file()


def test_cpu_instances_and_cli(tmp_path):
    bundle = make_tiny_bundle(tmp_path / "b")
    r = subprocess.run([sys.executable, "-m", "export.to_triton", "--bundle", str(bundle),
                        "--out", str(tmp_path / "repo"), "--cpu", "--max-batch", "1",
                        "--instances", "3"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    cfg = parse_pbtxt((tmp_path / "repo" / "streambin_audio" / "config.pbtxt").read_text())
    assert cfg["instance_group"] == [{"count": 3, "kind": "KIND_CPU"}]
    assert cfg["max_batch_size"] == 1
    assert "preferred_batch_size" not in cfg["dynamic_batching"]


def test_refuses_foreign_directory_and_bad_args(tmp_path):
    bundle = make_tiny_bundle(tmp_path / "b")
    out = tmp_path / "repo"
    out.mkdir()
    (out / "other_model").mkdir()
    with pytest.raises(ValueError, match="holds other entries"):
        write_repository(bundle, out)
    with pytest.raises(ValueError, match="--max-batch"):
        write_repository(bundle, tmp_path / "r2", max_batch=0)
    with pytest.raises(ValueError, match="--gpus"):
        write_repository(bundle, tmp_path / "r2", gpus=[0], cpu=True)


def test_preferred_batch_sizes():
    assert preferred_batch_sizes(1) == []
    assert preferred_batch_sizes(6) == [2, 4, 6]
    assert preferred_batch_sizes(8) == [2, 4, 8]
