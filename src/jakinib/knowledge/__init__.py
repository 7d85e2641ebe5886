"""The knowledge base: schema, data, loader and queries."""

from jakinib.knowledge.base import ApprovalRow, KnowledgeBase, build

__all__ = ["ApprovalRow", "KnowledgeBase", "build"]
