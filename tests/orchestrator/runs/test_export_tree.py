"""The export's state <-> tensors + JSON skeleton: nested memory state, aliases, views, what JSON cannot carry."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.runs.export.formats import FORMATS, export_format
from nightshift.orchestrator.runs.export.tree import compact, flatten, unflatten


def test_a_nested_memory_state_survives_safetensors_whole(tmp_path: Path) -> None:
    state = {"w": torch.arange(6.0).reshape(2, 3),
             "_extra_state": {"version": 3, "ratio": 0.25, "fitted": True, "note": None, "order": (2, "x"),
                              "tables": [{"keys": torch.tensor([1, 2], dtype=torch.int64),
                                          "counts": torch.tensor([5], dtype=torch.int32)}],
                              "empty": torch.zeros(0, 4), "also_empty": torch.zeros(0, 4)}}
    fmt = FORMATS["safetensors"]
    fmt.write(compact(state), str(tmp_path / fmt.file))
    back = fmt.read(str(tmp_path / fmt.file))
    extra = back["_extra_state"]
    assert torch.equal(back["w"], state["w"])
    assert {k: extra[k] for k in ("version", "ratio", "fitted", "note", "order")} == \
        {"version": 3, "ratio": 0.25, "fitted": True, "note": None, "order": (2, "x")}
    assert torch.equal(extra["tables"][0]["keys"], state["_extra_state"]["tables"][0]["keys"])
    assert extra["tables"][0]["counts"].dtype == torch.int32
    assert extra["empty"].shape == (0, 4) and extra["also_empty"] is not extra["empty"]
    # every tensor is a plain safetensors entry under its state-dict path
    assert set(load_file(str(tmp_path / fmt.file))) == {"w", "_extra_state.tables.0.keys",
                                                         "_extra_state.tables.0.counts", "_extra_state.empty",
                                                         "_extra_state.also_empty"}


def test_tied_weights_are_stored_once_and_load_as_one_tensor(tmp_path: Path) -> None:
    emb = torch.nn.Embedding(10, 4)
    head = torch.nn.Linear(4, 10, bias=False)
    head.weight = emb.weight  # tied, as a GPT's output head
    state = {**{f"embed.{k}": v for k, v in emb.state_dict().items()},
             **{f"head.{k}": v for k, v in head.state_dict().items()}}
    flat = flatten(compact(state))
    assert list(flat.tensors) == ["embed.weight"]
    for name in ("safetensors", "pt"):
        fmt = FORMATS[name]
        path = str(tmp_path / fmt.file)
        fmt.write(compact(state), path)
        back = fmt.read(path)
        assert back["head.weight"] is back["embed.weight"], name
        assert torch.equal(back["head.weight"], emb.weight.detach())


def test_views_are_written_as_their_own_bytes_not_their_base() -> None:
    base = torch.arange(1000.0)
    state = {"head": base[:3], "strided": base[::100], "whole": base, "other_shape": base.view(10, 100)}
    out = compact(state)
    assert out["head"].untyped_storage().nbytes() == 3 * 4 and out["strided"].is_contiguous()
    ptrs = {k: t.untyped_storage().data_ptr() for k, t in out.items()}
    assert len(set(ptrs.values())) == 4  # each its own storage: safetensors refuses shared ones
    assert all(torch.equal(out[k], v) for k, v in state.items())


def test_dotted_keys_that_collide_get_distinct_names() -> None:
    state = {"a.b": torch.ones(1), "a": {"b": torch.zeros(1)}}
    flat = flatten(state)
    assert sorted(flat.tensors) == ["a.b", "a.b~1"]
    back = unflatten(flat.skeleton, flat.tensors)
    assert back["a.b"].item() == 1 and back["a"]["b"].item() == 0


@pytest.mark.parametrize("odd", [b"raw", {1: 2}, {"__tensor__": "x"}])
def test_safetensors_refuses_what_json_cannot_carry_and_points_to_pt(odd: object, tmp_path: Path) -> None:
    state = {"w": torch.ones(2), "_extra_state": {"odd": odd}}
    with pytest.raises(UserError, match=r"^--format safetensors: .* at _extra_state\.odd.*; use --format pt$"):
        FORMATS["safetensors"].write(compact(state), str(tmp_path / "x.safetensors"))
    FORMATS["pt"].write(compact(state), str(tmp_path / "x.pt"))
    assert FORMATS["pt"].read(str(tmp_path / "x.pt"))["_extra_state"]["odd"] == odd


def test_an_unknown_format_names_the_accepted_ones() -> None:
    with pytest.raises(UserError, match=r"^--format 'onnx': unknown export format; accepted: safetensors, pt$"):
        export_format("onnx")
