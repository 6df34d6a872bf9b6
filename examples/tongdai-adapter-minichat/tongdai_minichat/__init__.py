"""tongdai adapter for MiniChat (an example third-party adapter package)."""

from tongdai_minichat.adapter import MinichatAdapter, MinichatSettings

__all__ = ["MinichatAdapter", "MinichatSettings"]
