"""Pure ML and geometry: concept images, image-to-3D, previews. No database, no UI.

Heavy libraries (torch, diffusers, transformers) are imported inside functions so that
importing this package stays cheap.
"""
