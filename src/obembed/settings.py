"""Configuration, in one place.

Precedence, highest first: CLI flags > keyword arguments > environment (``OBEMBED_*``) > ``.env`` > defaults.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_MODEL", "Settings", "get_settings"]

DEFAULT_MODEL = "st:all-MiniLM-L6-v2"


class Settings(BaseSettings):
    """obembed settings; every field can be set as ``OBEMBED_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(
        env_prefix="OBEMBED_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    model: str = Field(DEFAULT_MODEL, description="default provider spec")
    db_path: str = Field("./obembed.db", description="folder of the embedded seekdb")
    engine_idle: float = Field(0.0, ge=0, description="keep the embedded engine warm this many idle seconds after "
                               "a command (0: off); see `obembed engine`")
    dsn: SecretStr | None = Field(None, description="mysql://user:pass@host:port/db for a seekdb server / OceanBase")
    device: str | None = Field(None, description="torch device for local models (cpu, cuda, mps); auto when unset")
    truncate: Literal["truncate", "error", "chunk"] = "truncate"
    batch_size: int = Field(32, ge=1)
    timeout: float = Field(60.0, gt=0, description="HTTP timeout in seconds for remote providers")
    max_retries: int = Field(5, ge=0)
    cache_dir: str | None = Field(None, description="where derived artefacts (ONNX exports) are cached")
    fast_start: str = Field(
        "auto",
        description="the verified ONNX fast path of obembed.load for local st:/hf: models on the CPU: "
        "auto (use the export, make it when missing), cached (only an existing export), off (always torch)",
    )
    ingest_write_delay: float = Field(0.0, ge=0, description="test hook: seconds to sleep before each ingest write")

    @property
    def fast_start_mode(self) -> Literal["auto", "cached", "off"]:
        """:attr:`fast_start` normalised (``0``/``false``/``no``/``never`` mean off; unknown values mean auto)."""
        mode = self.fast_start.strip().lower()
        if mode in ("0", "off", "false", "no", "never", "torch"):
            return "off"
        return "cached" if mode == "cached" else "auto"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings from env and .env (cached; tests build their own ``Settings``)."""
    return Settings()
