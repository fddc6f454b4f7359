"""Data: segment schema, readers, datasets and splits.

Submodules are imported explicitly (``from chroma_keras.data.demo_corpus import
generate_demo_corpus``) so that importing this package stays cheap.
"""
