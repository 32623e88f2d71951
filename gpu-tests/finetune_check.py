"""Inside the fine-tuning image, on a GPU: the stack works together, with no download.

A tiny Llama-shaped model built from a config (no weights fetched), quantised to 4 bits with
bitsandbytes, wrapped with a LoRA adapter by PEFT, trained for a few steps on the GPU (the loss
must fall), and Unsloth imported (it patches PyTorch and needs a GPU). Run by
gpu-tests/images_smoke.sh; exit 0 when everything held, 1 otherwise.
"""

from __future__ import annotations

import sys


def main() -> int:
    import tempfile

    import bitsandbytes as bnb  # noqa: F401 - its CUDA library loads on import
    import torch  # noqa: TID251 - this script runs inside the image, on the GPU, on purpose
    from peft import LoraConfig, get_peft_model
    from transformers import BitsAndBytesConfig, LlamaConfig, LlamaForCausalLM

    if not torch.cuda.is_available():
        print("finetune_check: no GPU visible to torch", file=sys.stderr)
        return 1
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=256, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as saved:
        LlamaForCausalLM(config).save_pretrained(saved)
        quantised = LlamaForCausalLM.from_pretrained(
            saved,
            quantization_config=BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16
            ),
            device_map={"": 0},
        )
    lora = get_peft_model(
        quantised, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"])
    )
    optimiser = torch.optim.AdamW([p for p in lora.parameters() if p.requires_grad], lr=1e-2)
    batch = torch.randint(0, 256, (4, 32), device="cuda")
    losses = []
    for _ in range(20):
        loss = lora(input_ids=batch, labels=batch).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
        losses.append(float(loss))
    print(f"finetune_check: 4-bit LoRA loss {losses[0]:.3f} -> {losses[-1]:.3f} on "
          f"{torch.cuda.get_device_name(0)}")  # fmt: skip
    if not losses[-1] < losses[0]:
        print("finetune_check: the loss did not fall", file=sys.stderr)
        return 1
    import unsloth

    print(f"finetune_check: unsloth {getattr(unsloth, '__version__', '?')} imported")
    return 0


if __name__ == "__main__":
    sys.exit(main())
