"""``train()``: rollouts from the graphs, J = J_CISPO + alpha * J_SFT with TRL, weights in a folder.

One call does the whole run: it checks the settings and loads the dataset (errors name the setting,
before any model is loaded), loads the policy with transformers, registers it as a model spec whose
backend keeps token ids and log-probabilities, creates the training as an experiment in the ledger,
and hands TRL's ``GRPOTrainer`` (``OperatorTrainer``) the mixture's keys as its dataset and
``Rollouts`` as its ``rollout_func``. At the end it writes the trained weights and tokenizer
(``save_pretrained``, float32), ``settings.json``, ``history.csv`` and ``rewards.png`` into
``settings.out``: ``pdr eval --model transformers:<out>`` evaluates the result.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from pdr.evaluation.datasets import load_dataset
from pdr.models import register_model, unregister_model
from pdr.store.ledger import Ledger
from pdr.store.rollouts import list_rollouts
from pdr.training.curves import StepReward, step_rewards, write_curves
from pdr.training.mixture import ScheduledProblem, mixture
from pdr.training.rollouts import Rollouts, mode_config
from pdr.training.settings import TrainError, TrainSettings

INSTALL_HINT = 'pip install "pdr[train]" (torch, transformers, trl, datasets, gguf)'


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced.

    Attributes:
        name: the training's name in the ledger (an experiment).
        experiment_id: its ledger id.
        out: the folder holding the trained weights (``transformers:<out>`` evaluates them).
        steps: updates made.
        rewards: per update and mode, the rollouts' rewards as the ledger holds them.
        history: per update, the trainer's logged figures (rewards, loss terms, clip ratio).
        wall_s: wall time of the run.
        files: what was written into ``out``.
    """

    name: str
    experiment_id: int
    out: Path
    steps: int
    rewards: list[StepReward]
    history: list[dict[str, float]]
    wall_s: float
    files: list[Path] = field(default_factory=list)


@contextmanager
def library_notices_off() -> Iterator[None]:
    """Silence what TRL and transformers 5 say about each other on every run (not pdr's concern).

    TRL marks ``rollout_func`` experimental, and transformers 5 renamed gradient checkpointing,
    which TRL still uses by its old name.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="You are using 'rollout_func'")
        warnings.filterwarnings("ignore", message=".*gradient_checkpointing.* is deprecated")
        yield


def policy_source(model: str) -> str:
    """The transformers source of a ``--model`` value (``transformers:`` optional)."""
    return model.removeprefix("transformers:").strip()


def _require_training_stack() -> None:
    try:
        import datasets  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
        import trl  # noqa: F401
    except ImportError as error:
        raise TrainError(f"training needs the train extra: {INSTALL_HINT} ({error})") from error


def training_config(settings: TrainSettings) -> dict[str, Any]:
    """The experiment config stored in the ledger: the two modes as report configurations."""
    return {
        "training": settings.as_dict(),
        "ladders": [mode_config(mode, settings).as_dict() for mode in ("long", "operator")],
        "budgets": [],
        "seeds": list(range(settings.group_size)),
    }


def train(
    settings: TrainSettings,
    *,
    ledger: Ledger | None = None,
    console: Console | None = None,
    progress: bool = True,
    model: Any = None,
    tokenizer: Any = None,
) -> TrainResult:
    """Train the policy on the 50/50 mixture and save it; see the module docstring.

    Args:
        settings: what to train and how (checked first).
        ledger: where the rollouts go (default: ``Ledger()``, the user's ledger).
        console: where the progress bar (or, off a terminal, one line per update) is shown.
        progress: show progress at all.
        model: an already loaded policy (its ``tokenizer`` too) instead of ``settings.model``.
        tokenizer: the tokenizer of ``model``.

    Raises:
        TrainError: a setting that cannot be used, a missing train extra, a taken name.
        DatasetError: the dataset cannot be loaded.
    """
    settings.check()
    started = time.perf_counter()
    data = load_dataset(settings.dataset)
    schedule = mixture(
        data.problems,
        steps=settings.steps,
        per_step=settings.problems_per_step,
        seed=settings.seed,
    )
    _require_training_stack()
    if settings.vllm:
        import torch

        if not torch.cuda.is_available():
            raise TrainError("vllm: TRL's vLLM engine needs a CUDA GPU; leave --vllm out here")
    from pdr.models.transformers_backend import load_model, load_tokenizer, resolve_source

    ledger = ledger or Ledger()
    out = settings.folder
    out.mkdir(parents=True, exist_ok=True)
    with library_notices_off():
        config = grpo_config(settings, out)  # TRL checks its arguments before anything loads
    main = config.process_index == 0
    if config.world_size > 1 and settings.name is None:
        raise TrainError("name: several processes train together; give them one --name")
    name = settings.name or datetime.now(UTC).strftime("train-%Y%m%d-%H%M%S")
    if main and ledger.find_experiment(name) is not None:
        raise TrainError(f"name: the ledger already has a training or experiment {name!r}")
    settings = replace(settings, name=name)
    if model is None or tokenizer is None:
        path = resolve_source(policy_source(settings.model))
        tokenizer, model = load_tokenizer(path), load_model(path)
    if not settings.train_embeddings:
        for module in (model.get_input_embeddings(), model.get_output_embeddings()):
            module.weight.requires_grad_(False)
    # The main process creates the training in the ledger; the others (accelerate launch) wait.
    with config.main_process_first(desc="the training's experiment in the ledger"):
        found = ledger.find_experiment(name)
        experiment_id = found if found is not None and not main else None
        if experiment_id is None:
            experiment_id = ledger.create_experiment(name, training_config(settings))
    from pdr.training.progress import TrainingProgress

    watcher = TrainingProgress(console, show=progress)
    policy = f"policy:{name}"
    try:
        with library_notices_off():
            trainer = _trainer(
                settings, config, schedule, model, tokenizer, policy, ledger, experiment_id, watcher
            )
            trainer.train()
    finally:
        unregister_model(policy)
        for scratch in (out / "trainer", out / "rollout-checkpoints"):
            if scratch.is_dir() and not any(scratch.iterdir()):
                scratch.rmdir()  # TRL's output folder and the rollouts' checkpoints: empty
    rewards = step_rewards(list_rollouts(ledger, experiment_id))
    files: list[Path] = []
    if main:
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        (out / "settings.json").write_text(json.dumps(settings.as_dict(), indent=2) + "\n")
        files = write_curves(out, rewards, watcher.history, title=f"{name}: {settings.model}")
    return TrainResult(
        name=name,
        experiment_id=experiment_id,
        out=out,
        steps=int(trainer.state.global_step),
        rewards=rewards,
        history=watcher.history,
        wall_s=round(time.perf_counter() - started, 1),
        files=files,
    )


def _trainer(
    settings: TrainSettings,
    config: Any,
    schedule: list[ScheduledProblem],
    model: Any,
    tokenizer: Any,
    policy: str,
    ledger: Ledger,
    experiment_id: int,
    watcher: Any,
) -> Any:
    """The OperatorTrainer of the run, its policy backend registered as ``policy``."""
    from datasets import Dataset
    from transformers import PrinterCallback

    from pdr.models.transformers_backend import TransformersBackend
    from pdr.training.objective import OperatorTrainer
    from pdr.training.rollouts import pdr_reward

    out = settings.folder
    checkpoints = out / "rollout-checkpoints"
    rollouts = Rollouts(
        settings,
        schedule,
        policy=policy,
        ledger=ledger,
        experiment_id=experiment_id,
        checkpoints=checkpoints,
        pad_token=int(tokenizer.pad_token_id),
    )
    trainer = OperatorTrainer(
        model=model,
        reward_funcs=[pdr_reward],
        args=config,
        train_dataset=Dataset.from_dict({"prompt": [row.key for row in schedule]}),
        processing_class=tokenizer,
        rollout_func=rollouts,
        callbacks=[watcher],
        alpha=settings.alpha,
    )
    trainer.remove_callback(PrinterCallback)  # the progress callback shows the logs
    # The graphs call the policy through this backend. It holds the model being trained (or
    # TRL's vLLM engine, whose weights TRL syncs before each update's rollouts), so every
    # update's rollouts come from the current weights.
    backend: Any
    if settings.vllm:
        from pdr.models.vllm_engine import VLLMEngineBackend

        source = policy_source(settings.model)
        backend = VLLMEngineBackend(
            policy, source, llm=trainer.vllm_generation.llm, keep_tokens=True, batch_wait_s=0.5
        )
    else:
        backend = TransformersBackend(
            policy, model=model, tokenizer=tokenizer, keep_tokens=True, batch_wait_s=0.5
        )
    register_model(policy, backend)
    return trainer


def grpo_config(settings: TrainSettings, out: Path) -> Any:
    """TRL's GRPOConfig for the run: CISPO, one update per generation batch, the mixture in order.

    ``shuffle_dataset=False`` keeps the mixture's order; ``steps_per_generation`` equal to
    ``gradient_accumulation_steps`` (TRL's default) makes each update consume exactly one
    generation batch, which holds one update's problems x ``group_size`` rollouts.
    """
    import torch
    from trl.trainer.grpo_config import GRPOConfig

    gpu = torch.cuda.is_available()
    rollouts = settings.problems_per_step * settings.group_size
    return GRPOConfig(
        output_dir=str(out / "trainer"),
        loss_type="cispo",
        epsilon_high=settings.epsilon_high,
        beta=0.0,
        scale_rewards="group",
        num_generations=settings.group_size,
        per_device_train_batch_size=rollouts // settings.gradient_accumulation_steps,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        num_iterations=1,
        max_steps=settings.steps,
        learning_rate=settings.learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        temperature=settings.temperature,
        max_completion_length=settings.max_tokens,
        shuffle_dataset=False,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=settings.seed,
        dataloader_num_workers=0,
        # vLLM: the engine colocated with the trainer; the CISPO weight is already taken against
        # the sampler's log-probabilities, so TRL's own correction for vLLM stays off.
        use_vllm=settings.vllm,
        vllm_mode="colocate",
        vllm_importance_sampling_correction=False,
        use_cpu=not gpu,
        bf16=gpu and torch.cuda.is_bf16_supported(),
    )
