"""A router written the way the seed's ai-router-enhanced.py is. It knows nothing of routerscope.

Plain ``requests`` calls to an OpenRouter-style API, ``@property`` lazy
managers, and a model loaded with torch when torch is installed. To observe
it, add one line at the top (or run it through a loader that does)::

    import routerscope.auto

Environment: OPENROUTER_BASE_URL (default https://openrouter.ai/api/v1),
OPENROUTER_API_KEY, ROUTER_REQUESTS (default 10).
"""

from __future__ import annotations

import logging
import os
import sys

import requests

log = logging.getLogger("legacy_router")


class EmbeddingManager:
    def __init__(self) -> None:
        log.info("Initializing EmbeddingManager")
        words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog"]
        self.table = {w: i for i, w in enumerate(words)}

    def embed(self, text: str) -> list[int]:
        return [self.table.get(w, 0) for w in text.split()]


class LocalModelManager:
    """Loads a small local model with torch when torch is installed."""

    def __init__(self) -> None:
        try:
            import torch
        except ImportError:
            self.model = None
            return
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(),
                                         torch.nn.Linear(128, 8))

    def generate(self, prompt: str) -> str:
        if self.model is None:
            return prompt[::-1]
        import torch

        with torch.no_grad():
            x = torch.zeros(1, 64)
            x[0, : min(64, len(prompt))] = 1.0
            return str(int(self.model(x).argmax()))


class AIRouter:
    def __init__(self) -> None:
        self.base_url = os.environ.get("OPENROUTER_BASE_URL", "https://openrouter.ai/api/v1")
        self.api_key = os.environ.get("OPENROUTER_API_KEY", "")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {self.api_key}"
        self._embeddings: EmbeddingManager | None = None
        self._local: LocalModelManager | None = None

    @property
    def embeddings(self) -> EmbeddingManager:
        if self._embeddings is None:
            self._embeddings = EmbeddingManager()
        return self._embeddings

    @property
    def local(self) -> LocalModelManager:
        if self._local is None:
            self._local = LocalModelManager()
        return self._local

    def ask_remote(self, model: str, prompt: str) -> str:
        resp = self.session.post(f"{self.base_url}/chat/completions", timeout=30, json={
            "model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 32,
        })
        resp.raise_for_status()
        return str(resp.json()["choices"][0]["message"]["content"])

    def ask_streaming(self, model: str, prompt: str) -> str:
        parts: list[str] = []
        with self.session.post(f"{self.base_url}/chat/completions", timeout=30, stream=True,
                               json={"model": model, "stream": True, "max_tokens": 8,
                                     "messages": [{"role": "user", "content": prompt}]}) as resp:
            import json

            for line in resp.iter_lines():
                if line.startswith(b"data: ") and line != b"data: [DONE]":
                    chunk = json.loads(line[6:])
                    for choice in chunk.get("choices", []):
                        parts.append(choice.get("delta", {}).get("content") or "")
        return "".join(parts)

    def route(self, prompt: str) -> str:
        if len(prompt) < 20:
            return self.local.generate(prompt)
        model = "openai/gpt-4o-mini" if "code" in prompt else "meta-llama/llama-3.1-8b-instruct"
        return self.ask_remote(model, prompt)


def main() -> int:
    logging.basicConfig(level=logging.INFO)
    router = AIRouter()
    n = int(os.environ.get("ROUTER_REQUESTS", "10"))
    prompts = ["hi", "write some code for a parser please", "tell me about the weather today"]
    for i in range(n):
        router.route(prompts[i % len(prompts)])
    router.ask_streaming("mistralai/mistral-7b-instruct", "stream me a short answer")
    router.embeddings.embed("the lazy dog")
    log.info("router handled %d requests", n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
