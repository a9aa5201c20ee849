"""A reward backed by a transformers sequence-classification model (DeepSeek-R1 §2.3.4:
helpfulness judged on the final answer, harmlessness on the whole response)."""

from __future__ import annotations

from typing import Any, Literal

from rewards._text import answer_block, completion_text
from rewards.registry import register

Judge = Literal["answer", "response"]


def judged_text(text: str, judge: Judge) -> str:
    """The part of a completion the model judges: the answer block (else what follows
    ``</think>``, else everything) for ``"answer"``; all of it for ``"response"``.

    >>> judged_text("<think>r</think><answer> 4 </answer>", "answer")
    '4'
    >>> judged_text("r</think> It is 4.", "answer")
    'It is 4.'
    """
    if judge == "response":
        return text.strip()
    block = answer_block(text)
    if block is not None:
        return block.strip()
    return text.rpartition("</think>")[2].strip()


def prompt_text(prompt: Any) -> str:
    """The prompt as the reward model reads it: text as is, chat messages as `role: content`
    lines. The reward-model stage trains on the same format.

    >>> prompt_text([{"role": "user", "content": "2+2?"}])
    'user: 2+2?'
    """
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in prompt)


@register("reward_model")
class RewardModel:
    """Score (prompt, judged part of the completion) with a sequence-classification model.

    ``model`` is a local directory or hub name. With one output label the reward is its
    logit (``sigmoid=True`` squashes it to (0, 1)); with several, the softmax probability of
    ``label``. Batched by ``batch_size``; inputs truncated to ``max_length`` tokens. The model
    loads on first call and is not pickled (each process loads its own).

    >>> RewardModel("path/to/rm", judge="answer")(  # doctest: +SKIP
    ...     ["<think>r</think><answer>4</answer>"],
    ...                                          prompts=["2+2?"])
    [1.73]
    """

    def __init__(
        self,
        model: str,
        judge: Judge = "answer",
        batch_size: int = 8,
        max_length: int = 1024,
        label: int = 1,
        sigmoid: bool = False,
        device: str = "cpu",
    ) -> None:
        if judge not in ("answer", "response"):
            raise ValueError(f"reward_model: judge must be 'answer' or 'response', got {judge!r}")
        if batch_size < 1:
            raise ValueError(f"reward_model: batch_size must be >= 1, got {batch_size}")
        self.model_name, self.judge, self.batch_size = model, judge, batch_size
        self.max_length, self.label, self.sigmoid, self.device = max_length, label, sigmoid, device
        self._model: Any = None
        self._tokenizer: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None, "_tokenizer": None}

    def _load(self) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from grpo.engines import ensure_pad_token

        tokenizer = ensure_pad_token(AutoTokenizer.from_pretrained(self.model_name))
        model = AutoModelForSequenceClassification.from_pretrained(self.model_name)
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        self._tokenizer, self._model = tokenizer, model.to(self.device).eval()

    def __call__(
        self, completions: list[Any], *, prompts: list[Any], **columns: Any
    ) -> list[float | None]:
        import torch

        if self._model is None:
            self._load()
        texts = [judged_text(completion_text(c), self.judge) for c in completions]
        firsts = [prompt_text(p) for p in prompts]
        scores: list[float | None] = []
        for start in range(0, len(texts), self.batch_size):
            batch = self._tokenizer(
                firsts[start : start + self.batch_size],
                texts[start : start + self.batch_size],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            with torch.inference_mode():
                logits = self._model(**batch).logits.float()  # (B, num_labels)
            if logits.shape[-1] == 1:
                values = logits[:, 0].sigmoid() if self.sigmoid else logits[:, 0]
            else:
                values = logits.softmax(dim=-1)[:, self.label]
            scores.extend(float(v) for v in values)
        return scores
