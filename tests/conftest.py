import importlib.util
from pathlib import Path

import pytest
import torch

from seqgan.cli import main
from seqgan.config import preset

# `seqgan train` flags for a run of a few seconds: the tiny preset, 2 MLE epochs, 1 adversarial step.
TINY_FAST = ["--preset", "tiny", "--no-progress", "--set", "schedule.mle_epochs=2", "schedule.adv_steps=1"]


def load_script(name: str):
    """scripts/NAME.py imported as a module (the scripts are files, not a package)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def log_probs_by_hand(model, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The tests' reference: log softmax(logits / τ) at each token of ``tokens`` [B, T], by
    log-softmax and gather (in the model's dtype: make it .double() for a float64 reference)."""
    with torch.no_grad():
        return torch.log_softmax(model.logits(tokens) / temperature, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture
def tiny_cfg():
    return preset("tiny")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished TINY_FAST run directory, one per test module (tests copy it before editing it);
    what the command printed is kept beside it, in ../stdout.txt."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("run") / "r"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["train", *TINY_FAST, "--out", str(out)]) == 0
    (out.parent / "stdout.txt").write_text(printed.getvalue())
    return out


def compiled_optimizer_or_skip(built: str, warnings_seen) -> None:
    """For tests of `train.CopyAdam`: when `discriminator_optimizer` built something else
    (``built``), skip only if this machine cannot compile at all (a one-line function through
    torch.compile, as a machine without a C++ compiler); if it can, our kernel's compile failed:
    a test failure, not a skip."""
    try:
        torch.compile(lambda x: x * 2.0 + 1.0, dynamic=False)(torch.zeros(4))
    except Exception as e:  # the toolchain, not our code
        pytest.skip(f"torch.compile does not work here ({type(e).__name__}); built {built}")
    pytest.fail(f"torch.compile works here but the discriminator's optimizer fell back to {built}: "
                f"{[str(w) for w in warnings_seen]}")


@pytest.fixture
def block_import(monkeypatch):
    """block_import("pkg"): from then on `import pkg` raises ImportError, as if not installed."""
    import builtins

    real_import = builtins.__import__

    def block(blocked: str) -> None:
        def guarded(name, *args, **kwargs):
            if name == blocked:
                raise ImportError(name)
            return real_import(name, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", guarded)

    return block
