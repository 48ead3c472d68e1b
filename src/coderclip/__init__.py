"""coderclip: CLIP image classification with CODER, cross-modal neighbour representations."""

from ._version import __version__
from .errors import CoderClipError, KnowledgeError, ModelLoadError
from .knowledge import ClassKnowledge, Knowledge, load_knowledge

__all__ = ["__version__", "ClassKnowledge", "CoderClipError", "Knowledge", "KnowledgeError",
           "ModelLoadError", "load_knowledge"]
