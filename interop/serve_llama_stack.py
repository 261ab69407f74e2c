"""Start llama-stack (run with the llama-stack venv's Python, 3.12+) on interop/llama_stack.yaml
without internet: at start-up its vector_io provider downloads a tiktoken encoding, which nothing
on the Responses/Conversations path uses, so that check is replaced by a no-op (UPSTREAM.md).

``python interop/serve_llama_stack.py PORT`` with ``STUB_URL`` (the model stub's ``/v1`` URL)
and ``STATE_DIR`` (where its sqlite files go) in the environment.
"""

from __future__ import annotations

import sys
from pathlib import Path

from llama_stack.cli.llama import main
from llama_stack.providers.utils.memory import openai_vector_store_mixin


def _no_download(name: str = "cl100k_base") -> None:
    """Nothing to check offline."""


openai_vector_store_mixin.validate_tiktoken_encoding = _no_download

if __name__ == "__main__":
    config = Path(__file__).with_name("llama_stack.yaml")
    sys.argv = ["llama", "stack", "run", str(config), "--port", sys.argv[1]]
    main()
