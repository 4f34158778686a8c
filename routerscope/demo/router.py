"""The reference router: local models (torch when installed) and an OpenAI-compatible provider.

``DemoRouter`` uses the five quick-wins (pooled client, ``@lazy`` managers,
``ModelCache``, the memory monitor started by ``routerscope.auto``, the batch
optimizer). It reaches the provider two ways, as routers do: through the pooled
``requests`` client, and through the official ``openai`` SDK (sync and async,
when it is installed; ``ask(..., via=...)``). ``EagerRouter`` builds everything up front, as the seed's router
did before its quick-wins, so the demo can time both start-ups.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final

from routerscope.core.lazy import lazy

__all__ = ["MODELS", "VIA", "DemoRouter", "EagerRouter", "build_models", "openai_available",
           "torch_available"]

#: how ``DemoRouter.ask`` reaches the provider
VIA: Final = ("requests", "openai", "openai-async")

# name -> hidden width of a 512 -> h -> h -> 512 MLP (fp32): 1.3, 6.8, 25, 50 MB
MODELS: Final = {"tiny-mlp": 256, "small-mlp": 768, "medium-mlp": 2048, "large-mlp": 3072}
_NO_TORCH_MB: Final = {"tiny-mlp": 1, "small-mlp": 7, "medium-mlp": 25, "large-mlp": 50}


def torch_available() -> bool:
    if os.environ.get("ROUTERSCOPE_DEMO_NO_TORCH") == "1":
        return False
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def openai_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("openai") is not None


def _mlp(torch: Any, hidden: int) -> Any:
    return torch.nn.Sequential(torch.nn.Linear(512, hidden), torch.nn.ReLU(),
                               torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
                               torch.nn.Linear(hidden, 512))


def build_models(directory: Path, use_torch: bool) -> dict[str, Path]:
    """Create the demo's models on disk (once); nothing is downloaded."""
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, hidden in MODELS.items():
        path = directory / (f"{name}.pt" if use_torch else f"{name}.bin")
        if not path.exists():
            if use_torch:
                import torch

                torch.manual_seed(hidden)
                torch.save(_mlp(torch, hidden).state_dict(), path)
            else:
                path.write_bytes(os.urandom(1024) * (_NO_TORCH_MB[name] * 1024))
        out[name] = path
    return out


class _PlainModel:
    """The no-torch stand-in: weights as bytes of a known size, a cheap 'forward'."""

    def __init__(self, data: bytes) -> None:
        self.weights = data
        self.nbytes = len(data)

    def __call__(self, prompt: str) -> int:
        return sum(self.weights[: 4096 + len(prompt)]) % 997


def load_model(path: Path, use_torch: bool) -> Any:
    if not use_torch:
        return _PlainModel(path.read_bytes())
    import torch

    hidden = MODELS[path.stem]
    model = _mlp(torch, hidden)
    model.load_state_dict(torch.load(path, weights_only=True))
    return model.eval()


def run_model(model: Any, prompt: str, use_torch: bool) -> int:
    if not use_torch:
        return int(model(prompt))
    import torch

    with torch.inference_mode():
        x = torch.zeros(4, 512)
        x[:, : min(512, len(prompt))] = 1.0
        return int(model(x).argmax())


class DemoRouter:
    """Lazy managers, a byte-bounded model cache, a pooled provider client."""

    def __init__(self, provider_url: str, models_dir: Path, *, cache_mb: float = 60,
                 use_torch: bool | None = None, api_key: str = "sk-or-demo-not-a-real-key") -> None:
        self.provider_url = provider_url
        self.models_dir = models_dir
        self.cache_mb = cache_mb
        self.use_torch = torch_available() if use_torch is None else use_torch
        self._api_key = api_key

    @lazy
    def client(self) -> Any:
        from routerscope.core.openrouter import OpenRouterClient

        return OpenRouterClient(self.provider_url, api_key=self._api_key, provider_name="openrouter",
                                app_name="routerscope-demo")

    @lazy
    def cache(self) -> Any:
        from routerscope.core.cache import ModelCache

        return ModelCache(self.cache_mb, name="demo-models")

    @lazy
    def model_paths(self) -> dict[str, Path]:
        return build_models(self.models_dir, self.use_torch)

    @lazy
    def optimizer(self) -> Any:
        from routerscope.core.batch import BatchOptimizer, detect_hardware

        return BatchOptimizer(detect_hardware(use_torch=self.use_torch))

    @lazy
    def openai_client(self) -> Any:
        import openai

        return openai.OpenAI(base_url=self.provider_url, api_key=self._api_key, max_retries=0)

    @lazy
    def openai_async(self) -> Any:
        """An ``AsyncOpenAI`` client and the event loop it runs on (one per router)."""
        import asyncio

        import openai

        loop = asyncio.new_event_loop()
        return loop, openai.AsyncOpenAI(base_url=self.provider_url, api_key=self._api_key,
                                        max_retries=0)

    def close(self) -> None:
        """Close the SDK clients (and the async one's loop) that were built."""
        if "openai_client" in self.__dict__:
            self.openai_client.close()
        if "openai_async" in self.__dict__:
            loop, client = self.openai_async
            loop.run_until_complete(client.close())
            loop.close()

    def infer(self, model: str, prompt: str) -> int:
        path = self.model_paths[model]
        with self.cache.use(model, lambda: load_model(path, self.use_torch)) as m:
            return run_model(m, prompt, self.use_torch)

    def ask(self, model: str, prompt: str, *, stream: bool = False, max_tokens: int = 64,
            via: str = "requests") -> str:
        msgs = [{"role": "user", "content": prompt}]
        if via == "openai":
            return self._ask_openai(model, msgs, stream, max_tokens)
        if via == "openai-async":
            loop, client = self.openai_async
            return str(loop.run_until_complete(
                self._ask_openai_async(client, model, msgs, stream, max_tokens)))
        if via != "requests":
            raise ValueError(f"via must be one of {', '.join(VIA)}, got {via!r}")
        if stream:
            parts = []
            for chunk in self.client.chat(model=model, messages=msgs, stream=True,
                                          max_tokens=max_tokens):
                for choice in chunk.get("choices") or []:
                    parts.append((choice.get("delta") or {}).get("content") or "")
            return "".join(parts)
        out = self.client.chat(model=model, messages=msgs, max_tokens=max_tokens)
        return str(out["choices"][0]["message"]["content"])


    def _ask_openai(self, model: str, msgs: list[dict[str, str]], stream: bool,
                    max_tokens: int) -> str:
        client = self.openai_client
        if stream:
            parts = []
            with client.chat.completions.create(
                    model=model, messages=msgs, max_tokens=max_tokens, stream=True,
                    stream_options={"include_usage": True}) as events:
                for chunk in events:
                    parts += [c.delta.content or "" for c in chunk.choices]
            return "".join(parts)
        out = client.chat.completions.create(model=model, messages=msgs, max_tokens=max_tokens)
        return str(out.choices[0].message.content)

    @staticmethod
    async def _ask_openai_async(client: Any, model: str, msgs: list[dict[str, str]],
                                stream: bool, max_tokens: int) -> str:
        if stream:
            parts = []
            events = await client.chat.completions.create(
                model=model, messages=msgs, max_tokens=max_tokens, stream=True,
                stream_options={"include_usage": True})
            async with events:
                async for chunk in events:
                    parts += [c.delta.content or "" for c in chunk.choices]
            return "".join(parts)
        out = await client.chat.completions.create(model=model, messages=msgs,
                                                   max_tokens=max_tokens)
        return str(out.choices[0].message.content)


class EagerRouter(DemoRouter):
    """The seed's "before": every manager and every model built at start-up."""

    def __init__(self, provider_url: str, models_dir: Path, **kw: Any) -> None:
        super().__init__(provider_url, models_dir, **kw)
        _ = self.client, self.cache, self.optimizer
        self.loaded = {name: load_model(path, self.use_torch)
                       for name, path in self.model_paths.items()}
