"""reward_model with a tiny LlamaForSequenceClassification built and saved by the test."""

from __future__ import annotations

import pickle

import pytest

from rewards import get

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers

    path = tmp_path_factory.mktemp("tiny_rm")
    vocab = {
        "[UNK]": 0,
        "[PAD]": 1,
        "</s>": 2,
        **{chr(c): 3 + i for i, c in enumerate(range(32, 127))},
    }
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="</s>"
    )
    fast.save_pretrained(path)
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        num_labels=1,
        pad_token_id=1,
    )
    transformers.LlamaForSequenceClassification(config).save_pretrained(path)
    return path


def _direct_scores(path, pairs):
    tok = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(path).eval()
    out = []
    with torch.no_grad():
        for prompt, text in pairs:
            enc = tok(prompt, text, return_tensors="pt")
            out.append(float(model(**enc).logits[0, 0]))
    return out


def test_answer_vs_response_and_batching_match_unbatched(tiny_rm):
    completions = [
        "<think>long reasoning here</think><answer>4</answer>",
        "<think>r</think><answer>five</answer>",
        "no tags at all",
    ]
    prompts = ["2+2?", "2+3?", "hello"]
    answer_rm = get("reward_model", model=str(tiny_rm), judge="answer", batch_size=2)
    got = answer_rm(completions, prompts=prompts)
    want = _direct_scores(tiny_rm, [("2+2?", "4"), ("2+3?", "five"), ("hello", "no tags at all")])
    assert got == pytest.approx(want, abs=1e-4)  # padded batches score like single rows
    response_rm = get("reward_model", model=str(tiny_rm), judge="response", batch_size=8)
    got_resp = response_rm(completions, prompts=prompts)
    assert got_resp == pytest.approx(
        _direct_scores(tiny_rm, list(zip(prompts, completions, strict=True))), abs=1e-4
    )
    assert got_resp[0] != pytest.approx(got[0], abs=1e-6)


def test_sigmoid_and_pickle(tiny_rm):
    rm = get("reward_model", model=str(tiny_rm), sigmoid=True)
    [score] = rm(["<answer>4</answer>"], prompts=["q"])
    assert 0.0 < score < 1.0
    clone = pickle.loads(pickle.dumps(rm))
    assert clone._model is None
    assert clone(["<answer>4</answer>"], prompts=["q"]) == pytest.approx([score], abs=1e-6)
