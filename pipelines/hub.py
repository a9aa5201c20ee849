"""Upload a stage's final model to the Hugging Face hub (`push_to_hub: OWNER/NAME`).

Pushing needs internet and a write token (`huggingface-cli login` or HF_TOKEN). Both are
checked when the stage starts, so a run that cannot push fails before training, not after.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.config import ConfigError


def check_push(repo_id: str) -> None:
    """Raise one ConfigError line unless `repo_id` is well formed, a token is available and the
    hub answers."""
    from huggingface_hub import HfApi, get_token

    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ConfigError(f"push_to_hub={repo_id!r}: give a hub repo id as OWNER/NAME")
    if get_token() is None:
        raise ConfigError(
            "push_to_hub needs a Hugging Face write token: run `huggingface-cli login` "
            "or set HF_TOKEN (and internet access), or drop push_to_hub"
        )
    try:
        HfApi().whoami()
    except Exception as exc:  # no connection, DNS, timeout, bad token
        raise ConfigError(
            f"push_to_hub={repo_id}: the Hugging Face hub cannot be reached or refused the "
            f"token ({type(exc).__name__}); pushing needs internet, or drop push_to_hub"
        ) from exc


def push_model(folder: Path, repo_id: str) -> str:
    """Create `repo_id` if needed, upload `folder` into it and return the repo's URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    url = api.create_repo(repo_id, repo_type="model", exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message="r1kit: final model")
    return str(url)
