"""Fusion strategies (early, late, cross-modal attention, gated) behind one interface; see :mod:`.base`."""

from chroma_keras.models.fusion.base import MultimodalFusion, build_fusion, register_fusion

__all__ = ["MultimodalFusion", "build_fusion", "register_fusion"]
