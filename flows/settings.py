"""One settings object, read from the environment once and validated at start-up."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from flows.urls import check_postgres_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Every knob of tomeflow; each has an environment variable (TOMEFLOW_<NAME>)."""

    # hide_input_in_errors: a bad DATABASE_URL must not print its password in the error
    model_config = SettingsConfigDict(
        env_prefix="TOMEFLOW_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    # where the data goes: DATABASE_URL wins; without it an embedded PostgreSQL (pgserver)
    database_url: SecretStr | None = Field(default=None, validation_alias="DATABASE_URL")
    # the database password in a file of its own (a compose or k8s secret): any characters,
    # never in the environment or a URL
    database_password_file: Path | None = None
    home: Path = Field(default=PROJECT_ROOT / ".tomeflow", description="local state folder")
    embedded_database: str = "tomeflow"

    seeds_dir: Path = PROJECT_ROOT / "seeds"
    # papers per batch: a batch's records (~95 KB a paper) are what a run holds in memory, up
    # to batches_in_flight of them; at 4,000 papers 500 peaked at 547-566 MB against 750-777
    # MB for 1000, the wall the same, CPU within the noise (250: 464 MB, +12 % CPU)
    batch_size: int = Field(default=500, ge=1, le=50_000)
    # batches at once: one fetching, one assembling, one loading; each holds its records
    batches_in_flight: int = Field(default=3, ge=1, le=16)
    # processes that assemble batches (parse, normalise, count mentions); 0: in the run's own
    assemble_processes: int = Field(
        default_factory=lambda: min(4, max(0, (os.cpu_count() or 1) - 1))
    )
    # a batch with fewer full texts to parse assembles in the run's own process: starting an
    # assemble process (a fresh interpreter and its imports) costs more than their parsing
    assemble_process_min_bodies: int = Field(default=50, ge=0)
    # Great Expectations (and pandas) in a process of their own, started when a batch will
    # validate: the run process stays ~160 MB lighter and GX imports on another core
    gate_process: bool = True
    raw_store_dir: Path | None = Field(default=None, description="default: <home>/raw")
    data_docs_path: Path | None = Field(default=None, description="default: <home>/data_docs")
    data_docs: bool = Field(default=True, description="build Great Expectations Data Docs")
    data_docs_keep: int = Field(default=10, ge=1, description="runs whose Data Docs are kept")
    # where the Data Docs are served (e.g. by `tomeflow docs` or the compose docs service)
    data_docs_url: str | None = None

    # fetch politeness and safety
    # NoDecode: the variable is read as written ("a.org,b.org"), not as JSON
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    contact: str = "https://github.com/tomeflow/tomeflow"
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=4, ge=0, le=20)
    backoff_factor: float = Field(default=0.5, ge=0)
    backoff_max: float = Field(default=30.0, ge=0)
    retry_after_cap: float = Field(default=60.0, ge=0)
    per_host_rate: float = Field(default=2.0, gt=0, description="requests per second per host")
    per_host_concurrency: int = Field(default=4, ge=1, le=64)
    max_body_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    freshness_hours: float = Field(default=24.0 * 7, ge=0)
    # fetch slots per host (PostgreSQL advisory locks): batches of all runs and workers
    # that may fetch from one host at the same time
    fetch_host_slots: int = Field(default=1, ge=1, le=64)

    # where batches run: "local" (threads and processes of the run) or "dask" (a Dask
    # cluster: the scheduler at dask_address, or a local cluster of dask_workers processes)
    task_runner: Literal["local", "dask"] = "local"
    dask_address: str | None = None
    dask_workers: int = Field(default=2, ge=1, le=256)

    # the run summary counts a table's rows exactly while PostgreSQL estimates it at fewer
    # rows than this; a bigger table shows PostgreSQL's estimate (~): a count reads all of it
    exact_row_counts_below: int = Field(default=1_000_000, ge=0)

    # data quality
    dq_max_failure_share: float = Field(default=0.2, ge=0, le=1)
    reference_count_gap_tolerance: int = Field(default=3, ge=0)
    # the drift gate: a figure (papers, papers with fetchable full text, entities) falling by
    # more than this share since the last completed run fails the run (tables.drift)
    drift_max_drop: float = Field(default=0.05, ge=0, le=1)

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: SecretStr | None) -> SecretStr | None:
        # refused before anything connects: a mysql:// url once migrated the PostgreSQL at
        # the same host, and psycopg printed the whole url, password included
        if value is not None:
            check_postgres_url(value.get_secret_value())
        return value

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        # accept "a.org,b.org" (or "a.org b.org") as well as a json list
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [h for h in value.replace(",", " ").split() if h]
        return value

    @property
    def raw_dir(self) -> Path:
        """Content-addressed store of every fetched body."""
        return self.raw_store_dir or self.home / "raw"

    @property
    def pgdata(self) -> Path:
        """Data folder of the embedded PostgreSQL."""
        return self.home / "pgdata"

    @property
    def data_docs_dir(self) -> Path:
        """Where Great Expectations writes its Data Docs."""
        return self.data_docs_path or self.home / "data_docs"

    @property
    def user_agent(self) -> str:
        """The User-Agent every request carries."""
        from flows import __version__

        return f"tomeflow/{__version__} (+{self.contact})"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once."""
    return Settings()
