"""Load cost of the embedded judge (GGUF vs the converted copy) and lm-eval's task index."""

import time

import torch
from lm_eval.tasks import TaskManager
from transformers import AutoModelForCausalLM, AutoTokenizer

from distjudge_eval.embedded import EMBEDDED_GGUF, embedded_model_dir, embedded_weights
from distjudge_eval.paths import tasks_dir

folder, _ = embedded_weights()
t = time.perf_counter()
AutoTokenizer.from_pretrained(embedded_model_dir(), gguf_file=EMBEDDED_GGUF)
AutoModelForCausalLM.from_pretrained(
    embedded_model_dir(), gguf_file=EMBEDDED_GGUF, dtype=torch.float32
)
gguf = time.perf_counter() - t
t = time.perf_counter()
AutoTokenizer.from_pretrained(folder)
AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
copy = time.perf_counter() - t
t = time.perf_counter()
full = TaskManager(include_path=[str(tasks_dir())])
full_s = time.perf_counter() - t
t = time.perf_counter()
TaskManager(include_path=[str(tasks_dir())], include_defaults=False)
ours_s = time.perf_counter() - t
print(f"load from GGUF {gguf:.1f} s, from converted copy {copy:.2f} s ({gguf / copy:.0f}x)")
names = len(full.all_tasks)
print(f"TaskManager with lm-eval's {names} names {full_s:.1f} s, ours only {ours_s:.2f} s")
