"""Every knob of the studio in one place: a pydantic-settings object read from ``STUDIO_*`` variables."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    """Studio settings; ``STUDIO_DATA_DIR=/path`` sets ``data_dir`` and so on for each field."""

    model_config = SettingsConfigDict(env_prefix="STUDIO_", extra="ignore")

    # Where things live
    data_dir: Path = Field(default_factory=lambda: Path.home() / "DesignStudio", description="database, files and models")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default: SQLite file in data_dir")
    models_dir: Path | None = Field(default=None, description="local model weights; default: data_dir/models")
    assets_dir: Path = REPO_ROOT / "assets"

    # Models and hardware
    profile: Literal["tiny", "standard", "quality"] = "tiny"
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    # GPU memory modes (concept models); out-of-memory always retries smaller / tiled / offloaded
    attention: Literal["sdpa", "default"] = "sdpa"
    vae_slicing: bool = False
    vae_tiling: bool = False
    cpu_offload: Literal["none", "model", "sequential"] = "none"

    # Server
    host: str = "127.0.0.1"
    port: int = Field(default=7860, ge=1, le=65535)

    # Input limits (checked before any model work)
    max_prompt_chars: int = 1000
    max_steps: int = 150
    max_images: int = 16
    max_side: int = 2048
    max_image_pixels: int = 4096 * 4096
    max_upload_mb: int = 20
    max_request_mb: int | None = Field(default=None, description="all files of one upload request together; default: twice max_upload_mb")

    # Brand guard (governance): keys live outside the data dir; the vault holds the archive encrypted
    key_dir: Path = Field(default_factory=lambda: Path.home() / ".config" / "design-studio" / "keys",
                          description="studio signing key (Ed25519); never inside data_dir")
    vault_dir: Path | None = Field(default=None, description="encrypted archive; default: data_dir/vault")
    guarded: bool = Field(default=True, description="offline guard: loopback only, no share links, catalogue models only")
    near_copy_threshold: int = Field(default=24, ge=0, le=128, description="hash distance (of 128 bits) at or under which a design is a near-copy")
    season: str = Field(default="", max_length=40, description="season recorded with new styles, e.g. SS27")
    # C2PA Content Credentials on PNG outputs when a certificate is configured (needs c2pa-python)
    c2pa_cert: Path | None = Field(default=None, description="PEM certificate chain, end-entity first (STUDIO_C2PA_CERT)")
    c2pa_key: Path | None = Field(default=None, description="PEM private key of that certificate (STUDIO_C2PA_KEY)")
    c2pa_alg: str = Field(default="es256", pattern="^(es256|ps256|ed25519)$", description="C2PA signing algorithm of the key")

    # Defaults a designer sees
    default_steps: int | None = None  # None: the profile's default
    default_images: int = 4

    @field_validator("data_dir", "models_dir", "assets_dir", "key_dir", "vault_dir", "c2pa_cert", "c2pa_key", mode="after")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return None if value is None else Path(value).expanduser().resolve()

    @model_validator(mode="after")
    def _keys_outside_data(self):
        if self.key_dir == self.data_dir or self.data_dir in self.key_dir.parents:
            raise ValueError(f"key_dir {self.key_dir} is inside data_dir {self.data_dir}; keep keys outside the data dir")
        return self

    @model_validator(mode="after")
    def _c2pa_pair(self):
        if (self.c2pa_cert is None) != (self.c2pa_key is None):
            given, missing = ("c2pa_cert", "c2pa_key") if self.c2pa_cert else ("c2pa_key", "c2pa_cert")
            raise ValueError(f"{given} is set but {missing} is not; C2PA signing needs both (STUDIO_C2PA_CERT and STUDIO_C2PA_KEY)")
        return self

    @property
    def resolved_vault_dir(self) -> Path:
        return self.vault_dir or self.data_dir / "vault"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'studio.db'}"

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir or self.data_dir / "models"

    @property
    def files_dir(self) -> Path:
        """Content-addressed output files (the only folder the web server may serve from)."""
        return self.data_dir / "files"

    @property
    def downloads_dir(self) -> Path:
        """Readable-named copies of files for download (served, like ``files_dir``)."""
        return self.data_dir / "downloads"

    @property
    def adapters_dir(self) -> Path:
        """LoRA adapters as ``<name>.safetensors`` (until the brand-guard vault supplies them)."""
        return self.data_dir / "adapters"

    @property
    def presets_dir(self) -> Path:
        """The designer's edited style presets (override the shipped ones in ``assets/presets``)."""
        return self.data_dir / "presets"

    @property
    def scratch_dir(self) -> Path:
        return self.data_dir / "scratch"
