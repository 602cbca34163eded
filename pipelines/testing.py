"""Tiny random-weight twins of the studio's models, for tests and the offline "tiny" profile.

One factory, seeded, in the style of diffusers' ``get_dummy_components``: every component is a
real diffusers / transformers class built from a small config, so the real pipelines run end to
end on CPU in a fraction of a second. ``materialize_tiny_models`` saves them with
``save_pretrained`` (safetensors) so the studio then loads them through ``from_pretrained`` exactly
as it loads real checkpoints.
"""
from __future__ import annotations

import json
from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets"
TOKENIZER_DIR = ASSETS_DIR / "tiny" / "tokenizer"

#: Version of the tiny twins; bump it when a config changes so cached copies are rebuilt.
TINY_VERSION = "2"


def tiny_tokenizer():
    """A byte-level CLIP tokenizer made from the hand-made files shipped in ``assets/tiny``."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer(
        str(TOKENIZER_DIR / "vocab.json"), str(TOKENIZER_DIR / "merges.txt"), model_max_length=77
    )


def tiny_text_to_image_components(seed: int = 0) -> dict:
    """Components of a working ``StableDiffusionPipeline`` (64x64 in 2 steps ~0.1 s on CPU)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=8,
    )
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        block_out_channels=[16, 32],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
    )
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=512,
            eos_token_id=513,
            pad_token_id=513,
            hidden_size=32,
            intermediate_size=37,
            layer_norm_eps=1e-05,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=514,
            max_position_embeddings=77,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return {
        "unet": unet,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tiny_tokenizer(),
        "scheduler": scheduler,
        "safety_checker": None,
        "feature_extractor": None,
        "image_encoder": None,
    }


def tiny_depth_model(seed: int = 0):
    """A Depth-Anything depth estimator on a tiny DINOv2 backbone, with its image processor."""
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    try:  # the PIL processor: torchvision is not installed beside the CPU torch wheel
        from transformers import DPTImageProcessorPil as DPTImageProcessor
    except ImportError:  # older transformers
        from transformers import DPTImageProcessor

    backbone = Dinov2Config(
        image_size=56,
        patch_size=14,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=37,
        out_features=["stage1", "stage2", "stage3", "stage4"],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=32,
        patch_size=14,
        neck_hidden_sizes=[16, 16, 16, 16],
        fusion_hidden_size=16,
        head_hidden_size=16,
        depth_estimation_type="relative",
    )
    torch.manual_seed(seed)
    model = DepthAnythingForDepthEstimation(config).eval()
    processor = DPTImageProcessor(
        do_resize=True,
        size={"height": 56, "width": 56},
        keep_aspect_ratio=False,
        ensure_multiple_of=14,
        do_rescale=True,
        do_normalize=True,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )
    return model, processor


def materialize_tiny_models(root: Path, seed: int = 0) -> dict[str, Path]:
    """Write the tiny twins under ``root`` (once) and return ``{role: directory}``.

    Directories are complete only when their ``.tiny-ready`` marker exists, so a crash while
    writing leaves a directory that is rebuilt next time rather than loaded half-written.
    """
    root = Path(root)
    out = {"concept": root / "tiny-concept", "depth": root / "tiny-depth", "sketch": root / "tiny-sketch"}
    stamp = json.dumps({"version": TINY_VERSION, "seed": seed})

    def ready(path: Path) -> bool:
        marker = path / ".tiny-ready"
        return marker.exists() and marker.read_text() == stamp

    if not ready(out["concept"]):
        from .devices import quiet_libraries

        quiet_libraries()  # before diffusers is imported: it warns on import
        from diffusers import StableDiffusionPipeline

        components = tiny_text_to_image_components(seed)
        components["requires_safety_checker"] = False
        pipe = StableDiffusionPipeline(**components)
        pipe.save_pretrained(out["concept"], safe_serialization=True)
        (out["concept"] / ".tiny-ready").write_text(stamp)
    if not ready(out["depth"]):
        model, processor = tiny_depth_model(seed)
        model.save_pretrained(out["depth"], safe_serialization=True)
        processor.save_pretrained(out["depth"])
        (out["depth"] / ".tiny-ready").write_text(stamp)
    if not ready(out["sketch"]):
        tiny_controlnet(seed).save_pretrained(out["sketch"], safe_serialization=True)
        (out["sketch"] / ".tiny-ready").write_text(stamp)
    return out


def tiny_controlnet(seed: int = 0):
    """A scribble-style ``ControlNetModel`` twin of the tiny UNet.

    A fresh ControlNet's output convolutions are zero (it starts as a no-op), so they get small
    random weights here: otherwise a test could not see the sketch change the image.
    """
    import torch
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    net = ControlNetModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        in_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        cross_attention_dim=32,
        conditioning_embedding_out_channels=(16, 32),
        norm_num_groups=8,
    )
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        zero_convs = list(net.controlnet_down_blocks) + [net.controlnet_mid_block, net.controlnet_cond_embedding.conv_out]
        for block in zero_convs:
            block.weight.copy_(torch.randn(block.weight.shape, generator=generator) * 0.5)
    return net


def tiny_lora(directory: Path, name: str, seed: int = 0, rank: int = 4, scale: float = 0.5) -> Path:
    """Save a random LoRA for the tiny UNet as ``directory/name.safetensors`` (diffusers' format).

    LoRA ``B`` matrices start at zero (a no-op); they are filled with noise so the adapter visibly
    changes the images.
    """
    import torch
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from diffusers.utils import convert_state_dict_to_diffusers

    unet = tiny_text_to_image_components(0)["unet"]
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for pname, param in unet.named_parameters():
            if "lora_" in pname:
                param.copy_(torch.randn(param.shape, generator=generator) * scale)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(directory, unet_lora_layers=layers,
                                              weight_name=f"{name}.safetensors", safe_serialization=True)
    return directory / f"{name}.safetensors"


# ----------------------------------------------------------------------------- 3D twins
#: Version of the 3D twins (separate from ``TINY_VERSION`` so the two areas rebuild independently).
TINY_MESH_VERSION = "1"


def _shap_e_prior(embedding_dim: int, proj_dim: int, seed: int):
    import torch
    from diffusers import PriorTransformer

    torch.manual_seed(seed)
    return PriorTransformer(
        num_attention_heads=2, attention_head_dim=16, embedding_dim=embedding_dim, num_embeddings=32,
        embedding_proj_dim=proj_dim, time_embed_dim=64, num_layers=1, clip_embed_dim=embedding_dim * 2,
        additional_embeddings=0, time_embed_act_fn="gelu", norm_in_type="layer", encoder_hid_proj_type=None,
        added_emb_type=None,
    )


def _shap_e_renderer(d_latent: int, seed: int):
    import torch
    from diffusers.pipelines.shap_e import ShapERenderer

    width = 8  # the renderer MLP's hidden width; 4 projected layers of 8 vectors = the prior's 32 tokens
    torch.manual_seed(seed)
    return ShapERenderer(
        param_shapes=((width, 93), (width, width), (width, width), (width, width)),
        d_latent=d_latent, d_hidden=width, n_output=12, background=(0.1, 0.1, 0.1),
    )


def _shap_e_scheduler():
    from diffusers import HeunDiscreteScheduler

    return HeunDiscreteScheduler(
        beta_schedule="exp", num_train_timesteps=1024, prediction_type="sample", use_karras_sigmas=True,
        clip_sample=True, clip_sample_range=1.0,
    )


def tiny_shap_e_components(seed: int = 0) -> dict:
    """Components of a working text-to-3D ``ShapEPipeline`` (CLIP text encoder with projection)."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    dim = 16
    torch.manual_seed(seed)
    text_encoder = CLIPTextModelWithProjection(
        CLIPTextConfig(
            bos_token_id=512, eos_token_id=513, pad_token_id=513, hidden_size=dim, projection_dim=dim,
            intermediate_size=37, layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=2,
            vocab_size=514, max_position_embeddings=77,
        )
    )
    return {
        "prior": _shap_e_prior(dim, dim, seed),
        "text_encoder": text_encoder,
        "tokenizer": tiny_tokenizer(),
        "shap_e_renderer": _shap_e_renderer(dim, seed),
        "scheduler": _shap_e_scheduler(),
    }


def tiny_shap_e_img2img_components(seed: int = 0) -> dict:
    """Components of a working image-to-3D ``ShapEImg2ImgPipeline`` (CLIP vision encoder)."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel

    try:
        from transformers import CLIPImageProcessorPil as CLIPImageProcessor
    except ImportError:  # older transformers
        from transformers import CLIPImageProcessor

    dim, image_size = 16, 32
    torch.manual_seed(seed)
    image_encoder = CLIPVisionModel(
        CLIPVisionConfig(hidden_size=dim, image_size=image_size, projection_dim=dim, intermediate_size=24,
                         num_attention_heads=4, num_channels=3, num_hidden_layers=2, patch_size=8)
    )
    # The processor's crop must equal the vision config's image size (see STACK-NOTES).
    processor = CLIPImageProcessor(
        crop_size={"height": image_size, "width": image_size}, size={"shortest_edge": image_size},
        do_center_crop=True, do_normalize=True, do_resize=True,
        image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711],
        resample=3,
    )
    return {
        "prior": _shap_e_prior(dim, dim, seed),
        "image_encoder": image_encoder,
        "image_processor": processor,
        "shap_e_renderer": _shap_e_renderer(dim, seed),
        "scheduler": _shap_e_scheduler(),
    }


def tiny_lrm(seed: int = 0):
    """A TripoSR-class reconstruction model, tiny, with a planted round prior.

    Random weights alone give a near-constant density field (no surface to extract), so the
    learnt triplane tokens carry a smooth ball in channel 0, the upsampler and decoder pass that
    channel through, and the threshold is set to cut the ball at 60 % of the box. Everything else
    is random, so the image still perturbs shape and colour: it shows the flow, not a reconstruction.
    """
    import torch

    from .mesh.lrm import LargeReconstructionModel, LRMConfig

    config = LRMConfig(
        cond_image_size=64,
        vit=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                 image_size=32, patch_size=8),
        plane_size=8, plane_channels=32, num_layers=1, num_heads=2, head_dim=16, upsample_channels=8,
        mlp_neurons=16, mlp_layers=3, threshold=1.0,
    )
    torch.manual_seed(seed)
    model = LargeReconstructionModel(config).eval()
    with torch.no_grad():
        p = config.plane_size
        axis = (torch.arange(p) + 0.5) / p * 2 - 1
        u, v = torch.meshgrid(axis, axis, indexing="ij")
        model.tokenizer.embeddings[:, 0] = (1.0 - u**2 - v**2)  # sum over the 3 planes = 3 - 2 r^2
        model.backbone.proj_out.weight.mul_(0.05)
        model.backbone.proj_out.bias.zero_()
        up = model.post_processor.upsample
        up.weight[0].zero_()
        up.weight[:, 0].zero_()
        up.weight[0, 0] = 1.0
        up.bias[0] = 0.0
        c = config.upsample_channels
        linears = [m for m in model.decoder.layers if isinstance(m, torch.nn.Linear)]
        first = linears[0]
        first.weight[0].zero_()
        first.weight[0, [0, c, 2 * c]] = 1.0
        first.bias[0] = 0.0
        for layer in linears[1:-1]:
            layer.weight[0].zero_()
            layer.weight[0, 0] = 1.0
            layer.bias[0] = 0.0
            layer.weight[1:, 0] = 0.0  # keep the other neurons from leaning on the prior channel
        last = linears[-1]
        last.weight[0].zero_()
        last.weight[0, 0] = 4.0
        last.bias[0] = 0.0
        # Threshold = the density the untouched prior gives at 60 % of the radius.
        s = torch.tensor(3.0 - 2 * 0.6**2)
        for _ in linears[1:]:
            s = torch.nn.functional.silu(s)
        model.config.threshold = float(torch.exp(4.0 * s + config.density_bias))
    return model


def materialize_tiny_mesh_models(root: Path, seed: int = 0) -> dict[str, Path]:
    """Write the 3D twins under ``root`` (once): LRM, Shap-E text and image, TripoSG and its scribble variant."""
    root = Path(root)
    out = {
        "lrm": root / "tiny-lrm",
        "shap-e": root / "tiny-shap-e-img2img",
        "shap-e-text": root / "tiny-shap-e",
        "triposg": root / "tiny-triposg",
        "triposg-scribble": root / "tiny-triposg-scribble",
    }
    stamp = json.dumps({"version": TINY_MESH_VERSION, "seed": seed})

    def ready(path: Path, expected: str = stamp) -> bool:
        marker = path / ".tiny-ready"
        return marker.exists() and marker.read_text() == expected

    if not ready(out["lrm"]):
        tiny_lrm(seed).save(out["lrm"])
        (out["lrm"] / ".tiny-ready").write_text(stamp)
    if not ready(out["shap-e"]) or not ready(out["shap-e-text"]):
        from diffusers import ShapEImg2ImgPipeline, ShapEPipeline

        from .devices import quiet_libraries

        quiet_libraries()
        ShapEImg2ImgPipeline(**tiny_shap_e_img2img_components(seed)).save_pretrained(out["shap-e"], safe_serialization=True)
        (out["shap-e"] / ".tiny-ready").write_text(stamp)
        ShapEPipeline(**tiny_shap_e_components(seed)).save_pretrained(out["shap-e-text"], safe_serialization=True)
        (out["shap-e-text"] / ".tiny-ready").write_text(stamp)
    from .twins.triposg import TWIN_VERSION, build_triposg_scribble_twin, build_triposg_twin

    twin_stamp = json.dumps({"version": TINY_MESH_VERSION, "triposg": TWIN_VERSION, "seed": seed})
    if not ready(out["triposg"], twin_stamp) or not ready(out["triposg-scribble"], twin_stamp):
        build_triposg_twin(out["triposg"], seed)
        (out["triposg"] / ".tiny-ready").write_text(twin_stamp)
        build_triposg_scribble_twin(out["triposg-scribble"], seed)
        (out["triposg-scribble"] / ".tiny-ready").write_text(twin_stamp)
    return out
