"""The engine against PEFT, the reference: greedy tokens equal PEFT's single-request generate, Score's
log-probabilities equal PEFT's forward to 1e-5 (tiny, float32), and a mixed batch gives every row its own
adapter's output, including rows that join while others decode."""

from __future__ import annotations

from inference_kit import ALL_PROJECTIONS, collect, peft_greedy, peft_logprobs, tiny_adapter, upload

from loravault.server.inference import Delta, SamplingParams

PROMPTS = ["Hello world", "The vault keeps", "abc", "Erasure is a signed delta", "x", "multi-tenant", "LoRA!", "q?"]


def test_greedy_equals_peft_generate_token_for_token(tiny, vault, make_engine):
    vault.credentials.create_tenant("acme")
    adapters = {"qv": tiny_adapter(1), "all": tiny_adapter(2, rank=8, targets=ALL_PROJECTIONS)}
    for name, adapter in adapters.items():
        upload(vault, tenant="acme", name=name, adapter=adapter)
    engine = make_engine()
    for name, adapter in adapters.items():
        tokens, done = collect(engine.generate(tenant="acme", adapter=name, version=0, prompt="Hello world",
                                               params=SamplingParams(max_new_tokens=24)))
        assert tokens == peft_greedy(adapter.peft, tiny.tokenizer, "Hello world", 24)
        assert (done.reason, done.completion_tokens, done.version) == ("length", 24, 1)


def test_score_logprobs_equal_peft_to_1e_5(tiny, vault, make_engine):
    vault.credentials.create_tenant("acme")
    adapter = tiny_adapter(3, targets=ALL_PROJECTIONS)
    upload(vault, tenant="acme", name="a", adapter=adapter)
    engine = make_engine()
    prompt, continuation = "The vault keeps", " every version"
    scored = engine.score(tenant="acme", adapter="a", version=0, prompt=prompt, continuation=continuation
                          ).result(timeout=60)
    expected = peft_logprobs(adapter.peft, tiny.tokenizer, prompt, continuation)
    full = tiny.tokenizer(prompt + continuation)["input_ids"]
    start = len(tiny.tokenizer(prompt)["input_ids"])
    # float32 end to end; the only difference is the order of float additions in batched products (~1e-7)
    assert max(abs(a - b) for a, b in zip(scored.logprobs, expected)) < 1e-5
    assert abs(scored.mean_nll + sum(expected) / len(expected)) < 1e-5
    assert scored.token_ids == tuple(full[start:]) and scored.prompt_tokens == start


def test_mixed_batch_of_8_tenants_gives_each_row_its_own_adapter(tiny, vault, make_engine):
    adapters = [tiny_adapter(10 + i, rank=2 + i % 3 * 2, targets=ALL_PROJECTIONS if i % 2 else None)
                for i in range(8)]
    for i, adapter in enumerate(adapters):
        vault.credentials.create_tenant(f"t{i}")
        upload(vault, tenant=f"t{i}", name="a", adapter=adapter)
    expected = [peft_greedy(a.peft, tiny.tokenizer, p, 16) for a, p in zip(adapters, PROMPTS)]
    assert len({tuple(e) for e in expected}) > 4  # the adapters really differ, so a mix-up would show
    engine = make_engine(max_batch=8)
    first = [engine.generate(tenant=f"t{i}", adapter="a", version=0, prompt=PROMPTS[i],
                             params=SamplingParams(max_new_tokens=16)) for i in range(4)]
    events = first[0].events(timeout=60)
    assert isinstance(next(events), Delta)  # the first four are decoding when the others join
    later = [engine.generate(tenant=f"t{i}", adapter="a", version=0, prompt=PROMPTS[i],
                             params=SamplingParams(max_new_tokens=16)) for i in range(4, 8)]
    results = [collect(h)[0] for h in [*first[1:], *later]]
    assert results == expected[1:]
    assert engine.stats().running == 0


def test_base_only_rows_match_the_plain_base_model(tiny, vault, make_engine):
    vault.credentials.create_tenant("acme")
    upload(vault, tenant="acme", name="a", adapter=tiny_adapter(4))
    engine = make_engine()
    mixed = engine.generate(tenant="acme", adapter="a", version=0, prompt="abc", params=SamplingParams(max_new_tokens=12))
    base = engine.generate(tenant="acme", adapter=None, version=0, prompt="Hello world",
                           params=SamplingParams(max_new_tokens=12))
    assert collect(base)[0] == peft_greedy(tiny.model, tiny.tokenizer, "Hello world", 12)
    assert collect(mixed)[1].version == 1


def test_seeded_sampling_is_identical_alone_and_in_a_mixed_batch(vault, make_engine):
    for i in range(4):
        vault.credentials.create_tenant(f"t{i}")
        upload(vault, tenant=f"t{i}", name="a", adapter=tiny_adapter(20 + i))
    params = SamplingParams(temperature=1.0, top_p=0.9, top_k=50, seed=1234, max_new_tokens=20)
    engine = make_engine()
    alone = collect(engine.generate(tenant="t0", adapter="a", version=0, prompt="Hello", params=params))[0]
    others = [engine.generate(tenant=f"t{i}", adapter="a", version=0, prompt=PROMPTS[i],
                              params=SamplingParams(temperature=1.3, seed=i, max_new_tokens=30)) for i in range(1, 4)]
    mixed = engine.generate(tenant="t0", adapter="a", version=0, prompt="Hello", params=params)
    assert collect(mixed)[0] == alone
    other = SamplingParams(temperature=1.0, top_p=0.9, top_k=50, seed=99, max_new_tokens=20)
    assert collect(engine.generate(tenant="t0", adapter="a", version=0, prompt="Hello", params=other))[0] != alone
    for handle in others:
        collect(handle)


def test_prompts_of_different_lengths_prefilled_in_one_step_match_peft(tiny, vault, make_engine):
    """Every request is queued before the engine starts, so all of them join the first step and are prefilled
    together in the padded prompt grid: generations and a Score of different lengths, different adapters and
    ranks, and a base-only row."""
    adapters = [tiny_adapter(30 + i, rank=2 + 2 * i, targets=ALL_PROJECTIONS if i % 2 else None) for i in range(4)]
    for i, adapter in enumerate(adapters):
        vault.credentials.create_tenant(f"t{i}")
        upload(vault, tenant=f"t{i}", name="a", adapter=adapter)
    engine = make_engine(start=False)
    generations = [engine.generate(tenant=f"t{i}", adapter="a", version=0, prompt=PROMPTS[3 + i],
                                   params=SamplingParams(max_new_tokens=8)) for i in range(3)]
    base = engine.generate(tenant="t0", adapter=None, version=0, prompt="x", params=SamplingParams(max_new_tokens=8))
    prompt, continuation = "Erasure is a signed delta", " that the server verifies"
    scored = engine.score(tenant="t3", adapter="a", version=0, prompt=prompt, continuation=continuation)
    engine.start()
    results = [collect(h)[0] for h in generations]
    score = scored.result(timeout=60)
    base_tokens = collect(base)[0]
    assert engine.stats().steps == 8  # one step prefilled all five, then seven decode steps
    assert results == [peft_greedy(a.peft, tiny.tokenizer, PROMPTS[3 + i], 8) for i, a in enumerate(adapters[:3])]
    assert base_tokens == peft_greedy(tiny.model, tiny.tokenizer, "x", 8)
    expected = peft_logprobs(adapters[3].peft, tiny.tokenizer, prompt, continuation)
    assert max(abs(a - b) for a, b in zip(score.logprobs, expected)) < 1e-5
