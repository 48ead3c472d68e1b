"""ATG, the auto text generator: class names in, class knowledge out, from a language model.

One entry point, :func:`generate_knowledge` (the ``coderclip generate`` command). The parts, one
job each: :mod:`.llm` (backends: :mod:`.llm.openai`, :mod:`.llm.local`), :mod:`.prompts`,
:mod:`.parsing`, :mod:`.wordnet` (offline synonyms), :mod:`.pairs` (contrast pairs),
:mod:`.analogous` (look-alike filter), :mod:`.journal` (resumable state), :mod:`.runner`
(retries and parallel requests), :mod:`.assemble` and :mod:`.generate` (the driver).
Importing this package loads neither torch nor the openai client.
"""

from .classes import ClassSpec, read_class_list
from .config import GenerationConfig
from .generate import (GenerationPlan, GenerationResult, GenerationSummary, generate_knowledge,
                       plan_generation, run_generation)
from .llm.base import LLM, ChatRequest, ChatResult, FatalLLMError, TransientLLMError
from .llm import load_llm
from .prompts import PROMPT_VERSION
from .retry import RetryPolicy

__all__ = ["LLM", "PROMPT_VERSION", "ChatRequest", "ChatResult", "ClassSpec", "FatalLLMError",
           "GenerationConfig", "GenerationPlan", "GenerationResult", "GenerationSummary",
           "RetryPolicy", "TransientLLMError", "generate_knowledge", "load_llm", "plan_generation",
           "read_class_list", "run_generation"]
