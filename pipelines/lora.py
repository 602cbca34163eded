"""LoRA fine-tuning of a diffusion model on images handed over in memory (never read from disk).

Three architectures, each with its own training step: Stable Diffusion 1.x/2.x (one CLIP encoder,
UNet noise or velocity prediction), SDXL (two CLIP encoders, the pooled projection of the second
and the size/crop time ids as added conditioning) and FLUX (a transformer on 2x2-packed latents
conditioned on T5 tokens and a pooled CLIP vector, trained with the rectified-flow loss). The LoRA
layers sit on the attention projections of the UNet or transformer. The adapter comes back as
safetensors bytes in diffusers' LoRA layout (``unet.`` or ``transformer.`` keys), loadable with
``pipe.load_lora_weights``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from PIL import Image

from .errors import InvalidInput

TARGET_MODULES = ["to_q", "to_k", "to_v", "to_out.0"]  # attention projections of the UNet / transformer

#: model_index.json ``_class_name`` -> architecture trained here
ARCHITECTURES = {
    "StableDiffusionPipeline": "sd",
    "StableDiffusionXLPipeline": "sdxl",
    "FluxPipeline": "flux",
}


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
    guidance: float = 3.5  # FLUX models with a guidance embedding (not schnell) are trained at this value
    max_sequence_length: int = 512  # T5 tokens for FLUX, as its pipeline encodes prompts by default


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



def architecture_of(path: str | Path) -> str:
    """'sd', 'sdxl' or 'flux' from the folder's ``model_index.json``; ``InvalidInput`` otherwise."""
    index = Path(path) / "model_index.json"
    try:
        class_name = json.loads(index.read_text()).get("_class_name", "")
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"model folder {path}: cannot read model_index.json ({exc})") from None
    if class_name not in ARCHITECTURES:
        raise InvalidInput(f"model {path} is a {class_name or 'pipeline of unknown class'}; LoRA training supports "
                           f"{', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[class_name]


def load_training_components(path: str | Path, device: str = "cpu") -> dict:
    """The modules a training run needs, from a local diffusers folder (local files, safetensors only).

    ``kind`` names the architecture; SD and SDXL get a DDPM noise scheduler built from the model's own
    scheduler config (betas and prediction type), FLUX keeps its flow-matching scheduler.
    """
    from diffusers import AutoencoderKL, DDPMScheduler
    from transformers import AutoTokenizer

    from .devices import quiet_libraries

    quiet_libraries()
    path = Path(path)
    kind = architecture_of(path)
    kw = {"local_files_only": True, "use_safetensors": True}
    out = {
        "kind": kind,
        "vae": AutoencoderKL.from_pretrained(path, subfolder="vae", **kw),
        "tokenizer": AutoTokenizer.from_pretrained(path, subfolder="tokenizer", local_files_only=True),
    }
    if kind in ("sd", "sdxl"):
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel

        out["unet"] = UNet2DConditionModel.from_pretrained(path, subfolder="unet", **kw)
        out["text_encoder"] = CLIPTextModel.from_pretrained(path, subfolder="text_encoder", **kw)
        out["noise_scheduler"] = DDPMScheduler.from_pretrained(path, subfolder="scheduler", local_files_only=True)
    if kind == "sdxl":
        from transformers import CLIPTextModelWithProjection

        out["text_encoder_2"] = CLIPTextModelWithProjection.from_pretrained(path, subfolder="text_encoder_2", **kw)
        out["tokenizer_2"] = AutoTokenizer.from_pretrained(path, subfolder="tokenizer_2", local_files_only=True)
    if kind == "flux":
        from diffusers import FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
        from transformers import CLIPTextModel, T5EncoderModel

        out["transformer"] = FluxTransformer2DModel.from_pretrained(path, subfolder="transformer", **kw)
        out["text_encoder"] = CLIPTextModel.from_pretrained(path, subfolder="text_encoder", **kw)
        out["text_encoder_2"] = T5EncoderModel.from_pretrained(path, subfolder="text_encoder_2", **kw)
        out["tokenizer_2"] = AutoTokenizer.from_pretrained(path, subfolder="tokenizer_2", local_files_only=True)
        out["noise_scheduler"] = FlowMatchEulerDiscreteScheduler.from_pretrained(
            path, subfolder="scheduler", local_files_only=True)
    return out


def _kind(components: dict) -> str:
    if "kind" in components:
        return components["kind"]
    if "transformer" in components:
        return "flux"
    return "sdxl" if "text_encoder_2" in components else "sd"


def _pixels(images: list[Image.Image], size: int):
    """Centre square crop resized to ``size`` (keeps the proportions of the archive piece), in [-1, 1].

    Also returns SDXL's size conditioning per image: (original height, width, crop top, crop left)
    with the crop offsets in the resized image's pixels, as SDXL was trained.
    """
    import numpy as np
    import torch

    batch, sizes = [], []
    for im in images:
        im = im.convert("RGB")
        side = min(im.size)
        left, top = (im.width - side) // 2, (im.height - side) // 2
        scale = size / side
        sizes.append((im.height, im.width, round(top * scale), round(left * scale)))
        im = im.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
        batch.append(torch.from_numpy(np.asarray(im, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1))
    return torch.stack(batch), sizes


class _Step:
    """One architecture's training step: encode once, draw timesteps, compute the loss.

    ``cond`` is a dict of batch-first tensors so a minibatch is ``{k: v[pick]}``.
    """

    denoiser_key = "unet"
    prefix = "unet."
    size_multiple = 8

    def __init__(self, components: dict, config: LoraTrainingConfig, device):
        self.c, self.config, self.device = components, config, device
        self.scheduler = components["noise_scheduler"]

    @property
    def frozen(self) -> list:
        return [self.c[k] for k in ("vae", "text_encoder", "text_encoder_2") if self.c.get(k) is not None]

    def latents(self, pixels):
        vae = self.c["vae"]
        lat = vae.encode(pixels).latent_dist.sample()
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        return (lat - shift) * vae.config.scaling_factor

    def clip_ids(self, tokenizer, captions):
        return tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                         return_tensors="pt").input_ids.to(self.device)

    def encode(self, pixels, sizes, captions):
        return self.latents(pixels), {"text": self.c["text_encoder"](self.clip_ids(self.c["tokenizer"], captions))[0]}

    def draw_t(self, n: int, generator):
        import torch

        return torch.randint(0, self.scheduler.config.num_train_timesteps, (n,), generator=generator).to(self.device)

    def target(self, lat, noise, t):
        kind = self.scheduler.config.prediction_type
        if kind == "epsilon":
            return noise
        if kind == "v_prediction":
            return self.scheduler.get_velocity(lat, noise, t)
        raise InvalidInput(f"scheduler prediction_type {kind!r}; LoRA training supports epsilon and v_prediction")

    def predict(self, model, noisy, t, cond):
        return model(noisy, t, encoder_hidden_states=cond["text"]).sample

    def loss(self, model, lat, cond, noise, t):
        import torch.nn.functional as F

        noisy = self.scheduler.add_noise(lat, noise, t)
        return F.mse_loss(self.predict(model, noisy, t, cond).float(), self.target(lat, noise, t).float())

    def export(self, state: dict) -> dict:
        from diffusers.utils import convert_state_dict_to_diffusers

        return {self.prefix + k: v for k, v in convert_state_dict_to_diffusers(state).items()}


class _SDXLStep(_Step):
    """Both CLIP encoders' penultimate hidden states side by side; pooled projection + time ids added."""

    def encode(self, pixels, sizes, captions):
        import torch

        states = []
        for tok, enc in (("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2")):
            out = self.c[enc](self.clip_ids(self.c[tok], captions), output_hidden_states=True)
            states.append(out.hidden_states[-2])
        pooled = out[0]  # text_embeds of CLIPTextModelWithProjection
        res = self.config.resolution
        time_ids = torch.tensor([[h, w, top, left, res, res] for h, w, top, left in sizes],
                                dtype=pooled.dtype, device=self.device)
        return self.latents(pixels), {"text": torch.cat(states, dim=-1), "pooled": pooled, "time_ids": time_ids}

    def predict(self, model, noisy, t, cond):
        return model(noisy, t, encoder_hidden_states=cond["text"],
                     added_cond_kwargs={"text_embeds": cond["pooled"], "time_ids": cond["time_ids"]}).sample


class _FluxStep(_Step):
    """Rectified flow on packed latents: x_s = (1 - s) x0 + s noise, the transformer predicts noise - x0."""

    denoiser_key = "transformer"
    prefix = "transformer."

    def __init__(self, components, config, device):
        super().__init__(components, config, device)
        vae = components["vae"]
        self.size_multiple = 2 ** (len(vae.config.block_out_channels) - 1) * 2

    def encode(self, pixels, sizes, captions):
        import torch

        lat = self.latents(pixels)
        pooled = self.c["text_encoder"](self.clip_ids(self.c["tokenizer"], captions), output_hidden_states=False)
        ids = self.c["tokenizer_2"](captions, padding="max_length", max_length=self.config.max_sequence_length,
                                    truncation=True, return_tensors="pt").input_ids.to(self.device)
        t5 = self.c["text_encoder_2"](ids, output_hidden_states=False)[0]
        n, ch, h, w = lat.shape
        self.latent_shape = (ch, h, w)
        img_ids = torch.zeros(h // 2, w // 2, 3)
        img_ids[..., 1] += torch.arange(h // 2)[:, None]
        img_ids[..., 2] += torch.arange(w // 2)[None, :]
        self.img_ids = img_ids.reshape(-1, 3).to(self.device, t5.dtype)
        self.txt_ids = torch.zeros(t5.shape[1], 3, device=self.device, dtype=t5.dtype)
        return lat, {"t5": t5, "pooled": pooled.pooler_output}

    @staticmethod
    def pack(x):
        n, c, h, w = x.shape
        x = x.view(n, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(n, (h // 2) * (w // 2), c * 4)

    def draw_t(self, n: int, generator):
        import torch

        sigma = torch.rand((n,), generator=generator)
        shift = float(getattr(self.scheduler.config, "shift", 1.0) or 1.0)
        if shift != 1.0:  # the same shift the sampler applies to its sigmas
            sigma = shift * sigma / (1 + (shift - 1) * sigma)
        return sigma.to(self.device)

    def loss(self, model, lat, cond, noise, sigma):
        import torch
        import torch.nn.functional as F

        s = sigma.view(-1, 1, 1, 1).to(lat.dtype)
        noisy = self.pack((1 - s) * lat + s * noise)
        target = self.pack(noise - lat)
        config = model.config if hasattr(model, "config") else model.module.config
        guidance = None
        if getattr(config, "guidance_embeds", False):
            guidance = torch.full((lat.shape[0],), float(self.config.guidance), device=self.device)
        pred = model(hidden_states=noisy, timestep=sigma.to(noisy.dtype), guidance=guidance,
                     pooled_projections=cond["pooled"], encoder_hidden_states=cond["t5"],
                     txt_ids=self.txt_ids, img_ids=self.img_ids, return_dict=False)[0]
        return F.mse_loss(pred.float(), target.float())

    def export(self, state: dict) -> dict:
        return {self.prefix + k: v for k, v in state.items()}  # PEFT names, as FluxPipeline.save_lora_weights writes


STEPS = {"sd": _Step, "sdxl": _SDXLStep, "flux": _FluxStep}


def train_lora(
    components: dict,
    images: list[Image.Image],
    captions: list[str],
    config: LoraTrainingConfig = LoraTrainingConfig(),
    on_step: Callable[[int, int, float], None] | None = None,
) -> LoraTrainingResult:
    """Train LoRA layers on the attention projections of the UNet (SD, SDXL) or transformer (FLUX)."""
    import torch
    from accelerate import Accelerator
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save as save_safetensors

    # 1. Check inputs
    check_config(config, images, captions)
    kind = _kind(components)
    accelerator = Accelerator(cpu=config.device == "cpu", mixed_precision=config.mixed_precision)
    device = accelerator.device
    arch = STEPS[kind](components, config, device)
    if config.resolution % arch.size_multiple:
        raise InvalidInput(f"resolution {config.resolution}; this {kind} model needs a multiple of {arch.size_multiple}")
    model = components[arch.denoiser_key]
    for module in [model] + arch.frozen:
        module.requires_grad_(False)
        module.to(device)

    # 2. Encode images and captions once (frozen VAE and text encoders); nothing is written anywhere
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    torch.manual_seed(config.seed)  # the VAE's latent sample
    with torch.no_grad():
        pixels, sizes = _pixels(images, config.resolution)
        latents, cond = arch.encode(pixels.to(device), sizes, captions)
    del pixels
    if device.type != "cpu":  # the frozen encoders are no longer needed on the accelerator
        for module in arch.frozen:
            module.to("cpu")

    # 3. Add the LoRA layers; only they train
    model.add_adapter(LoraConfig(r=config.rank, lora_alpha=config.rank, init_lora_weights="gaussian",
                                 target_modules=TARGET_MODULES))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr)
    model, optimizer = accelerator.prepare(model, optimizer)
    n = latents.shape[0]

    def pick(index):
        return latents[index], {k: v[index] for k, v in cond.items()}

    # A fixed evaluation set: the same noise and timesteps before and after training
    eval_gen = torch.Generator(device="cpu").manual_seed(config.seed + 1)
    every = torch.arange(n).repeat(max(1, config.eval_pairs)).to(device)
    eval_lat, eval_cond = pick(every)
    eval_noise = torch.randn(eval_lat.shape, generator=eval_gen).to(device)
    eval_t = arch.draw_t(eval_lat.shape[0], eval_gen)

    def evaluate() -> float:
        model.eval()
        with torch.no_grad():
            value = float(arch.loss(model, eval_lat, eval_cond, eval_noise, eval_t))
        model.train()
        return value

    result = LoraTrainingResult(b"", images=n, eval_loss_before=evaluate())

    # 4. Train
    model.train()
    for step in range(1, config.steps + 1):
        index = torch.randint(0, n, (min(config.batch_size, n),), generator=generator).to(device)
        lat, batch_cond = pick(index)
        noise = torch.randn(lat.shape, generator=generator).to(device)
        t = arch.draw_t(lat.shape[0], generator)
        with accelerator.autocast():
            loss = arch.loss(model, lat, batch_cond, noise, t)
        accelerator.backward(loss)
        if accelerator.sync_gradients:
            accelerator.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        result.losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step, config.steps, result.losses[-1])
    result.eval_loss_after = evaluate()

    # 5. Export in diffusers' LoRA layout ("unet." / "transformer." keys), as bytes
    model = accelerator.unwrap_model(model)
    state = arch.export(get_peft_model_state_dict(model))
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()}
    result.safetensors_bytes = save_safetensors(state, metadata={"format": "pt", "rank": str(config.rank),
                                                                 "architecture": kind})
    return result
