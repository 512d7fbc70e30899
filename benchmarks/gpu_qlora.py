"""QLoRA throughput on a GPU: a Mistral-shaped model built from its config (no download), 4-bit
NF4 with double quantization, LoRA on all 7 projections, gradient checkpointing, paged 8-bit AdamW,
a few hundred steps on random tokens. Prints tokens/s and peak GPU memory; last line JSON.

    python benchmarks/gpu_qlora.py --steps 300                # Mistral-7B shape (needs ~16+ GB)
    python benchmarks/gpu_qlora.py --layers 8 --steps 300     # a shallower 7B-wide model
    python benchmarks/gpu_qlora.py --tiny --steps 5           # smoke test, runs on a CPU too

Random weights cost the same as trained ones, so the speed is what training zephyr-7b-beta costs
with the same settings.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--tiny", action="store_true", help="a tiny model, for a smoke test on any device")
    args = parser.parse_args()

    import bitsandbytes as bnb
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, MistralConfig

    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if cuda else torch.float32
    if args.tiny:
        config = MistralConfig(vocab_size=32000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                               num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
        args.seq = min(args.seq, 128)
    else:
        config = MistralConfig(vocab_size=32000, hidden_size=4096, intermediate_size=14336,
                               num_hidden_layers=args.layers, num_attention_heads=32, num_key_value_heads=8,
                               max_position_embeddings=32768, sliding_window=4096)  # fmt: skip
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        # Built in host memory and saved, then loaded in 4 bits the way a downloaded checkpoint is
        # (quantized as it moves to the GPU), so GPU memory is that of real QLoRA training.
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        model.save_pretrained(tmp)
        del model
        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                   bnb_4bit_compute_dtype=dtype)  # fmt: skip
        model = AutoModelForCausalLM.from_pretrained(tmp, quantization_config=quant, dtype=dtype,
                                                     device_map={"": 0 if cuda else "cpu"})  # fmt: skip
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=16, lora_dropout=0.05, target_modules=targets,
                                             task_type="CAUSAL_LM"))  # fmt: skip
    optimizer = bnb.optim.PagedAdamW8bit([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    device = "cuda" if cuda else "cpu"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    tokens = 0
    losses = []
    start = None
    for step in range(args.steps + 2):
        if step == 2:  # two warm-up steps are not timed
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            tokens = 0
        x = torch.randint(0, config.vocab_size, (args.batch, args.seq), device=device)
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += x.numel()
        losses.append(float(loss))
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    result = {
        "benchmark": "gpu_qlora", "device": torch.cuda.get_device_name(0) if cuda else "cpu", "layers": config.num_hidden_layers,
        "hidden": config.hidden_size, "seq": args.seq, "batch": args.batch, "steps": args.steps,
        "tokens_per_s": round(tokens / seconds, 1), "seconds": round(seconds, 1),
        "peak_gpu_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "first_loss": losses[0], "last_loss": losses[-1],
    }  # fmt: skip
    print(f"{result['device']}: {result['tokens_per_s']} tokens/s over {args.steps} steps, "
          f"peak memory {result['peak_gpu_memory_gb']} GB")  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
