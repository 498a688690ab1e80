"""Tiny random models and a byte-level tokenizer built in memory, for fast backend tests.

One token per UTF-8 byte, so a prompt's token count is its byte count: tests can say which
prompts fit a ``max_length`` without asking the tokenizer under test.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

EOS = "<eos>"


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread: for models this small, threads only add overhead, and on a busy
    machine (shared CPU cores) they make a training step 4-5x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE without merges: 256 byte tokens and ``<eos>`` (also the pad token)."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    vocab[EOS] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS)


def n_tokens(text: str) -> int:
    """Tokens of ``text`` under :func:`byte_tokenizer`, counted without it."""
    return len(text.encode("utf-8"))


def tiny_llama(vocab_size: int = 257, seed: int = 0, attn: str = "sdpa") -> LlamaForCausalLM:
    """2 layers, hidden 32, float32, eval mode: a forward pass on 500 tokens takes milliseconds.
    ``attn`` is transformers' attention implementation (sdpa, eager)."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
        bos_token_id=None,
        attn_implementation=attn,
    )
    return LlamaForCausalLM(config).eval()
