"""Knowledge about classes: the file schema (:mod:`.schema`), the packs shipped with coderclip
(:mod:`.packs`) and the templates that turn knowledge into sentences (:mod:`.templates`)."""

from ..errors import KnowledgeError
from .packs import available_packs, has_pack, pack_path, shipped_class_names
from .schema import (FORMAT, KNOWLEDGE_TYPES, LIST_FIELDS, SCHEMA_VERSION, ClassKnowledge, Knowledge,
                     load_knowledge, load_pack, provenance_record)
from .templates import DOMAINS, TEMPLATES_VERSION, DomainTemplates, get_domain

__all__ = ["DOMAINS", "FORMAT", "KNOWLEDGE_TYPES", "LIST_FIELDS", "SCHEMA_VERSION", "TEMPLATES_VERSION",
           "ClassKnowledge", "DomainTemplates", "Knowledge", "KnowledgeError", "available_packs", "get_domain",
           "has_pack", "load_knowledge", "load_pack", "pack_path", "provenance_record",
           "shipped_class_names"]
