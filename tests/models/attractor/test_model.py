"""The model through the protocol: evaluation, causality, checkpoints, generation, sleep."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from nightshift.models.attractor import FLAVORS
from nightshift.models.protocol import SleepContext, Vocab

VOCAB = Vocab(name="syn", size=50, eot_id=49)
DEBUG = FLAVORS["debug"].model  # D 32, H 4, W 4, K 4


def build(seed: int = 0, **change: object):
    torch.manual_seed(seed)
    return dataclasses.replace(DEBUG, **change).build(VOCAB)


def rand_tokens(B: int, T: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB.size - 1, (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("readout", ["last", "all_positions"])
def test_log_probs_are_normalised_over_the_whole_vocabulary(readout: str) -> None:
    model = build(readout=readout).eval()
    logp = model.log_probs(rand_tokens(3, 9))
    assert logp.shape == (3, 9, VOCAB.size)
    assert torch.allclose(logp.logsumexp(-1), torch.zeros(3, 9), atol=1e-5)


def test_score_is_log_probs_of_the_next_token_and_chunking_does_not_matter() -> None:
    model = build().eval()
    x = rand_tokens(3, 12)
    expected = model.log_probs(x[:, :-1]).gather(-1, x[:, 1:, None])[..., 0]
    assert torch.allclose(model.score(x), expected, atol=1e-5)
    tiny_chunks = build(eval_chunk_floats=VOCAB.size * 2).eval()  # 2 windows per chunk
    tiny_chunks.load_state_dict(model.state_dict())
    assert torch.allclose(tiny_chunks.score(x), model.score(x), atol=1e-6)


@pytest.mark.parametrize("readout", ["last", "all_positions"])
def test_scores_are_causal(readout: str) -> None:
    """Right padding is ignored by the evaluator: position t may depend only on tokens[:, : t + 1]."""
    model = build(readout=readout).eval()
    x = rand_tokens(2, 10)
    y = x.clone()
    y[:, 6:] = rand_tokens(2, 4, seed=5)
    a, b = model.score(x), model.score(y)
    assert torch.allclose(a[:, :5], b[:, :5], atol=1e-6)
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_short_context_is_left_padded_with_eot() -> None:
    model = build().eval()
    x = rand_tokens(1, 3)
    padded = torch.cat([torch.full((1, DEBUG.window - 1), VOCAB.eot_id), x], 1)  # (1, W-1+3)
    assert torch.allclose(model.score(x)[0, 0], model.score(padded)[0, DEBUG.window - 1], atol=1e-6)


def test_all_positions_relaxation_is_causal_within_a_window() -> None:
    model = build(readout="all_positions", breaks="row", early_exit_eps=1e-4, steps=6).eval()
    x = rand_tokens(4, DEBUG.window)
    y = x.clone()
    y[:, -1] = (y[:, -1] + 1) % (VOCAB.size - 1)
    with torch.no_grad():
        Sa = model.relax_ids(x, with_loss=False)[1]
        Sb = model.relax_ids(y, with_loss=False)[1]
    assert torch.allclose(Sa[:, :-1], Sb[:, :-1], atol=1e-6)
    assert not torch.allclose(Sa[:, -1], Sb[:, -1])


def test_all_positions_trains_every_position() -> None:
    model = build(readout="all_positions")
    loss, metrics = model(rand_tokens(4, DEBUG.window + 1))
    loss.backward()
    assert torch.isfinite(loss) and metrics["ce"] > 0
    assert model.readout_window.weight.grad.abs().sum() > 0


def test_forward_refuses_the_wrong_window_length() -> None:
    with pytest.raises(ValueError, match=r"shape \(B, 5\)"):
        build()(rand_tokens(2, 9))


def test_state_dict_round_trip_through_a_file(tmp_path: Path) -> None:
    model = build()
    model.train()
    for seed in range(3):  # fill the replay buffer
        model(rand_tokens(8, DEBUG.window + 1, seed))
    assert len(model.replay) == 24
    path = tmp_path / "ckpt.pt"
    torch.save(model.state_dict(), path)
    fresh = build(seed=123)
    fresh.load_state_dict(torch.load(path, weights_only=True))
    assert torch.equal(fresh.replay.tokens, model.replay.tokens)
    assert torch.equal(fresh.replay.tension, model.replay.tension)
    x = rand_tokens(2, 7, seed=9)
    model.eval(), fresh.eval()
    assert torch.equal(model.score(x), fresh.score(x))


def test_generate_is_reproducible_and_respects_top_k() -> None:
    model = build().eval()
    prompt = torch.tensor([1, 2])
    a = model.generate(prompt, 6, generator=torch.Generator().manual_seed(0))
    b = model.generate(prompt, 6, generator=torch.Generator().manual_seed(0))
    assert a.shape == (8,) and torch.equal(a, b) and torch.equal(a[:2], prompt)
    greedy = model.generate(prompt, 3, top_k=1, repeat_penalty=0.0)
    with torch.no_grad():
        ctx = torch.cat([torch.full((DEBUG.window - 2,), VOCAB.eot_id), prompt]).unsqueeze(0)
        assert greedy[2] == model.next_logits(ctx)[0].argmax()
    assert model.generate(torch.tensor([], dtype=torch.long), 2).shape == (2,)


def test_replay_buffer_keeps_the_most_tense_windows_and_is_bounded() -> None:
    model = build(replay_capacity=5)
    model.train()
    seen_tokens, seen_tension = [], []
    for seed in range(4):
        x = rand_tokens(4, DEBUG.window + 1, seed)
        model(x)
        with torch.no_grad():
            seen_tension.append(model.relax_ids(x[:, :-1], with_loss=False)[0].tension)
        seen_tokens.append(x)
    assert len(model.replay) == 5
    top = torch.cat(seen_tension).topk(5).values
    assert torch.allclose(model.replay.tension.sort(descending=True).values, top, atol=1e-5)


def test_sleep_replays_tense_windows_through_the_trainers_optimizer() -> None:
    model = build(replay_steps=3, replay_batch=4)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for seed in range(3):
        loss, _ = model(rand_tokens(8, DEBUG.window + 1, seed))
    calls = []

    def optimize(loss: torch.Tensor) -> None:
        calls.append(float(loss.detach()))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    metrics = model.sleep(SleepContext(step=10, optimize=optimize))
    assert len(calls) == 3 and metrics["updates"] == 3
    assert metrics["windows_replayed"] == 24 and metrics["seconds"] > 0
    assert {"tension_before", "tension_after"} <= set(metrics)
    assert metrics["tension_before"] != metrics["tension_after"]
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())
    assert len(model.replay) == 0  # replay does not refill the buffer it drained
    assert model.sleep(SleepContext(step=11, optimize=optimize)) == {"windows_replayed": 0.0,
                                                                     "seconds": pytest.approx(0.0, abs=1.0)}


def test_sleep_without_an_optimizer_only_measures() -> None:
    model = build()
    model.train()
    model(rand_tokens(8, DEBUG.window + 1))
    state = {n: p.detach().clone() for n, p in model.named_parameters()}
    metrics = model.sleep(SleepContext(step=1))
    assert metrics["updates"] == 0 and metrics["tension_before"] == metrics["tension_after"]
    assert all(torch.equal(state[n], p) for n, p in model.named_parameters())


def test_relaxation_ablation_reads_out_the_embedded_window_and_changes_the_score() -> None:
    from nightshift.models.protocol import ablated

    model = build().eval()
    assert model.ablatable == ("relaxation",)
    x = rand_tokens(2, 10)
    full = model.score(x)
    with ablated(model, {"relaxation"}):
        off = model.score(x)
        logp = model.log_probs(x[:, :-1])
        with torch.no_grad():  # K = 0: the readout of the embedded window, same weights
            windows = model._windows(x[:, :-1]).reshape(-1, DEBUG.window)
            direct = torch.log_softmax(model.window_logits(model.to_bwd(model.embed_window(windows))), -1)
    assert (full - off).abs().max() > 1e-3  # switching the relaxation off changes every prediction's score
    assert torch.allclose(logp.reshape(-1, VOCAB.size), direct, atol=1e-5)
    assert torch.allclose(off, logp.gather(-1, x[:, 1:, None])[..., 0], atol=1e-5)
    assert torch.equal(model.score(x), full)  # restored after the block
    with pytest.raises(ValueError, match="ablatable parts: relaxation"):
        model.set_ablation({"memory"})
