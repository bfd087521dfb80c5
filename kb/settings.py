"""One settings object for every front end (prefix ZHIKU_), built by get_settings() or passed in."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime configuration; every field maps to a ZHIKU_* environment variable."""

    model_config = SettingsConfigDict(env_prefix="ZHIKU_", env_file=".env", extra="ignore", populate_by_name=True)

    data_dir: Path = Field(default=Path("data"), description="Where the SQLite database, local index, models and uploads live.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default sqlite:///<data_dir>/zhiku.db. PostgreSQL: postgresql+psycopg://user@host/db")
    qdrant_url: str | None = Field(default=None, description="Qdrant server URL; unset = embedded engine under <data_dir>/index.")
    qdrant_api_key: str | None = Field(default=None, description="API key for the Qdrant server, if it needs one.")
    embed_model: str | None = Field(default=None, description="Path of a local sentence-transformers folder; default <data_dir>/models/multilingual-e5-small (built by `zhiku models prepare`).")
    encoder: Literal["auto", "onnx", "int8", "torch"] = Field(
        default="auto", validation_alias=AliasChoices("ZHIKU_ENCODER", "ZHIKU_QUERY_ENCODER"),
        description="How texts are embedded: auto (the encoder whose vectors the index holds: int8 for an index built "
                    "with int8, else onnx), onnx (fp32: queries through the model's fp32 ONNX export made by `zhiku "
                    "models prepare` — the same vectors as PyTorch, faster; passages through PyTorch), int8 (queries and "
                    "passages through its int8 export: a third less time per utterance, no PyTorch in the process, "
                    "retrieval a hair lower — docs/BENCHMARKS.md) or torch. Switch an index with `ZHIKU_ENCODER=… "
                    "zhiku reindex`; auto follows it from then on.")
    host: str = Field(default="127.0.0.1", description="Address `zhiku serve` binds.")
    port: int = Field(default=8000, description="Port `zhiku serve` binds.")
    secret_key: str | None = Field(default=None, description="Signing key for sessions and tokens; default: generated once into <data_dir>/secret_key.")
    metrics_token: str | None = Field(default=None, description="Bearer token a Prometheus scrape of /metrics must send; unset = /metrics is open (keep it to the monitoring network).")
    log_level: str = Field(default="INFO", description="Python logging level.")
    log_format: str = Field(default="json", description="`zhiku serve` log lines: json (one object per line, with the request id) or text.")
    run_worker: bool = Field(default=True, description="Run the outbox worker inside the server process; false when `zhiku worker` runs on its own (several API workers).")
    max_body_bytes: int = Field(default=1_048_576, description="Largest JSON request body accepted (bytes); larger → 413.")
    upload_max_bytes: int = Field(default=50 * 1024 * 1024, description="Largest update-pack file upload (bytes); larger → 413.")
    sla_hours: float = Field(default=24.0, description="Review SLA: a submitted pack is overdue this many hours later.")
    notice_days: float = Field(default=7.0, description="How long a changed entry's card carries the change marker.")
    max_cards: int = Field(default=3, ge=1, le=10, description="Cards shown at most in a live conversation's sidebar.")
    live_lanes: int = Field(default=2, ge=1, le=64, description="Live-conversation utterances one server process works on at once; the others wait their turn (2 measured best on 2 cores, docs/BENCHMARKS.md).")

    @cached_property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_data_dir / 'zhiku.db'}"

    @property
    def index_path(self) -> Path:
        return self.resolved_data_dir / "index"

    @property
    def model_path(self) -> Path:
        if self.embed_model:
            return Path(self.embed_model).expanduser()
        return self.resolved_data_dir / "models" / "multilingual-e5-small"


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment (and .env), with explicit overrides on top."""
    return Settings(**overrides)  # type: ignore[arg-type]
