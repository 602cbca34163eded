"""LoRA fine-tuning of a Stable-Diffusion-style UNet on images handed over in memory (never read from disk).

Returns the adapter as safetensors bytes in diffusers' LoRA layout, loadable with ``pipe.load_lora_weights``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from PIL import Image

from .errors import InvalidInput

TARGET_MODULES = ["to_q", "to_k", "to_v", "to_out.0"]  # the UNet attention projections


@dataclass
class LoraTrainingConfig:
    """Every knob of a run, with its default."""

    steps: int = 200
    rank: int = 4
    lr: float = 1e-4
    resolution: int = 512
    batch_size: int = 4
    seed: int = 0
    device: str = "cpu"
    mixed_precision: str = "no"  # "fp16" / "bf16" on a GPU
    max_grad_norm: float = 1.0
    eval_pairs: int = 4  # fixed (noise, timestep) draws per image for the before/after loss


@dataclass
class LoraTrainingResult:
    safetensors_bytes: bytes
    losses: list[float] = field(default_factory=list)
    eval_loss_before: float = math.nan
    eval_loss_after: float = math.nan
    images: int = 0


def check_config(config: LoraTrainingConfig, images: list, captions: list[str]) -> None:
    if not images:
        raise InvalidInput("no training images were given")
    if len(captions) != len(images):
        raise InvalidInput(f"{len(captions)} captions for {len(images)} images; give one caption per image")
    if not all(isinstance(im, Image.Image) for im in images):
        raise InvalidInput("training images must be PIL images (decrypted in memory)")
    if not 1 <= int(config.steps) <= 100_000:
        raise InvalidInput(f"steps {config.steps}; expected 1..100000")
    if not 1 <= int(config.rank) <= 256:
        raise InvalidInput(f"rank {config.rank}; expected 1..256")
    if not 0 < float(config.lr) < 1:
        raise InvalidInput(f"lr {config.lr}; expected a number between 0 and 1")
    if config.resolution % 8 or not 32 <= config.resolution <= 2048:
        raise InvalidInput(f"resolution {config.resolution}; expected a multiple of 8 from 32 to 2048")


def load_training_components(path: str | Path, device: str = "cpu") -> dict:
    """UNet, VAE, text encoder, tokenizer and a DDPM noise scheduler from a local diffusers folder."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import AutoTokenizer, CLIPTextModel

    from .devices import quiet_libraries

    quiet_libraries()
    path = Path(path)
    kw = {"local_files_only": True, "use_safetensors": True}
    return {
        "unet": UNet2DConditionModel.from_pretrained(path, subfolder="unet", **kw),
        "vae": AutoencoderKL.from_pretrained(path, subfolder="vae", **kw),
        "text_encoder": CLIPTextModel.from_pretrained(path, subfolder="text_encoder", **kw),
        "tokenizer": AutoTokenizer.from_pretrained(path, subfolder="tokenizer", local_files_only=True),
        "noise_scheduler": DDPMScheduler.from_pretrained(path, subfolder="scheduler", local_files_only=True),
    }


def _pixels(images: list[Image.Image], size: int):
    import numpy as np
    import torch

    batch = []
    for im in images:
        im = im.convert("RGB")
        side = min(im.size)  # centre square crop, then resize: keeps the proportions of the archive piece
        left, top = (im.width - side) // 2, (im.height - side) // 2
        im = im.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
        batch.append(torch.from_numpy(np.asarray(im, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1))
    return torch.stack(batch)


def train_lora(
    components: dict,
    images: list[Image.Image],
    captions: list[str],
    config: LoraTrainingConfig = LoraTrainingConfig(),
    on_step: Callable[[int, int, float], None] | None = None,
) -> LoraTrainingResult:
    """Train LoRA layers on the UNet's attention projections with the noise-prediction MSE loss."""
    import torch
    import torch.nn.functional as F
    from accelerate import Accelerator
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save as save_safetensors

    # 1. Check inputs
    check_config(config, images, captions)
    accelerator = Accelerator(cpu=config.device == "cpu", mixed_precision=config.mixed_precision)
    device = accelerator.device
    unet, vae, text_encoder = components["unet"], components["vae"], components["text_encoder"]
    tokenizer, scheduler = components["tokenizer"], components["noise_scheduler"]
    for module in (unet, vae, text_encoder):
        module.requires_grad_(False)
        module.to(device)

    # 2. Encode images and captions once (frozen VAE and text encoder); nothing is written anywhere
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    with torch.no_grad():
        pixels = _pixels(images, config.resolution).to(device)
        latents = vae.encode(pixels).latent_dist.sample(generator=None) * vae.config.scaling_factor
        ids = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids.to(device)
        text = text_encoder(ids)[0]
    del pixels

    # 3. Add the LoRA layers; only they train
    unet.add_adapter(LoraConfig(r=config.rank, lora_alpha=config.rank, init_lora_weights="gaussian",
                                target_modules=TARGET_MODULES))
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr)
    unet, optimizer = accelerator.prepare(unet, optimizer)
    T = scheduler.config.num_train_timesteps
    n = latents.shape[0]

    def loss_on(lat, txt, noise, t):
        noisy = scheduler.add_noise(lat, noise, t)
        target = noise if scheduler.config.prediction_type == "epsilon" else scheduler.get_velocity(lat, noise, t)
        pred = unet(noisy, t, encoder_hidden_states=txt).sample
        return F.mse_loss(pred.float(), target.float())

    # A fixed evaluation set: the same noise and timesteps before and after training
    eval_gen = torch.Generator(device="cpu").manual_seed(config.seed + 1)
    reps = max(1, config.eval_pairs)
    eval_lat, eval_txt = latents.repeat(reps, 1, 1, 1), text.repeat(reps, 1, 1)
    eval_noise = torch.randn(eval_lat.shape, generator=eval_gen).to(device)
    eval_t = torch.randint(0, T, (eval_lat.shape[0],), generator=eval_gen).to(device)

    def evaluate() -> float:
        unet.eval()
        with torch.no_grad():
            value = float(loss_on(eval_lat, eval_txt, eval_noise, eval_t))
        unet.train()
        return value

    result = LoraTrainingResult(b"", images=n, eval_loss_before=evaluate())

    # 4. Train
    unet.train()
    for step in range(1, config.steps + 1):
        pick = torch.randint(0, n, (min(config.batch_size, n),), generator=generator)
        lat, txt = latents[pick.to(device)], text[pick.to(device)]
        noise = torch.randn(lat.shape, generator=generator).to(device)
        t = torch.randint(0, T, (lat.shape[0],), generator=generator).to(device)
        with accelerator.autocast():
            loss = loss_on(lat, txt, noise, t)
        accelerator.backward(loss)
        if accelerator.sync_gradients:
            accelerator.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        result.losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step, config.steps, result.losses[-1])
    result.eval_loss_after = evaluate()

    # 5. Export in diffusers' LoRA layout ("unet." prefix), as bytes
    unet = accelerator.unwrap_model(unet)
    state = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    state = {f"unet.{k}": v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()}
    result.safetensors_bytes = save_safetensors(state, metadata={"format": "pt", "rank": str(config.rank)})
    return result
