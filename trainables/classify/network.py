"""The network of a classify task: a builder named by import path, and its automatic module map."""
from __future__ import annotations

import contextlib
import importlib
import socket
import sys
from collections.abc import Callable, Collection, Iterator
from typing import Any

from torch import nn

import mqat

from .torchvision_compat import import_torchvision, needs_torchvision

AUTO_NAMES = ("stem", "body", "head")


def builder(path: str) -> Callable[..., nn.Module]:
    """The callable ``module:name`` names (``torchvision.models:resnet18``, ``timm:create_model``,
    a user's ``my_nets:build``); ValueError with one line where it cannot be found."""
    module_name, sep, name = path.partition(":")
    if not sep or not module_name or not name:
        raise ValueError(f"task.model must be 'module:callable', e.g. 'torchvision.models:resnet18', but got {path!r}")
    try:
        if needs_torchvision(module_name):
            import_torchvision()
        module = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - any failure of the named module is reported as one line
        raise ValueError(f"task.model: cannot import {module_name!r}: {type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}") from None
    target: Any = module
    for part in name.split("."):
        target = getattr(target, part, None)
    if not callable(target):
        raise ValueError(f"task.model: {module_name!r} has no callable {name!r}")  # noqa: TRY004 - a config error
    return target


def build(path: str, args: dict[str, Any]) -> nn.Module:
    """The network ``path(**args)`` builds, where every way it can fail is one line (ValueError):
    arguments its builder does not take, pretrained weights it cannot fetch (within seconds: a
    hub that cannot be reached is not asked again and again), anything else it raises."""
    make = builder(path)
    try:
        with _fetching_fails_fast(bool(args.get("pretrained") or args.get("weights"))):
            model = make(**args)
    except TypeError as err:
        raise ValueError(f"task.model_args do not fit {path}: {_first_line(err)}") from None
    except Exception as err:  # noqa: BLE001 - whatever the builder raises is reported as one line
        if _is_fetch_error(err):
            raise ValueError(f"task.model: {path} could not fetch its pretrained weights ({_first_line(err)}): "
                             "fetch them once where the network reaches (they are cached), or give task.weights: "
                             "a local state-dict file, without pretrained/weights in task.model_args") from None
        raise ValueError(f"task.model: {path} failed to build: {_first_line(err)}") from None
    if not isinstance(model, nn.Module):
        raise ValueError(f"task.model: {path} returned {type(model).__name__}, not a torch module")  # noqa: TRY004
    return model


def _first_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}"


@contextlib.contextmanager
def _fetching_fails_fast(fetches: bool) -> Iterator[None]:
    """While a builder runs: downloads give up after 10 s of silence (torch hub has no timeout of
    its own), and where the Hugging Face hub (timm's weights) does not answer a first request,
    its offline mode is on, so its files come from the cache or fail at once (the hub's client
    retries a refused connection for about 50 s)."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(10)
    hub = sys.modules.get("huggingface_hub.constants")
    offline = getattr(hub, "HF_HUB_OFFLINE", None)
    try:
        if fetches and hub is not None and not offline and not _hub_answers(hub.ENDPOINT):
            hub.HF_HUB_OFFLINE = True
        yield
    finally:
        socket.setdefaulttimeout(previous)
        if hub is not None:
            hub.HF_HUB_OFFLINE = offline


def _hub_answers(endpoint: str) -> bool:
    from huggingface_hub import get_session

    try:
        get_session().head(endpoint, timeout=5)
    except Exception:  # noqa: BLE001 - any failure to get an answer means: unreachable
        return False
    return True


_FETCH_ERRORS = ("LocalEntryNotFoundError", "OfflineModeIsEnabled", "URLError", "ConnectError", "ConnectionError",
                 "HTTPError", "TimeoutError", "ConnectTimeout", "ProxyError", "gaierror", "timeout")


def _is_fetch_error(err: BaseException | None) -> bool:
    """Whether ``err`` (or what caused it) is a failed download."""
    seen = 0
    while err is not None and seen < 10:
        if type(err).__name__ in _FETCH_ERRORS:
            return True
        err, seen = err.__cause__ or err.__context__, seen + 1
    return False


def auto_modules(model: nn.Module, *, kept: Collection[str] = ()) -> dict[str, list[str]]:
    """``stem`` / ``body`` / ``head``: the blocks (:func:`mqat.blocks`) cut at the two boundaries that
    make the three shares of the quantized weights most equal (the smallest share the largest,
    so that every module's bits matter, then the largest the smallest); each module's prefixes
    are its blocks' names."""
    found = mqat.blocks(model, kept=kept, parts=len(AUTO_NAMES))
    if sum(w > 0 for _, w in found) < len(AUTO_NAMES):
        raise ValueError(f"task.modules: auto needs at least {len(AUTO_NAMES)} blocks holding quantized conv or "
                         f"linear layers, but the network has {sum(w > 0 for _, w in found)}: give the modules as "
                         "prefixes")
    weights = [w for _, w in found]

    def shares(cut: tuple[int, int]) -> tuple[int, int]:
        sums = (sum(weights[:cut[0]]), sum(weights[cut[0]:cut[1]]), sum(weights[cut[1]:]))
        return -min(sums), max(sums)

    best = min(((i, j) for i in range(1, len(found) - 1) for j in range(i + 1, len(found))), key=shares)
    groups = (found[:best[0]], found[best[0]:best[1]], found[best[1]:])
    return {name: [f"{block}." for block, _ in group] for name, group in zip(AUTO_NAMES, groups)}
